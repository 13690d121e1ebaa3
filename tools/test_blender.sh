#!/usr/bin/env bash
# The Blender test suite on Blender 5.0 (.venv-blender) and 4.2 LTS (.venv-blender42).
# Makes both environments when missing (bpy from PyPI, ram_core editable, pytest) and the
# X/GL client libraries bpy needs; safe to run again. Extra arguments go to pytest.
#   BLENDER_VERSIONS="50" tools/test_blender.sh   # only one of them
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "error: bpy needs Python 3.11 exactly ($PY is $("$PY" --version 2>&1)); set PYTHON" >&2
  exit 2
fi

APT_LIBS=(libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libsm6 libice6 libgl1
          libxext6 libegl1 libegl-mesa0 libgl1-mesa-dri)
missing=()
for lib in "${APT_LIBS[@]}"; do
  dpkg-query -W -f='${Status}' "$lib" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$lib")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
fi

source tools/pip_quiet.sh

# make_env FOLDER BPY_VERSION_PREFIX PIP_SPEC
make_env() {
  local env=$1 version=$2 spec=$3
  [ -x "$env/bin/python" ] || "$PY" -m venv "$env"
  if "$env/bin/python" - "$version" <<'PYCHECK' 2>/dev/null; then return; fi
import os, sys, tempfile
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp()
import pytest, ram_core.io.result, bpy
ok = bpy.app.version_string.startswith(sys.argv[1])
import ram_core, pathlib
ok = ok and pathlib.Path(ram_core.__file__).resolve().parent == pathlib.Path("ram_core").resolve()
os._exit(0 if ok else 1)
PYCHECK
  echo "setting up $env ($spec)" >&2
  local pip=(quiet_pip "$env/bin/python")
  "${pip[@]}" install "$spec" "numpy==1.26.4" "pytest>=8"
  # ram_core without its pipeline dependencies: the Blender side needs the numpy reader only.
  "${pip[@]}" install --no-deps -e .
}

status=0
for version in ${BLENDER_VERSIONS:-50 42}; do
  case $version in
    50) env=.venv-blender; prefix=5.0; spec="bpy==5.0.1" ;;
    42) env=.venv-blender42; prefix=4.2; spec="bpy>=4.2,<4.3" ;;
    *) echo "error: unknown Blender version $version (50 or 42)" >&2; exit 2 ;;
  esac
  make_env "$env" "$prefix" "$spec"
  echo "== Blender $prefix ($env)" >&2
  "$env/bin/python" -m pytest tests/blender "$@" || status=$?
done
exit $status
