# Sourced by the setup scripts: pip, minus the noise a newcomer need not read.
# - Machines here may configure package indexes that do not exist on them; pip warns about
#   each one for every package.
# - setuptools prints an information-only note (about ten lines) on every editable install.
# Those go; everything else pip says (errors above all) still shows.
quiet_pip() {
  local python=$1
  shift
  "$python" -m pip --disable-pip-version-check -q "$@" 2>&1 | awk '
    /is ignored: it is neither a file nor a directory/ { next }
    /BuildBackendWarning: Editable installation\./ { skip = 1; lines = 0; next }
    skip && (/with strategy, WheelFile/ || ++lines > 12) { skip = 0; next }
    !skip { print }
  '
  return "${PIPESTATUS[0]}"
}
