#!/usr/bin/env bash
# The README's second command: set up .venv/ and run every test (and the linter).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
# The Blender extension's tests, in real Blender (bpy 5.0 and 4.2 LTS), each in its own env.
bash tools/test_blender.sh
