# Sourced by the setup scripts: pip, minus the noise a newcomer need not read.
# Machines here may configure package indexes that do not exist on them; pip warns about
# each one for every package. Those lines go; everything else pip says (errors) still shows.
quiet_pip() {
  local python=$1
  shift
  "$python" -m pip --disable-pip-version-check -q "$@" 2>&1 \
    | { grep -v -e "is ignored: it is neither a file nor a directory" || true; }
}
