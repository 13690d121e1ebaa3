#!/usr/bin/env bash
# Makes .venv-peers: the `trackers` package (Apache-2.0; clean-room SORT, ByteTrack, OC-SORT,
# BoT-SORT) for benchmarks/bench_peers.py, in an environment of its own: it wants the
# non-headless opencv-python and numpy >= 2 beside supervision, which .venv does not hold.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if .venv-peers/bin/python -c "import trackers, supervision, cv2" 2>/dev/null; then
  exit 0
fi
echo "setting up .venv-peers (trackers 2.6.1)" >&2
[ -x .venv-peers/bin/python ] || "$PY" -m venv .venv-peers
source tools/pip_quiet.sh
quiet_pip .venv-peers/bin/python install "trackers==2.6.1"
.venv-peers/bin/python -c "import trackers, supervision, cv2" || {
  echo "error: .venv-peers did not install; see pip's messages above" >&2
  exit 1
}
