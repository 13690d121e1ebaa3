#!/usr/bin/env bash
# The README's second command: set up .venv/ and run every test (and the linter).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
