"""Landmark IK: synthetic round trips and one real MediaPipe run on the fixture frame."""

import json
from pathlib import Path

import numpy as np
import pytest

from ram_core.body import skeleton as sk
from ram_core.body.rotations import axis_angle_to_matrix, geodesic_angle
from ram_core.reconstruct import ik
from ram_core.reconstruct.lite import LiteReconstructor, solve_translation
from ram_core.types import CameraIntrinsics, Frame, Observation, PoseLandmarks

J = sk.JOINT_INDEX
FIXTURES = Path(__file__).parent / "fixtures"


def _plausible_pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random but human: upright-ish facing the camera-ish, hinge knees and elbows."""
    global_orient = np.array([np.pi, 0.0, 0.0]) + rng.normal(scale=0.35, size=3)
    body_pose = rng.normal(scale=0.08, size=(23, 3))  # spine, neck, collars, hands: small
    for side in ("left", "right"):
        body_pose[J[f"{side}_hip"] - 1] = [
            rng.uniform(-1.2, 0.3),
            rng.uniform(-0.3, 0.3),
            rng.uniform(-0.3, 0.3),
        ]
        body_pose[J[f"{side}_knee"] - 1] = [rng.uniform(0.4, 1.6), 0.0, 0.0]
        body_pose[J[f"{side}_ankle"] - 1] = rng.uniform(-0.3, 0.3, size=3)
        sign = 1.0 if side == "left" else -1.0
        body_pose[J[f"{side}_shoulder"] - 1] = [
            rng.uniform(-0.5, 0.5),
            rng.uniform(-0.6, 0.6),
            sign * rng.uniform(-1.3, 0.3),
        ]
        body_pose[J[f"{side}_elbow"] - 1] = [0.0, -sign * rng.uniform(0.5, 1.8), 0.0]
        body_pose[J[f"{side}_wrist"] - 1] = rng.uniform(-0.4, 0.4, size=3)
    body_pose[J["neck"] - 1] = rng.uniform(-0.3, 0.3, size=3)
    body_pose[J["head"] - 1] = rng.uniform(-0.3, 0.3, size=3)
    return global_orient, body_pose


def _posed(global_orient, body_pose):
    joints, world = sk.forward_kinematics(global_orient, body_pose, np.zeros(3))
    mid_hip = 0.5 * (joints[J["left_hip"]] + joints[J["right_hip"]])
    return joints - mid_hip, world


OBSERVED = [J[n] for n in ik.DIRECT_JOINTS] + [
    J[n] for n in ("left_foot", "right_foot", "left_hand", "right_hand", "pelvis", "head")
]
LIMB_BONES = [
    (J[f"{s}_{a}"], J[f"{s}_{b}"])
    for s in ("left", "right")
    for a, b in (
        ("hip", "knee"),
        ("knee", "ankle"),
        ("shoulder", "elbow"),
        ("elbow", "wrist"),
        ("wrist", "hand"),
    )
]


@pytest.mark.parametrize("seed", range(6))
def test_synthetic_round_trip_recovers_joints_and_limb_rotations(seed):
    rng = np.random.default_rng(seed)
    go, bp = _plausible_pose(rng)
    landmarks = ik.synthetic_landmarks(go, bp)
    result = ik.fit_landmarks(landmarks, np.ones(33))
    true_joints, true_world = _posed(go, bp)

    # FK of the returned parameters reproduces the returned joints.
    fk_joints, fk_world = sk.forward_kinematics(
        result.global_orient, result.body_pose, result.pelvis_m - sk.REST_JOINTS_M[0]
    )
    np.testing.assert_allclose(fk_joints, result.joints_m, atol=1e-9)

    errors = np.linalg.norm(fk_joints[OBSERVED] - true_joints[OBSERVED], axis=1)
    names = [sk.JOINT_NAMES[i] for i in OBSERVED]
    assert errors.max() < 0.01, dict(zip(names, errors, strict=True))
    assert result.fit_error_m < 0.005
    assert result.scale == pytest.approx(1.0, abs=1e-9)

    # Swing: every limb bone points the same way.
    for a, b in LIMB_BONES:
        d_true = true_joints[b] - true_joints[a]
        d_fit = fk_joints[b] - fk_joints[a]
        cos = np.dot(d_true, d_fit) / np.linalg.norm(d_true) / np.linalg.norm(d_fit)
        assert np.degrees(np.arccos(min(cos, 1.0))) < 1.5, (sk.JOINT_NAMES[a], sk.JOINT_NAMES[b])
    # Twist: with bent knees / elbows the thigh and upper-arm frames match, and the knee /
    # elbow rotation itself (a hinge) comes back.
    for name in ("left_hip", "right_hip", "left_shoulder", "right_shoulder"):
        assert np.degrees(geodesic_angle(true_world[J[name]], fk_world[J[name]])) < 2.0, name
    for name in ("left_knee", "right_knee", "left_elbow", "right_elbow"):
        angle = geodesic_angle(
            axis_angle_to_matrix(bp[J[name] - 1]),
            axis_angle_to_matrix(result.body_pose[J[name] - 1]),
        )
        assert np.degrees(angle) < 2.0, name
    # The head turns to the face.
    assert np.degrees(geodesic_angle(true_world[J["head"]], fk_world[J["head"]])) < 1.0


def test_upright_t_pose_facing_the_camera_is_recovered_exactly():
    go = np.array([np.pi, 0.0, 0.0])
    landmarks = ik.synthetic_landmarks(go, np.zeros((23, 3)))
    global_orient, body_pose, fit_error = ik.landmarks_to_smpl(landmarks, np.ones(33))
    assert (
        np.degrees(geodesic_angle(axis_angle_to_matrix(go), axis_angle_to_matrix(global_orient)))
        < 1e-4
    )
    np.testing.assert_allclose(body_pose, 0.0, atol=1e-5)
    assert fit_error < 1e-6


def test_scale_is_measured_and_removed():
    go, bp = _plausible_pose(np.random.default_rng(11))
    landmarks = ik.synthetic_landmarks(go, bp)
    small = ik.fit_landmarks(0.9 * landmarks, np.ones(33))
    full = ik.fit_landmarks(landmarks, np.ones(33))
    assert small.scale == pytest.approx(0.9, rel=1e-6)
    np.testing.assert_allclose(small.body_pose, full.body_pose, atol=1e-5)


def test_low_visibility_and_degenerate_input_stay_finite():
    go, bp = _plausible_pose(np.random.default_rng(3))
    landmarks = ik.synthetic_landmarks(go, bp)
    result = ik.fit_landmarks(landmarks, np.zeros(33))
    assert np.all(np.isfinite(result.body_pose)) and np.isfinite(result.fit_error_m)
    collapsed = ik.fit_landmarks(np.zeros((33, 3)), np.ones(33))
    assert np.all(np.isfinite(collapsed.body_pose))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="33"):
        ik.landmarks_to_smpl(np.zeros((17, 3)), np.ones(17))
    bad = np.zeros((33, 3))
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        ik.landmarks_to_smpl(bad, np.ones(33))


def _blazepose_world_landmarks(rgb: np.ndarray, box_xyxy) -> tuple[np.ndarray, np.ndarray]:
    pytest.importorskip("ai_edge_litert")
    from ram_core.segment.blazepose import PoseLandmarkModel, roi_from_box
    from ram_core.segment.lite import default_model_path

    (found,) = PoseLandmarkModel(default_model_path()).estimate(
        rgb, [roi_from_box(np.asarray(box_xyxy, dtype=float), 1.25)]
    )
    assert found is not None and found.pose_score > 0.5
    return found.world_m, found.visibility


def test_real_blazepose_people_are_upright_and_face_where_they_look():
    """Fixture: a woman in red seen in profile facing the image's right, and a man in yellow
    turned toward the camera and the image's left."""
    cv2 = pytest.importorskip("cv2")
    image_path = FIXTURES / "people_frame.png"
    if not image_path.exists():
        pytest.skip("fixture frame not rendered")
    rgb = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    boxes = json.loads((FIXTURES / "people_frame.json").read_text())
    fronts = []
    for box in boxes:
        world, visibility = _blazepose_world_landmarks(rgb, box)
        result = ik.fit_landmarks(world, visibility)
        root = axis_angle_to_matrix(result.global_orient)
        up, front = root @ [0.0, 1.0, 0.0], root @ [0.0, 0.0, 1.0]
        assert up[1] < -0.9  # camera y is down: upright
        assert abs(front[1]) < 0.3
        assert result.fit_error_m < 0.03
        assert 0.7 < result.scale < 1.2
        # Knees and elbows bend the natural way, no more than a right angle here.
        for name in ("left_knee", "right_knee"):
            knee = result.body_pose[J[name] - 1]
            assert knee[0] > -0.1 and np.linalg.norm(knee) < 1.6
        fronts.append(front)
    boxes_x = [b[0] for b in boxes]
    red, yellow = fronts[int(np.argmin(boxes_x))], fronts[int(np.argmax(boxes_x))]
    assert red[0] > 0.8
    assert yellow[0] < -0.5 and yellow[2] < -0.2


# --- the lite reconstructor (landmark IK + camera-frame translation) ---------------------

CAMERA = CameraIntrinsics.assumed(1280, 720)


def _observation_from_pose(go, bp, transl, visibility=None):
    """Landmarks a perfect MediaPipe would give for a posed skeleton in the camera."""
    world = ik.synthetic_landmarks(go, bp)
    joints, _ = sk.forward_kinematics(go, bp, transl)
    mid_hip = 0.5 * (joints[J["left_hip"]] + joints[J["right_hip"]])
    image_px = CAMERA.project(world + mid_hip)
    x0, y0 = image_px.min(axis=0) - 10.0
    x1, y1 = image_px.max(axis=0) + 10.0
    marks = PoseLandmarks(
        image_px=image_px,
        visibility=np.ones(33) if visibility is None else visibility,
        world_m=world,
    )
    return Observation(
        mask=np.zeros((CAMERA.height, CAMERA.width), dtype=bool),
        box_xyxy=np.array([x0, y0, x1, y1]),
        quality=0.9,
        object_score=2.0,
        appearance=np.zeros(8, dtype=np.float32),
        landmarks=marks,
    )


FRAME = Frame(index=0, rgb=np.zeros((CAMERA.height, CAMERA.width, 3), dtype=np.uint8))


@pytest.mark.parametrize("seed", range(3))
def test_lite_reconstructor_recovers_pose_and_translation(seed):
    rng = np.random.default_rng(100 + seed)
    go, bp = _plausible_pose(rng)
    transl = np.array([rng.uniform(-1.5, 1.5), rng.uniform(-0.3, 0.5), rng.uniform(3.0, 9.0)])
    estimate = LiteReconstructor().estimate(FRAME, _observation_from_pose(go, bp, transl), CAMERA)
    assert estimate is not None
    assert np.linalg.norm(estimate.transl - transl) < 0.03
    np.testing.assert_array_equal(estimate.betas, np.zeros(10))
    joints_true, _ = sk.forward_kinematics(go, bp, transl)
    joints_est, _ = sk.forward_kinematics(
        estimate.global_orient, estimate.body_pose, estimate.transl
    )
    assert np.linalg.norm(joints_est[OBSERVED] - joints_true[OBSERVED], axis=1).max() < 0.04
    assert 0.8 < estimate.confidence <= 1.0


def test_solve_translation_fits_noisy_pixels_with_weights():
    rng = np.random.default_rng(7)
    points = rng.normal(scale=0.4, size=(12, 3))
    t_true = np.array([0.4, -0.2, 5.0])
    pixels = CAMERA.project(points + t_true) + rng.normal(scale=1.0, size=(12, 2))
    pixels[3] += 200.0  # an outlier with zero weight must not matter
    weights = np.ones(12)
    weights[3] = 0.0
    t = solve_translation(points, pixels, weights, CAMERA)
    assert np.linalg.norm(t - t_true) < 0.05
    assert solve_translation(points, pixels, np.zeros(12), CAMERA) is None


def test_lite_reconstructor_falls_back_to_the_box_and_refuses_missing_landmarks():
    go, bp = np.array([np.pi, 0.0, 0.0]), np.zeros((23, 3))
    transl = np.array([0.3, 0.1, 6.0])
    visibility = np.full(33, 0.3)  # seen by nobody, but not hopeless
    observation = _observation_from_pose(go, bp, transl, visibility)
    estimate = LiteReconstructor().estimate(FRAME, observation, CAMERA)
    assert estimate is not None
    assert abs(estimate.transl[2] - transl[2]) < 0.25 * transl[2]
    assert estimate.confidence < 0.3

    no_marks = Observation(
        mask=observation.mask,
        box_xyxy=observation.box_xyxy,
        quality=0.9,
        object_score=1.0,
        appearance=observation.appearance,
    )
    assert LiteReconstructor().estimate(FRAME, no_marks, CAMERA) is None
    hopeless = _observation_from_pose(go, bp, transl, np.full(33, 0.05))
    assert LiteReconstructor().estimate(FRAME, hopeless, CAMERA) is None


def test_a_batch_solves_each_person_as_if_alone():
    rng = np.random.default_rng(21)
    people = [ik.synthetic_landmarks(*_plausible_pose(rng)) for _ in range(3)]
    noisy = people[0] + rng.normal(scale=0.02, size=(33, 3))
    world = np.stack([*people, noisy, np.zeros((33, 3))])  # the last one collapsed
    visibility = np.ones((5, 33))
    visibility[1, :16] = 0.2  # the upper body barely seen
    together = ik.fit_landmarks_batch(world, visibility)
    for k, result in enumerate(together):
        alone = ik.fit_landmarks(world[k], visibility[k])
        # Equal up to rounding: the batched solves take other BLAS paths.
        np.testing.assert_allclose(result.joints_m, alone.joints_m, atol=1e-7)
        np.testing.assert_allclose(result.body_pose, alone.body_pose, atol=1e-7)
        assert result.scale == pytest.approx(alone.scale)
        assert result.fit_error_m == pytest.approx(alone.fit_error_m)
    assert ik.fit_landmarks_batch(np.zeros((0, 33, 3)), np.zeros((0, 33))) == []
    with pytest.raises(ValueError, match="non-finite"):
        ik.fit_landmarks_batch(np.full((2, 33, 3), np.nan), np.ones((2, 33)))


def test_the_torso_fit_brings_hips_and_shoulders_closer():
    rng = np.random.default_rng(5)
    torso = [J[n] for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder")]
    for _ in range(5):
        landmarks = ik.synthetic_landmarks(*_plausible_pose(rng))
        landmarks += rng.normal(scale=0.03, size=landmarks.shape)
        targets = ik.landmark_targets(landmarks)
        errors = {}
        for refine in (False, True):
            result = ik.fit_landmarks(landmarks, np.ones(33), ik.IkConfig(refine_torso=refine))
            scaled = targets[torso] / result.scale
            errors[refine] = np.linalg.norm(result.joints_m[torso] - scaled, axis=1).mean()
        assert errors[True] < errors[False]
