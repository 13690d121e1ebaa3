"""The Predictor: constant angular velocity on SO(3) and a Kalman root."""

import numpy as np
import pytest

from ram_core.body.rotations import axis_angle_distance, axis_angle_to_matrix, matrix_to_axis_angle
from ram_core.motion.predictor import (
    PredictorConfig,
    hold_last_pose,
    predict_track,
    prediction_steps,
)


def _smooth_motion(T: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Joints swinging smoothly (slow sinusoids about fixed axes on top of a base pose)."""
    rng = np.random.default_rng(seed)
    t = np.arange(T, dtype=np.float64)
    base = rng.normal(scale=0.3, size=(24, 3))
    axes = rng.normal(size=(24, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    amplitude = rng.uniform(0.2, 0.6, size=24)
    period = rng.uniform(60.0, 120.0, size=24)
    phase = rng.uniform(0, 2 * np.pi, size=24)
    angle = amplitude * np.sin(2 * np.pi * t[:, None] / period + phase)  # (T, 24)
    swing = axis_angle_to_matrix(axes[None] * angle[..., None])
    pose = matrix_to_axis_angle(axis_angle_to_matrix(base)[None] @ swing)
    transl = np.stack([0.02 * t, 0.1 * np.sin(t / 15.0), 4.0 + 0.01 * t], axis=1)
    return pose, transl


def test_constant_rate_rotation_is_extrapolated_exactly_without_damping():
    T = 40
    rate = np.array([0.03, -0.02, 0.05])  # rad/frame, body frame
    R0 = axis_angle_to_matrix(np.array([0.4, 0.1, -0.7]))
    frames = R0[None] @ axis_angle_to_matrix(np.arange(T)[:, None] * rate)
    pose = np.repeat(matrix_to_axis_angle(frames)[:, None], 24, axis=1)
    transl = np.stack([0.01 * np.arange(T), np.zeros(T), 3.0 + 0.02 * np.arange(T)], axis=1)
    valid = np.arange(T) < 20  # predict 20 frames ahead from the first 20
    config = PredictorConfig(damping=1.0, transl_damping=1.0, relax_frames=0.0, max_velocity_gap=5)
    pred_pose, pred_transl = predict_track(pose, transl, valid, config)
    error = axis_angle_distance(pred_pose, pose)
    assert error[2:].max() < 1e-9
    # The Kalman filter locks onto a constant velocity: small error 20 frames out.
    assert np.abs(pred_transl[25:] - transl[25:]).max() < 0.02


def test_constant_angular_velocity_beats_hold_last_pose_in_a_gap_on_clean_motion():
    # Noise-free smooth motion: here the velocity is worth carrying (the lite backend's
    # reconstructions are too noisy for it, hence damping 0 by default).
    pose, transl = _smooth_motion(120, seed=1)
    for start, length in ((40, 10), (70, 20)):
        valid = np.ones(120, dtype=bool)
        valid[start : start + length] = False
        gap = slice(start, start + length)
        config = PredictorConfig(damping=0.9, relax_frames=0.0, max_velocity_gap=5)
        cav, cav_transl = predict_track(pose, transl, valid, config)
        hold, hold_transl = hold_last_pose(pose, transl, valid)
        cav_error = axis_angle_distance(cav[gap], pose[gap]).mean()
        hold_error = axis_angle_distance(hold[gap], pose[gap]).mean()
        assert cav_error < 0.7 * hold_error, (cav_error, hold_error)
        cav_t = np.linalg.norm(cav_transl[gap] - transl[gap], axis=1).mean()
        hold_t = np.linalg.norm(hold_transl[gap] - transl[gap], axis=1).mean()
        assert cav_t < hold_t


def test_damping_slows_the_extrapolation():
    T = 30
    rate = np.array([0.0, 0.05, 0.0])
    pose = np.zeros((T, 24, 3))
    pose[:, 0] = np.arange(T)[:, None] * rate
    valid = np.arange(T) < 10
    transl = np.zeros((T, 3))
    damped, _ = predict_track(
        pose, transl, valid, PredictorConfig(damping=0.8, relax_frames=0, max_velocity_gap=5)
    )
    # Angle travelled k frames past the last valid frame: 0.05 * sum_{i<k} 0.8^i.
    travelled = np.linalg.norm(damped[-1, 0] - pose[9, 0])
    assert travelled == pytest.approx(0.05 * (1 - 0.8**20) / 0.2, rel=1e-6)
    np.testing.assert_allclose(damped[10, 0], pose[10, 0], atol=1e-12)  # first step: full
    # damping 0: one step at the measured velocity, then it stops.
    stop, _ = predict_track(
        pose, transl, valid, PredictorConfig(damping=0.0, relax_frames=0, max_velocity_gap=5)
    )
    np.testing.assert_allclose(stop[10:], np.broadcast_to(pose[10], stop[10:].shape), atol=1e-12)


def test_prediction_steps_chain_to_the_prediction():
    pose, transl = _smooth_motion(40, seed=6)
    valid = np.ones(40, dtype=bool)
    valid[12:25] = False
    config = PredictorConfig(damping=0.85, relax_frames=0.0, max_velocity_gap=5)
    pred, _ = predict_track(pose, transl, valid, config)
    rot_step, transl_step = prediction_steps(pose, transl, valid, config)
    R = axis_angle_to_matrix(pose[11])
    for t in range(12, 25):
        R = R @ axis_angle_to_matrix(rot_step[t])
        assert axis_angle_distance(matrix_to_axis_angle(R), pred[t]).max() < 1e-9
    assert transl_step.shape == (40, 3) and np.all(np.isfinite(transl_step))


def test_prediction_only_uses_the_past():
    pose, transl = _smooth_motion(50, seed=2)
    valid = np.ones(50, dtype=bool)
    full, full_t = predict_track(pose, transl, valid)
    changed_pose, changed_transl = pose.copy(), transl.copy()
    changed_pose[30:] += 0.5
    changed_transl[30:] += 1.0
    cut, cut_t = predict_track(changed_pose, changed_transl, valid)
    np.testing.assert_array_equal(cut[:31], full[:31])
    np.testing.assert_array_equal(cut_t[:31], full_t[:31])


def test_before_the_first_valid_frame_the_prediction_is_that_frame():
    pose, transl = _smooth_motion(20, seed=3)
    valid = np.zeros(20, dtype=bool)
    valid[6:] = True
    pred, pred_t = predict_track(pose, transl, valid)
    np.testing.assert_array_equal(pred[:7], np.broadcast_to(pose[6], (7, 24, 3)))
    np.testing.assert_array_equal(pred_t[:7], np.broadcast_to(transl[6], (7, 3)))


@pytest.mark.parametrize("predict", [predict_track, hold_last_pose])
def test_edge_cases_stay_finite(predict):
    pose, transl = _smooth_motion(15, seed=4)
    nothing, nothing_t = predict(pose, transl, np.zeros(15, dtype=bool))
    np.testing.assert_array_equal(nothing, 0.0)
    np.testing.assert_array_equal(nothing_t, 0.0)
    one = np.zeros(15, dtype=bool)
    one[5] = True
    single, single_t = predict(pose, transl, one)
    np.testing.assert_allclose(single, np.broadcast_to(pose[5], single.shape), atol=1e-12)
    np.testing.assert_allclose(single_t, np.broadcast_to(transl[5], single_t.shape), atol=1e-12)
    empty, empty_t = predict(np.zeros((0, 24, 3)), np.zeros((0, 3)), np.zeros(0, dtype=bool))
    assert empty.shape == (0, 24, 3) and empty_t.shape == (0, 3)
    broken = pose.copy()
    broken[3] = np.nan  # a non-finite observation never feeds the history
    out, out_t = predict(broken, transl, np.ones(15, dtype=bool))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(out_t))


def test_a_flip_between_observations_is_speed_capped():
    pose = np.zeros((12, 24, 3))
    pose[5, 0] = [np.pi - 0.01, 0.0, 0.0]  # a reconstruction that flipped for one frame
    valid = np.arange(12) <= 5
    pred, _ = predict_track(
        pose, np.zeros((12, 3)), valid, PredictorConfig(damping=1.0, max_velocity_gap=5)
    )
    step = axis_angle_distance(pred[6:7, 0], pose[5:6, 0])
    assert step[0] <= PredictorConfig().max_angular_speed + 1e-9


def test_bad_shapes_and_config_raise():
    with pytest.raises(ValueError, match="expected"):
        predict_track(np.zeros((5, 23, 3)), np.zeros((5, 3)), np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="damping"):
        PredictorConfig(damping=1.5)


def test_a_hidden_person_relaxes_toward_their_usual_pose_but_keeps_their_orientation():
    """A knee swinging about a mean bend, then hidden: the prediction starts from the last
    pose and ends near the mean bend; the global orientation does not move toward its mean."""
    T = 100
    t = np.arange(T, dtype=np.float64)
    pose = np.zeros((T, 24, 3))
    pose[:, 4, 0] = 0.6 + 0.5 * np.sin(2 * np.pi * t / 24.0)  # left knee, mean 0.6 rad
    pose[:, 0, 1] = 0.01 * t  # turning slowly
    valid = t < 58  # hidden at the top of a swing (knee ~ 1.1 rad)
    config = PredictorConfig(relax_frames=6.0, usual_pose_frames=48)
    pred, _ = predict_track(pose, np.zeros((T, 3)), valid, config)
    assert pred[58, 4, 0] == pytest.approx(pose[57, 4, 0], abs=0.12)  # one frame of velocity
    assert abs(pred[-1, 4, 0] - 0.6) < 0.02  # 42 frames later: the usual bend
    assert np.all(np.diff(np.abs(pred[60:, 4, 0] - 0.6)) <= 1e-12)  # closing in steadily
    held_root = np.broadcast_to(pred[59, 0], pred[59:, 0].shape)
    np.testing.assert_allclose(pred[59:, 0], held_root, atol=1e-9)  # damping 0: held
    off = PredictorConfig(relax_frames=0.0)
    held, _ = predict_track(pose, np.zeros((T, 3)), valid, off)
    np.testing.assert_allclose(held[59:, 4], np.broadcast_to(held[59, 4], (41, 3)), atol=1e-9)
