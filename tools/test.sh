#!/usr/bin/env bash
# The README's second command: set up every environment and run every test (and ruff).
#   .venv/          ram_core with the lite and full backends (torch, torchvision, sam2, smplx)
#                   and Ray (the cluster extra, for `ram-core batch --ray`)
#   .venv-tools/    torch + anny, and .venv-blender/ (bpy 5.0.1): the scene generator
#   .venv-blender52/, .venv-blender42/: the Blender extension's tests on 5.2 LTS and 4.2 LTS
# Extra arguments go to the main pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --full --cluster
bash tools/setup_render.sh
.venv/bin/ruff check .
# Here the full backend, Ray and the renderer are installed: their tests must run, not skip.
export RAM_REQUIRE_FULL=1 RAM_REQUIRE_RENDER=1 RAM_REQUIRE_CLUSTER=1
.venv/bin/python -m pytest "$@"
# The Blender extension's tests, in real Blender (bpy 5.2 and 4.2 LTS), each in its own env.
bash tools/test_blender.sh
