"""The armature plan for the SMPL-24 skeleton and SMPL poses as Blender pose-bone keys.

No bpy here: Blender applies the plan in ``importer.py``; tests check the math in plain
pytest as well as in Blender.

Frames. An armature's local space is SMPL's rest space (y up, x to the body's left, z to its
front). Bone j's head sits on rest joint ``J_j``; its rest frame ``B_j`` (3, 3) is what
Blender derives from head, tail and roll (columns: the bone's x, y = along the bone, z).
Blender poses a bone as ``M_j = M_parent @ Rest_parent^-1 @ Rest_j @ Basis_j``, so for SMPL's
world rotations ``G_j = G_parent @ R_j`` the rotation part matches when
``Basis_j = B_j^T R_j B_j``, and the root's location key is ``B_0^T transl`` (SMPL rotates
about ``J_0`` and then adds ``transl``, which is exactly a rotation about the root head).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ram_core.body.rotations import axis_angle_to_matrix, matrix_to_quaternion
from ram_core.body.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, REST_JOINTS_M, children_of

# Where a joint has several children, its bone points at the one on the body's midline.
_PREFERRED_CHILD: dict[str, str] = {"pelvis": "spine1", "spine3": "neck"}
# Leaf bones continue their parent's direction, this long (metres).
_LEAF_LENGTH_M: dict[str, float] = {
    "head": 0.20,
    "left_foot": 0.08,
    "right_foot": 0.08,
    "left_hand": 0.08,
    "right_hand": 0.08,
}
_MIN_BONE_LENGTH_M = 0.02


@dataclass(frozen=True)
class ArmaturePlan:
    """What to build in edit mode, in armature space (metres, SMPL rest axes).

    names: 24 bone names; parents: parent index per bone (-1 for the root);
    heads, tails: (24, 3); rolls: (24,) radians.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    heads: np.ndarray
    tails: np.ndarray
    rolls: np.ndarray


def plan_armature(rest_joints: np.ndarray = REST_JOINTS_M) -> ArmaturePlan:
    """Bone heads on the rest joints, tails toward the (midline) child. (24, 3) -> plan.

    Raises ValueError for a rest skeleton of the wrong shape or with coincident joints.
    """
    rest_joints = np.asarray(rest_joints, dtype=np.float64)
    if rest_joints.shape != (NUM_JOINTS, 3) or not np.all(np.isfinite(rest_joints)):
        raise ValueError(f"rest_joints must be finite (24, 3), got {rest_joints.shape}")
    tails = np.empty_like(rest_joints)
    for j, name in enumerate(JOINT_NAMES):
        children = children_of(j)
        if children:
            preferred = _PREFERRED_CHILD.get(name)
            child = JOINT_NAMES.index(preferred) if preferred else children[0]
            tails[j] = rest_joints[child]
        else:
            direction = rest_joints[j] - rest_joints[PARENTS[j]]
            tails[j] = rest_joints[j] + _unit(direction) * _LEAF_LENGTH_M[name]
        if np.linalg.norm(tails[j] - rest_joints[j]) < _MIN_BONE_LENGTH_M:
            raise ValueError(f"joint {name!r} is too close to the joint its bone points at")
    return ArmaturePlan(
        names=JOINT_NAMES,
        parents=PARENTS,
        heads=rest_joints.copy(),
        tails=tails,
        rolls=np.zeros(NUM_JOINTS),
    )


def pose_bone_keys(
    global_orient: np.ndarray,
    body_pose: np.ndarray,
    transl: np.ndarray,
    bone_rest_rotations: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """SMPL parameters of T frames -> Blender pose-bone keys.

    global_orient: (T, 3) and body_pose: (T, 23, 3) axis-angle; transl: (T, 3) metres;
    bone_rest_rotations: (24, 3, 3), each bone's rest frame in armature space as Blender
    derived it (``Bone.matrix_local``'s 3x3 part).
    Returns quaternions (T, 24, 4) (w, x, y, z), sign-continuous over time so that
    interpolating between keys takes the short way, and root locations (T, 3).
    """
    global_orient = np.asarray(global_orient, dtype=np.float64)
    body_pose = np.asarray(body_pose, dtype=np.float64)
    transl = np.asarray(transl, dtype=np.float64)
    frames = global_orient.shape[0]
    if global_orient.shape != (frames, 3) or body_pose.shape != (frames, NUM_JOINTS - 1, 3):
        raise ValueError(
            f"expected global_orient (T, 3) and body_pose (T, 23, 3), got "
            f"{global_orient.shape} and {body_pose.shape}"
        )
    if transl.shape != (frames, 3):
        raise ValueError(f"expected transl (T, 3), got {transl.shape}")
    rest = np.asarray(bone_rest_rotations, dtype=np.float64)
    if rest.shape != (NUM_JOINTS, 3, 3):
        raise ValueError(f"bone_rest_rotations must be (24, 3, 3), got {rest.shape}")
    local = axis_angle_to_matrix(np.concatenate([global_orient[:, None], body_pose], axis=1))
    rest_t = np.swapaxes(rest, -1, -2)
    basis = rest_t[None] @ local @ rest[None]  # (T, 24, 3, 3)
    quaternions = continuous_quaternions(matrix_to_quaternion(basis))
    root_locations = transl @ rest[0]  # row form of B_0^T @ transl
    return quaternions, root_locations


def body_translation(
    transl: np.ndarray, solved_rest_pelvis: np.ndarray | None, body_rest_pelvis: np.ndarray
) -> np.ndarray:
    """``transl`` (T, 3) for a body whose rest pelvis differs from the one it was solved on.

    In SMPL's convention the posed pelvis is ``rest pelvis + transl``. A result solved on
    another skeleton (``solved_rest_pelvis``, e.g. the built-in one with its pelvis at the
    origin) keeps its posed pelvis, where the video shows it, when ``transl`` takes up the
    difference. ``solved_rest_pelvis`` None: the result is in the body's own terms.
    """
    transl = np.asarray(transl, dtype=np.float64)
    if solved_rest_pelvis is None:
        return transl
    return transl + (np.asarray(solved_rest_pelvis) - np.asarray(body_rest_pelvis))


def continuous_quaternions(quaternions: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 so each quaternion is in the hemisphere of the previous one.

    (T, ..., 4) -> (T, ..., 4), the same rotations.
    """
    q = np.array(quaternions, dtype=np.float64, copy=True)
    if q.shape[0] < 2:
        return q
    # The sign of frame t relative to frame t-1, accumulated: flips compose along the chain.
    step_sign = np.where(np.sum(q[1:] * q[:-1], axis=-1) < 0.0, -1.0, 1.0)
    sign = np.concatenate([np.ones((1, *step_sign.shape[1:])), np.cumprod(step_sign, axis=0)])
    return q * sign[..., None]


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        raise ValueError("a leaf joint coincides with its parent")
    return vector / norm
