"""SMPL-24 layout, built-in rest skeleton and forward kinematics."""

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ram_core.body import skeleton as sk
from ram_core.body.rotations import axis_angle_to_matrix


def _random_pose(rng, batch=(), scale=0.5):
    global_orient = rng.normal(scale=scale, size=(*batch, 3))
    body_pose = rng.normal(scale=scale, size=(*batch, 23, 3))
    transl = rng.normal(size=(*batch, 3))
    return global_orient, body_pose, transl


def _fk_homogeneous(global_orient, body_pose, transl, rest):
    """SMPL's textbook form: A_j = A_parent [R_j | J_j - J_parent], A_0 = [R_0 | J_0]."""
    rots = Rotation.from_rotvec(np.concatenate([global_orient[None], body_pose])).as_matrix()
    transforms = []
    for j in range(24):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        parent = sk.PARENTS[j]
        local[:3, 3] = rest[j] - (rest[parent] if parent >= 0 else 0.0)
        transforms.append(local if parent < 0 else transforms[parent] @ local)
    return np.stack([a[:3, 3] for a in transforms]) + transl


def test_layout_is_smpl24():
    assert len(sk.JOINT_NAMES) == 24 == len(sk.PARENTS)
    assert sk.PARENTS[sk.JOINT_INDEX["left_wrist"]] == sk.JOINT_INDEX["left_elbow"]
    assert all(p < j for j, p in enumerate(sk.PARENTS))
    assert sk.JOINT_NAMES[sk.MIRROR_INDEX[sk.JOINT_INDEX["left_knee"]]] == "right_knee"
    assert sk.MIRROR_INDEX[0] == 0


def test_rest_skeleton_is_a_plausible_t_pose():
    rest = sk.REST_JOINTS_M
    idx = sk.JOINT_INDEX
    np.testing.assert_allclose(rest[0], 0.0)
    # Left is +x, up is +y.
    assert rest[idx["left_hip"], 0] > 0 > rest[idx["right_hip"], 0]
    assert rest[idx["head"], 1] > rest[idx["neck"], 1] > rest[idx["spine3"], 1] > 0
    assert rest[idx["left_ankle"], 1] < rest[idx["left_knee"], 1] < 0
    # Feet point forward (+z) from the ankles.
    assert rest[idx["left_foot"], 2] > rest[idx["left_ankle"], 2] + 0.05
    # Arms horizontal along +-x (T-pose).
    for side, sign in (("left", 1), ("right", -1)):
        chain = rest[[idx[f"{side}_{j}"] for j in ("shoulder", "elbow", "wrist", "hand")]]
        np.testing.assert_allclose(chain[:, 1:], chain[:1, 1:].repeat(4, 0), atol=1e-9)
        assert np.all(np.diff(chain[:, 0]) * sign > 0.05)
    # Mirror-symmetric.
    mirrored = rest[list(sk.MIRROR_INDEX)] * np.array([-1, 1, 1])
    np.testing.assert_allclose(mirrored, rest, atol=1e-9)
    # Adult size: ankle to head joint 1.4-1.8 m.
    assert 1.4 < rest[idx["head"], 1] - rest[idx["left_ankle"], 1] < 1.8


def test_rest_json_names_its_source():
    record = json.loads(sk.REST_JSON_PATH.read_text())
    assert "Anny" in record["source"] and "Apache-2.0" in record["source"]


def test_load_rest_joints_rejects_a_wrong_layout(tmp_path):
    record = json.loads(sk.REST_JSON_PATH.read_text())
    record["parents"][5] = 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="parents"):
        sk.load_rest_joints(bad)


def test_zero_pose_is_rest_plus_transl_with_pelvis_at_j0_plus_transl():
    rest = sk.REST_JOINTS_M + np.array([0.01, -0.24, 0.03])  # SMPL-like J0 away from origin
    transl = np.array([0.5, -0.2, 3.0])
    joints, world = sk.forward_kinematics(np.zeros(3), np.zeros((23, 3)), transl, rest)
    np.testing.assert_allclose(joints, rest + transl, atol=1e-12)
    np.testing.assert_allclose(world, np.broadcast_to(np.eye(3), (24, 3, 3)), atol=1e-12)
    # A root rotation turns the body about J0: the pelvis stays at J0 + transl.
    joints, _ = sk.forward_kinematics(np.array([0.3, 1.0, -0.2]), np.zeros((23, 3)), transl, rest)
    np.testing.assert_allclose(joints[0], rest[0] + transl, atol=1e-12)


def test_fk_matches_homogeneous_transform_chain():
    rng = np.random.default_rng(0)
    rest = sk.REST_JOINTS_M + np.array([0.0, -0.2, 0.02])
    for _ in range(5):
        go, bp, tr = _random_pose(rng)
        joints, world = sk.forward_kinematics(go, bp, tr, rest)
        np.testing.assert_allclose(joints, _fk_homogeneous(go, bp, tr, rest), atol=1e-12)
        np.testing.assert_allclose(world[0], axis_angle_to_matrix(go), atol=1e-12)


def test_fk_is_batched_and_preserves_bone_lengths():
    rng = np.random.default_rng(1)
    go, bp, tr = _random_pose(rng, batch=(4, 3))
    joints, world = sk.forward_kinematics(go, bp, tr)
    assert joints.shape == (4, 3, 24, 3) and world.shape == (4, 3, 24, 3, 3)
    single, _ = sk.forward_kinematics(go[2, 1], bp[2, 1], tr[2, 1])
    np.testing.assert_allclose(joints[2, 1], single, atol=1e-12)
    parents = list(sk.PARENTS[1:])
    rest_len = np.linalg.norm(sk.REST_JOINTS_M[1:] - sk.REST_JOINTS_M[parents], axis=-1)
    posed_len = np.linalg.norm(joints[..., 1:, :] - joints[..., parents, :], axis=-1)
    np.testing.assert_allclose(posed_len, np.broadcast_to(rest_len, posed_len.shape), atol=1e-12)


def test_local_from_world_inverts_the_chain():
    rng = np.random.default_rng(2)
    go, bp, tr = _random_pose(rng, batch=(3,))
    _, world = sk.forward_kinematics(go, bp, tr)
    local = sk.local_from_world_rotations(world)
    expected = axis_angle_to_matrix(np.concatenate([go[:, None], bp], axis=1))
    np.testing.assert_allclose(local, expected, atol=1e-12)


def test_bending_a_knee_moves_only_its_descendants():
    bp = np.zeros((23, 3))
    bp[sk.JOINT_INDEX["left_knee"] - 1] = [np.pi / 2, 0.0, 0.0]  # SMPL: +x bends the knee back
    joints, _ = sk.forward_kinematics(np.zeros(3), bp, np.zeros(3))
    moved = np.where(np.linalg.norm(joints - sk.REST_JOINTS_M, axis=1) > 1e-9)[0]
    assert set(moved) == {sk.JOINT_INDEX["left_ankle"], sk.JOINT_INDEX["left_foot"]}
    knee, ankle = joints[sk.JOINT_INDEX["left_knee"]], joints[sk.JOINT_INDEX["left_ankle"]]
    assert ankle[2] < knee[2] - 0.3  # the shin now points backward (-z)


def test_upright_person_facing_the_camera():
    """global_orient = pi about x puts an upright body facing the camera (OpenCV axes)."""
    transl = np.array([0.0, 0.0, 4.0])
    joints, _ = sk.forward_kinematics(np.array([np.pi, 0.0, 0.0]), np.zeros((23, 3)), transl)
    idx = sk.JOINT_INDEX
    # Camera y points down: the head is above the pelvis, the ankles below.
    assert joints[idx["head"], 1] < joints[idx["pelvis"], 1] - 0.5
    assert joints[idx["left_ankle"], 1] > joints[idx["pelvis"], 1] + 0.7
    # Facing the camera: the feet point toward it (smaller z) ...
    assert joints[idx["left_foot"], 2] < joints[idx["left_ankle"], 2] - 0.05
    # ... and the person's left hand is on the image's right (+x).
    assert joints[idx["left_hand"], 0] > 0.5 > -0.5 > joints[idx["right_hand"], 0]


def test_forward_kinematics_of_a_few_joints_matches_the_whole_chain():
    from ram_core.body.rotations import axis_angle_to_matrix
    from ram_core.body.skeleton import chain_to, forward_kinematics_matrices

    assert chain_to((16,)) == (0, 3, 6, 9, 13, 16)
    local = axis_angle_to_matrix(np.random.default_rng(3).normal(0, 0.4, (5, 24, 3)))
    transl = np.random.default_rng(4).normal(0, 1, (5, 3))
    joints, world = forward_kinematics_matrices(local, transl)
    some_joints, some_world = forward_kinematics_matrices(local, transl, only=(1, 16, 17))
    for joint in chain_to((1, 16, 17)):
        np.testing.assert_array_equal(some_joints[:, joint], joints[:, joint])
        np.testing.assert_array_equal(some_world[:, joint], world[:, joint])
    assert np.isnan(some_joints[:, 20]).all()  # not asked for: not computed
