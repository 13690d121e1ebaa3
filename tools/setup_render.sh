#!/usr/bin/env bash
# Makes the two environments the synthetic-scene tools need, from nothing; safe to run again.
#   .venv-tools   torch 2.13.0 (the small CPU build) + anny 0.6.2, for posing the bodies;
#                 Anny's model cache (~800 MB in ${ANNY_CACHE_DIR:-~/.cache/anny}) is warmed
#                 here, since the first anny.Anny() on a machine takes about a minute.
#   .venv-blender bpy 5.0.1, for rendering; made by tools/test_blender.sh when missing.
# Used by tools/render_demo_clip.py and tools/make_bench_scenes.py.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "error: bpy needs Python 3.11 exactly ($PY is $("$PY" --version 2>&1)); set PYTHON" >&2
  exit 2
fi

tools_ready() {
  .venv-tools/bin/python - <<'PYCHECK' 2>/dev/null
import importlib.metadata as md
import sys
ok = md.version("torch").startswith("2.13.0") and md.version("anny") == "0.6.2"
import anny, numpy, torch  # noqa: E401,F401  (imports must work, not only be listed)
sys.exit(0 if ok else 1)
PYCHECK
}

if ! tools_ready; then
  echo "setting up .venv-tools (torch 2.13.0 CPU, anny 0.6.2)" >&2
  [ -x .venv-tools/bin/python ] || "$PY" -m venv .venv-tools
  source tools/pip_quiet.sh
  PIP=(quiet_pip .venv-tools/bin/python)
  # torch first and pinned: anny asks for torch without a version and would otherwise be
  # free to pull the 5.5 GB CUDA build.
  "${PIP[@]}" install "torch==2.13.0" "numpy>=1.24,<2"
  "${PIP[@]}" install "anny==0.6.2" "torch==2.13.0" "numpy>=1.24,<2"
  tools_ready || { echo "error: .venv-tools is incomplete; see pip's messages above" >&2; exit 1; }
fi

echo "warming Anny's model cache (about a minute the first time on a machine)" >&2
.venv-tools/bin/python -c "import anny; anny.Anny()" >/dev/null

blender_ready() {
  .venv-blender/bin/python - <<'PYCHECK' 2>/dev/null
import os, sys, tempfile
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp()
import bpy, numpy
os._exit(0 if bpy.app.version_string.startswith("5.0") else 1)
PYCHECK
}

if ! blender_ready; then
  # tools/test_blender.sh owns how .venv-blender is made (bpy, numpy pin, apt libraries);
  # collecting its tests (--co) builds the environment without running them.
  BLENDER_VERSIONS=50 bash tools/test_blender.sh --co -q >/dev/null
  blender_ready || { echo "error: .venv-blender does not import bpy 5.0" >&2; exit 1; }
fi
echo "render environments ready: .venv-tools, .venv-blender" >&2
