"""Retargeting math (``ram_core.body.retarget``) without Blender: an A-pose rig with other
rolls, lengths, names and placement follows the source's limbs in world space."""

from __future__ import annotations

import numpy as np
import pytest

from ram_core.body.retarget import (
    CAMERA_TO_ZUP,
    Rig,
    basis_from_pose,
    pose_matrices,
    retarget,
)
from ram_core.body.rotations import axis_angle_to_matrix, geodesic_angle
from ram_core.body.skeleton import JOINT_NAMES, PARENTS, REST_JOINTS_M, children_of
from ram_core.motion.feet import two_bone_ik


def bone_frames(heads: np.ndarray, rolls: np.ndarray) -> np.ndarray:
    """(J, 4, 4) rest matrices: y along the bone (towards its first child, or on from its
    parent for leaves), turned by ``rolls`` about it."""
    rest = np.tile(np.eye(4), (len(heads), 1, 1))
    for j in range(len(heads)):
        kids = children_of(j)
        direction = heads[kids[0]] - heads[j] if kids else heads[j] - heads[PARENTS[j]]
        y = direction / np.linalg.norm(direction)
        helper = np.array([0.0, 0.0, 1.0]) if abs(y[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        x = np.cross(y, helper)
        x /= np.linalg.norm(x)
        z = np.cross(x, y)
        frame = np.column_stack([x, y, z])
        rest[j, :3, :3] = frame @ axis_angle_to_matrix(np.array([0.0, rolls[j], 0.0]))
        rest[j, :3, 3] = heads[j]
    return rest


def smpl_source() -> Rig:
    return Rig(JOINT_NAMES, PARENTS, bone_frames(REST_JOINTS_M, np.zeros(24)))


def a_pose_target(rng) -> Rig:
    """The SMPL skeleton 1.2x larger, Z-up facing -Y, arms lowered 45 degrees, other rolls,
    Mixamo-style names, standing 2 m to the side."""
    heads = REST_JOINTS_M * 1.2
    for side, sign in (("left", 1.0), ("right", -1.0)):
        shoulder = JOINT_NAMES.index(f"{side}_shoulder")
        down = axis_angle_to_matrix(np.array([0.0, 0.0, -sign * np.pi / 4]))
        arm = [shoulder, *_descendants(shoulder)]
        heads[arm] = (heads[arm] - heads[shoulder]) @ down.T + heads[shoulder]
    y_up_to_z_up = axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0]))
    rest = bone_frames(heads @ y_up_to_z_up.T, rng.uniform(-np.pi, np.pi, 24))
    placement = np.eye(4)
    placement[:3, 3] = [2.0, 0.0, 0.0]
    return Rig(tuple(f"mixamorig:{n}" for n in JOINT_NAMES), PARENTS, rest, placement)


def _descendants(joint: int) -> list[int]:
    found = []
    for child in children_of(joint):
        found += [child, *_descendants(child)]
    return found


def source_motion(rng, frames: int) -> np.ndarray:
    """(T, 24, 4, 4) bases: an upright person (in the camera frame) turning and moving."""
    basis = np.tile(np.eye(4), (frames, 24, 1, 1))
    basis[:, :, :3, :3] = axis_angle_to_matrix(rng.normal(0.0, 0.4, (frames, 24, 3)))
    # Upright in the camera frame (head towards -y) and walking away from it.
    basis[:, 0, :3, :3] = axis_angle_to_matrix(np.array([np.pi, 0.0, 0.0])) @ basis[:, 0, :3, :3]
    basis[:, 0, :3, 3] = np.column_stack(
        [np.linspace(0, 0.5, frames), np.zeros(frames), np.linspace(4, 6, frames)]
    )
    return basis


def test_an_a_pose_rig_follows_the_source_limbs_in_world_space():
    rng = np.random.default_rng(3)
    source, target = smpl_source(), a_pose_target(rng)
    motion = source_motion(rng, 12)
    bone_map = {f"mixamorig:{n}": n for n in JOINT_NAMES}
    result = retarget(source, motion, target, bone_map)
    assert result.scale == pytest.approx(1.2)
    assert not result.unmapped
    source_world = CAMERA_TO_ZUP @ pose_matrices(source, motion)[..., :3, :3]
    target_world = target.object_matrix[:3, :3] @ pose_matrices(target, result.basis)[..., :3, :3]
    for j in range(24):
        if not children_of(j):
            continue
        # The bone's direction (its y axis) in the world, source against target.
        cosine = np.sum(source_world[:, j, :, 1] * target_world[:, j, :, 1], axis=-1)
        assert np.degrees(np.arccos(np.clip(cosine, -1, 1))).max() < 1e-4, JOINT_NAMES[j]


def test_root_motion_is_scaled_and_the_feet_meet_the_rigs_floor():
    rng = np.random.default_rng(4)
    source, target = smpl_source(), a_pose_target(rng)
    motion = source_motion(rng, 20)
    bone_map = {f"mixamorig:{n}": n for n in JOINT_NAMES}
    result = retarget(source, motion, target, bone_map)
    pose = target.object_matrix @ pose_matrices(target, result.basis)
    source_pose = pose_matrices(source, motion)
    pelvis_source = (CAMERA_TO_ZUP @ source_pose[:, 0, :3, 3].T).T
    pelvis_target = pose[:, 0, :3, 3]
    np.testing.assert_allclose(
        pelvis_target - pelvis_target[0], 1.2 * (pelvis_source - pelvis_source[0]), atol=1e-9
    )
    # Starts above the rig's own pelvis.
    np.testing.assert_allclose(pelvis_target[0, :2], target.heads_world()[0, :2], atol=1e-9)
    feet = [JOINT_NAMES.index(n) for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]
    rest_floor = target.heads_world()[feet, 2].min()
    assert pose[:, feet, 2, 3].min() == pytest.approx(rest_floor, abs=1e-9)


def test_unmapped_bones_keep_their_pose_and_bad_maps_are_refused():
    rng = np.random.default_rng(5)
    source, target = smpl_source(), a_pose_target(rng)
    motion = source_motion(rng, 4)
    bone_map = {f"mixamorig:{n}": n for n in JOINT_NAMES if "hand" not in n}
    kept = np.tile(np.eye(4), (24, 1, 1))
    kept[JOINT_NAMES.index("left_hand"), :3, :3] = axis_angle_to_matrix(np.array([0.3, 0, 0]))
    result = retarget(source, motion, target, bone_map, target_basis_rest=kept)
    assert set(result.unmapped) == {"mixamorig:left_hand", "mixamorig:right_hand"}
    hand = JOINT_NAMES.index("left_hand")
    angle = geodesic_angle(result.basis[:, hand, :3, :3], kept[hand, :3, :3])
    assert np.all(angle < 1e-9)
    with pytest.raises(ValueError, match="lack"):
        retarget(source, motion, target, {"no_such_bone": "pelvis", **bone_map})
    without_hips = {k: v for k, v in bone_map.items() if v != "left_hip"}
    with pytest.raises(ValueError, match="left_hip"):
        retarget(source, motion, target, without_hips)


def planted_left_foot_motion(source: Rig, frames: int) -> np.ndarray:
    """(T, 24, 4, 4) bases: the source upright 5 m from the camera, its pelvis moving 30 cm
    to the side and 5 cm down while its left leg bends so its left ankle stays put."""
    basis = np.tile(np.eye(4), (frames, 24, 1, 1))
    basis[:, 0, :3, :3] = axis_angle_to_matrix(np.array([np.pi, 0.0, 0.0]))
    basis[:, 0, :3, 3] = np.column_stack(
        [np.linspace(0.0, 0.3, frames), np.linspace(0.0, 0.05, frames), np.full(frames, 5.0)]
    )
    pose = pose_matrices(source, basis)
    hip, knee, ankle = (JOINT_NAMES.index(f"left_{j}") for j in ("hip", "knee", "ankle"))
    heads = pose[..., :3, 3]
    planted = np.broadcast_to(heads[0, ankle], heads[:, ankle].shape)
    left = heads[:, hip] - heads[:, JOINT_NAMES.index("right_hip")]
    swing, bend = two_bone_ik(heads[:, hip], heads[:, knee], heads[:, ankle], planted, left)
    pose[:, hip, :3, :3] = swing @ pose[:, hip, :3, :3]
    pose[:, knee, :3, :3] = swing @ bend @ pose[:, knee, :3, :3]
    rest = source.rest
    for b, parent in enumerate(source.parents):
        if parent >= 0:
            pose[:, b, :3, 3] = (pose[:, parent] @ np.linalg.inv(rest[parent]) @ rest[b])[:, :3, 3]
    return basis_from_pose(source, pose)


def test_feet_in_contact_stay_planted_on_a_rig_of_other_proportions():
    source = smpl_source()
    motion = planted_left_foot_motion(source, 20)
    ankle = JOINT_NAMES.index("left_ankle")
    source_ankle = pose_matrices(source, motion)[:, ankle, :3, 3]
    assert np.ptp(source_ankle, axis=0).max() < 1e-9  # planted on the source
    # Longer shins than the source's, the thighs as they are.
    heads = REST_JOINTS_M.copy()
    for side in ("left", "right"):
        knee = JOINT_NAMES.index(f"{side}_knee")
        below = [knee, *_descendants(knee)]
        below.remove(knee)
        heads[below] = heads[knee] + 1.4 * (heads[below] - heads[knee])
    heads = heads @ axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0])).T
    target = Rig(JOINT_NAMES, PARENTS, bone_frames(heads, np.zeros(24)))
    bone_map = {n: n for n in JOINT_NAMES}

    def ankle_drift(contacts) -> float:
        result = retarget(source, motion, target, bone_map, contacts=contacts)
        path = (target.object_matrix @ pose_matrices(target, result.basis))[:, ankle, :3, 3]
        return float(np.linalg.norm(path - np.median(path, axis=0), axis=1).max())

    assert ankle_drift(None) > 0.02  # the proportions alone slide the foot
    contacts = np.zeros((20, 2), dtype=bool)
    contacts[:, 0] = True
    assert ankle_drift(contacts) < 0.005
    with pytest.raises(ValueError, match="contacts"):
        retarget(source, motion, target, bone_map, contacts=contacts[:5])
