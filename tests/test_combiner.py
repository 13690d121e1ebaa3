"""The Combiner: gate from reliability and the per-joint slerp it drives."""

import numpy as np
import pytest

from ram_core.body.rotations import axis_angle_distance, axis_angle_to_matrix, matrix_to_axis_angle
from ram_core.motion.combiner import CombinerConfig, combine, combine_track, gate_from_reliability
from ram_core.motion.predictor import PredictorConfig, predict_track


def _random_track(T: int, seed: int):
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(T, 24, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    pose_a = axes * rng.uniform(0.0, 3.0, size=(T, 24, 1))
    pose_b = rng.normal(scale=1.0, size=(T, 24, 3))
    return pose_a, rng.normal(size=(T, 3)), pose_b, rng.normal(size=(T, 3))


def test_gate_one_gives_the_reconstruction_and_zero_the_prediction_exactly():
    recon, recon_t, pred, pred_t = _random_track(6, seed=0)
    pose, transl = combine(recon, recon_t, pred, pred_t, np.ones(6))
    np.testing.assert_array_equal(pose, recon)
    np.testing.assert_array_equal(transl, recon_t)
    pose, transl = combine(recon, recon_t, pred, pred_t, np.zeros(6))
    np.testing.assert_array_equal(pose, pred)
    np.testing.assert_array_equal(transl, pred_t)


def test_half_gate_gives_the_geodesic_midpoint():
    recon, recon_t, pred, pred_t = _random_track(8, seed=1)
    pose, transl = combine(recon, recon_t, pred, pred_t, np.full(8, 0.5))
    to_recon = axis_angle_distance(pose, recon)
    to_pred = axis_angle_distance(pose, pred)
    np.testing.assert_allclose(to_recon, to_pred, atol=1e-9)
    np.testing.assert_allclose(to_recon + to_pred, axis_angle_distance(recon, pred), atol=1e-9)
    np.testing.assert_allclose(transl, 0.5 * (recon_t + pred_t), atol=1e-12)


def test_gate_is_zero_when_occluded_or_unreconstructed_and_logistic_otherwise():
    config = CombinerConfig(max_gate_step=1.0)
    reliability = np.array([0.0, 0.3, 0.5, 0.7, 1.0, 0.95, 0.95])
    occluded = np.array([False, False, False, False, False, True, False])
    recon_valid = np.array([True, True, True, True, True, True, False])
    g = gate_from_reliability(reliability, occluded, recon_valid, config)
    assert g[5] == 0.0 and g[6] == 0.0
    assert g[2] == pytest.approx(0.5)
    assert np.all(np.diff(g[:5]) > 0) and g[0] < 0.01 and g[4] > 0.99
    assert np.all((g >= 0.0) & (g <= 1.0))


def test_rate_limit_bounds_gate_steps_and_keeps_hard_zeros():
    T = 40
    reliability = np.full(T, 0.95)
    occluded = np.zeros(T, dtype=bool)
    occluded[15:22] = True
    g = gate_from_reliability(
        reliability, occluded, np.ones(T, dtype=bool), CombinerConfig(max_gate_step=0.2)
    )
    assert np.all(g[15:22] == 0.0)
    assert np.abs(np.diff(g)).max() <= 0.2 + 1e-12
    assert g[0] > 0.99 and g[-1] > 0.99
    # The fall starts before the occlusion (look-ahead), the rise after it.
    assert 0.0 < g[13] < g[10]
    assert 0.0 < g[23] < g[30]


def test_combined_motion_stays_continuous_through_an_occlusion():
    """Smooth motion, a noisy reconstruction that turns to garbage while occluded."""
    rng = np.random.default_rng(5)
    T = 100
    t = np.arange(T, dtype=np.float64)
    axes = rng.normal(size=(24, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    phase = rng.uniform(0.0, 6.0, size=24)
    truth = axes[None] * (0.5 * np.sin(2 * np.pi * t[:, None] / 80.0 + phase))[..., None]
    truth_t = np.stack([0.02 * t, np.zeros(T), 5.0 + 0.01 * t], axis=1)
    noise = axis_angle_to_matrix(rng.normal(scale=0.01, size=(T, 24, 3)))
    recon = matrix_to_axis_angle(axis_angle_to_matrix(truth) @ noise)
    recon_t = truth_t + rng.normal(scale=0.005, size=(T, 3))
    occluded = np.zeros(T, dtype=bool)
    occluded[40:55] = True
    recon[occluded] = rng.normal(scale=1.5, size=(occluded.sum(), 24, 3))
    recon_t[occluded] += rng.normal(scale=0.5, size=(occluded.sum(), 3))
    reliability = np.where(occluded, 0.1, 0.9)

    truth_step = axis_angle_distance(truth[1:], truth[:-1]).max()
    truth_t_step = np.linalg.norm(np.diff(truth_t, axis=0), axis=1).max()
    noise_step = 0.05  # two frames of 0.01 rad noise per axis, worst joint of 24
    steps = {}
    for max_step in (0.2, 1.0):
        g = gate_from_reliability(
            reliability, occluded, np.ones(T, dtype=bool), CombinerConfig(max_gate_step=max_step)
        )
        pose, transl, pred, pred_t = combine_track(recon, recon_t, g, ~occluded)
        # The garbage never leaks into the output: occluded frames are the prediction.
        np.testing.assert_array_equal(pose[occluded], pred[occluded])
        steps[max_step] = (
            axis_angle_distance(pose[1:], pose[:-1]).max(),
            np.linalg.norm(np.diff(transl, axis=0), axis=1).max(),
        )
        # How far the extrapolation drifted from the observation by the end of the gap.
        drift = axis_angle_distance(pred[55], recon[55]).max()
        drift_t = np.linalg.norm(pred_t[55] - recon_t[55])
    rot_step, transl_step = steps[0.2]
    # Gate ramp 0.2, 0.4, 0.6, ... closes at most 0.4 * 0.8 = 0.32 of the drift in a frame.
    assert rot_step < 0.35 * drift + truth_step + noise_step, (rot_step, drift, truth_step)
    assert transl_step < 0.35 * drift_t + truth_t_step + 0.015, (transl_step, drift_t)
    # Without the rate limit the whole drift is closed in one frame.
    assert steps[1.0][0] > 0.8 * drift > rot_step

    # The stateless path (prediction from observed frames only) re-anchors at the end of
    # the gap and jumps: what combine_track exists to avoid.
    pred, pred_t = predict_track(recon, recon_t, ~occluded)
    g = gate_from_reliability(reliability, occluded, np.ones(T, dtype=bool), CombinerConfig())
    stateless, _ = combine(recon, recon_t, pred, pred_t, g)
    assert axis_angle_distance(stateless[1:], stateless[:-1]).max() > rot_step


def test_combine_track_follows_the_observation_when_reliable_and_handles_no_data():
    T = 30
    t = np.arange(T, dtype=np.float64)
    recon = np.zeros((T, 24, 3))
    recon[:, :, 1] = 0.02 * t[:, None]
    recon_t = np.stack([0.01 * t, np.zeros(T), np.full(T, 4.0)], axis=1)
    pose, transl, _, _ = combine_track(recon, recon_t, np.ones(T), np.ones(T, dtype=bool))
    np.testing.assert_allclose(pose, recon, atol=1e-12)
    np.testing.assert_allclose(transl, recon_t, atol=1e-12)
    # Constant velocity carries through a gap without damping, and the NaNs there are ignored.
    observed = np.ones(T, dtype=bool)
    observed[10:20] = False
    holey = recon.copy()
    holey[10:20] = np.nan
    pose, transl, _, _ = combine_track(
        holey,
        recon_t,
        observed.astype(float),
        observed,
        PredictorConfig(damping=1.0, transl_damping=1.0, relax_frames=0.0, max_velocity_gap=5),
    )
    np.testing.assert_allclose(pose, recon, atol=1e-9)
    # The Kalman velocity has nearly converged after ten frames.
    np.testing.assert_allclose(transl, recon_t, atol=5e-3)
    nothing = combine_track(recon, recon_t, np.ones(T), np.zeros(T, dtype=bool))
    assert all(np.all(a == 0.0) for a in nothing)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="alike"):
        gate_from_reliability(np.ones(3), np.zeros(4, dtype=bool), np.ones(3, dtype=bool))
    recon, recon_t, pred, pred_t = _random_track(4, seed=2)
    with pytest.raises(ValueError, match="combine"):
        combine(recon, recon_t[:3], pred, pred_t, np.ones(4))
    with pytest.raises(ValueError, match="max_gate_step"):
        CombinerConfig(max_gate_step=0.0)
