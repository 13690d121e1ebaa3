#!/usr/bin/env bash
# The README's first command: set up .venv/ and run the pipeline (lite backend) on the
# bundled clip. The result lands in out/demo.ram/ with its preview beside the data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
mkdir -p out
# A fresh result each time: the demo's own output holds no artist edits to keep.
rm -rf out/demo.ram
.venv/bin/ram-core run demo/three_people.mp4 -o out/demo.ram --config demo/demo.yaml "$@"
echo
echo "result:  out/demo.ram/  (manifest.json, tracks.npz, masks/, edits.json)"
echo "preview: out/demo.ram/preview.mp4 and out/demo.ram/preview.png"
