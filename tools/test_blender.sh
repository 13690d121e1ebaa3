#!/usr/bin/env bash
# The Blender test suite on Blender 5.2 LTS (.venv-blender52, Python 3.13) and 4.2 LTS
# (.venv-blender42, Python 3.11). Makes the environments when missing (bpy from PyPI,
# ram_core editable, pytest) and the X/GL client libraries bpy needs; safe to run again.
# Extra arguments go to pytest.
#   BLENDER_VERSIONS="52" tools/test_blender.sh   # only one of them (also: 50, 5.0.1)
#   PYTHON311=… PYTHON313=…                      # the interpreters, when not found
set -euo pipefail
cd "$(dirname "$0")/.."

# find_python MINOR: a python3.MINOR from $PYTHON3MINOR, PATH or pyenv's versions.
find_python() {
  local minor=$1 var="PYTHON3$1" candidate
  for candidate in "${!var:-}" "python3.$minor" python3 \
      "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3."$minor".*/bin/python3; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != (3, $minor))" \
        2>/dev/null; then
      command -v "$candidate" 2>/dev/null || echo "$candidate"
      return
    fi
  done
  echo "error: bpy here needs Python 3.$minor; set PYTHON3$minor" >&2
  return 2
}

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

# make_env FOLDER BPY_VERSION_PREFIX PIP_SPEC NUMPY_SPEC PYTHON
make_env() {
  local env=$1 version=$2 spec=$3 numpy=$4 python=$5
  [ -x "$env/bin/python" ] || "$python" -m venv "$env"
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
  "${pip[@]}" install "$spec" "$numpy" "pytest>=8"
  # ram_core without its pipeline dependencies: the Blender side needs the numpy reader only.
  "${pip[@]}" install --no-deps -e .
}

status=0
for version in ${BLENDER_VERSIONS:-52 42}; do
  # bpy 5.2 brings numpy 2 (its own pin); 5.0 and 4.2 need numpy 1.
  case $version in
    52) env=.venv-blender52; prefix=5.2; spec="bpy==5.2.3"; numpy="numpy>=2"; minor=13 ;;
    50) env=.venv-blender; prefix=5.0; spec="bpy==5.0.1"; numpy="numpy==1.26.4"; minor=11 ;;
    42) env=.venv-blender42; prefix=4.2; spec="bpy>=4.2,<4.3"; numpy="numpy==1.26.4"; minor=11 ;;
    *) echo "error: unknown Blender version $version (52, 50 or 42)" >&2; exit 2 ;;
  esac
  python=$(find_python "$minor")
  make_env "$env" "$prefix" "$spec" "$numpy" "$python"
  echo "== Blender $prefix ($env)" >&2
  "$env/bin/python" -m pytest tests/blender "$@" || status=$?
done
exit $status
