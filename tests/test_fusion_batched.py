"""The batched Predictor + Combiner against the per-track, per-frame loop it replaced.

``fuse_tracks`` and ``combine_tracks`` run all tracks and joints side by side on
quaternions; the reference (``fusion_reference.py``) is the earlier implementation (one
track at a time, rotation matrices, a Python loop over frames), kept in substance. Rotations
are compared as rotations (the angle of R_ref^T R_new), since axis-angle is ambiguous at pi.
"""

from __future__ import annotations

import fusion_reference as reference
import numpy as np
import pytest

from ram_core.body.rotations import (
    axis_angle_distance,
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    matrix_to_axis_angle,
)
from ram_core.io.result import TRACK_ARRAYS
from ram_core.motion.combiner import (
    CombinerConfig,
    _rate_limit,
    combine_track,
    combine_tracks,
    gate_from_reliability,
)
from ram_core.motion.fusion import fuse_tracks, track_reconstruction, track_slices
from ram_core.motion.predictor import (
    PredictorConfig,
    rotation_step_quaternions,
    velocity_frames,
)

# --------------------------------------------------------------------------- reference


def _motion(T: int, rng: np.random.Generator, near_pi: bool = False):
    """Smooth per-joint rotations with reconstruction noise, (T, 24, 3), and a walk."""
    t = np.arange(T, dtype=np.float64)
    axes = rng.normal(size=(24, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    phase = rng.uniform(0.0, 6.0, size=24)
    amplitude = rng.uniform(0.1, 1.2, size=24)
    angle = amplitude * np.sin(2 * np.pi * t[:, None] / rng.uniform(30, 90) + phase)
    if near_pi:
        # Around a half turn: the axis-angle flips between +axis and -axis from frame to
        # frame while the rotation barely moves.
        angle = np.pi + 0.02 * np.sin(t[:, None] / 5.0 + phase)
    truth = axes[None] * angle[..., None]
    noise = axis_angle_to_matrix(rng.normal(scale=0.01, size=(T, 24, 3)))
    pose = matrix_to_axis_angle(axis_angle_to_matrix(truth) @ noise)
    transl = np.stack([0.02 * t, 0.1 * np.sin(t / 20.0), 5.0 + 0.01 * t], axis=1)
    transl += rng.normal(scale=0.005, size=(T, 3))
    return pose, transl


def _track_specs():
    """(length, kind): several lengths, a single row, one with nothing usable."""
    return [
        (140, "plain"),
        (1, "plain"),
        (60, "near_pi"),
        (9, "nothing"),
        (95, "holes"),
        (2, "late"),
        (120, "exact"),
    ]


def _make_table(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    specs = _track_specs()
    n = sum(length for length, _ in specs)
    table = {
        name: np.zeros((n, *shape), dtype=dtype) for name, (shape, dtype) in TRACK_ARRAYS.items()
    }
    row = 0
    for track_id, (length, kind) in enumerate(specs, start=3):
        rows = slice(row, row + length)
        pose, transl = _motion(length, rng, near_pi=kind == "near_pi")
        valid = np.ones(length, dtype=bool)
        occluded = np.zeros(length, dtype=bool)
        reliability = np.clip(rng.normal(0.75, 0.15, length), 0.0, 1.0)
        if length > 20:
            start = int(rng.integers(5, length - 15))
            occluded[start : start + int(rng.integers(3, 12))] = True
            reliability[occluded] = 0.1
            # Garbage while occluded, real-looking but wrong.
            pose[occluded] = rng.normal(scale=1.5, size=(int(occluded.sum()), 24, 3))
            valid[rng.uniform(size=length) < 0.05] = False
        if kind == "holes":
            valid[10:14] = False
            valid[40:47] = False  # longer than max_velocity_gap
            reliability[60:62] = np.nan
        if kind == "nothing":
            valid[:] = False
        if kind == "late":
            valid[0] = False
        if kind == "exact":
            reliability[20:50] = 10.0  # gate exactly 1
            occluded[70:80] = True  # gate exactly 0
        pose[~valid] = np.nan  # a missing reconstruction holds anything, NaN included
        transl[~valid] = np.nan
        table["track_id"][rows] = track_id
        table["frame"][rows] = np.arange(length) + int(rng.integers(0, 50))
        table["recon_global_orient"][rows] = pose[:, 0]
        table["recon_body_pose"][rows] = pose[:, 1:]
        table["recon_transl"][rows] = transl
        table["recon_valid"][rows] = valid
        table["occluded"][rows] = occluded
        table["reliability"][rows] = reliability
        row += length
    return table


CONFIGS = [
    (PredictorConfig(), CombinerConfig()),
    (
        PredictorConfig(damping=1.0, transl_damping=1.0, max_velocity_gap=1, relax_frames=0),
        CombinerConfig(max_gate_step=1.0),
    ),
    (
        PredictorConfig(
            damping=0.7,
            transl_damping=0.5,
            max_angular_speed=0.05,
            relax_frames=3.0,
            usual_pose_frames=5,
            max_velocity_gap=5,
        ),
        CombinerConfig(reliability_midpoint=0.7, max_gate_step=0.05),
    ),
]


def _rotation_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(axis_angle_distance(a, b).max(initial=0.0))


def _track_inputs(table):
    slices = track_slices(table["track_id"])
    recon_pose, recon_transl, recon_valid, observed = track_reconstruction(
        table, slice(0, table["track_id"].size)
    )
    return slices, recon_pose, recon_transl, recon_valid, observed


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(("predictor_config", "combiner_config"), CONFIGS)
def test_combine_tracks_matches_the_per_track_loop(predictor_config, combiner_config):
    table = _make_table(seed=1)
    slices, recon_pose, recon_transl, recon_valid, observed = _track_inputs(table)
    rng = np.random.default_rng(2)
    gate = rng.uniform(0.0, 1.0, recon_valid.size)
    gate[rng.uniform(size=gate.size) < 0.1] = 0.0
    gate[rng.uniform(size=gate.size) < 0.1] = 1.0
    pose, transl, pred_pose, pred_transl = combine_tracks(
        recon_pose, recon_transl, gate, observed, slices, predictor_config
    )
    for rows in slices:
        expected = reference.combine_track(
            recon_pose[rows], recon_transl[rows], gate[rows], observed[rows], predictor_config
        )
        assert _rotation_error(pose[rows], expected[0]) < 1e-9
        assert _rotation_error(pred_pose[rows], expected[2]) < 1e-9
        np.testing.assert_allclose(transl[rows], expected[1], rtol=0, atol=1e-9)
        np.testing.assert_allclose(pred_transl[rows], expected[3], rtol=0, atol=1e-9)
        assert np.all(np.isfinite(pose[rows])) and np.all(np.isfinite(transl[rows]))


def test_the_gate_s_ends_give_their_source_exactly():
    table = _make_table(seed=3)
    slices, recon_pose, recon_transl, _, observed = _track_inputs(table)
    usable = observed & np.all(np.isfinite(recon_pose), axis=(1, 2))
    gate = np.where(np.arange(usable.size) % 3 == 0, 1.0, 0.0)
    pose, _, pred_pose, _ = combine_tracks(recon_pose, recon_transl, gate, observed, slices)
    checked = 0
    for rows in slices:
        if not usable[rows].any():
            continue
        first = rows.start + int(np.argmax(usable[rows]))
        np.testing.assert_array_equal(
            pose[rows.start : first + 1], pred_pose[rows.start : first + 1]
        )
        for row in range(first + 1, rows.stop):
            if usable[row] and gate[row] == 1.0:
                np.testing.assert_array_equal(pose[row], recon_pose[row])
            else:
                np.testing.assert_array_equal(pose[row], pred_pose[row])
            checked += 1
    assert checked > 300


def test_single_track_edge_cases():
    rng = np.random.default_rng(4)
    pose, transl = _motion(30, rng)
    # No usable frame: everything zero.
    nothing = combine_track(pose, transl, np.ones(30), np.zeros(30, dtype=bool))
    assert all(np.all(a == 0.0) for a in nothing)
    # One frame.
    one = combine_track(pose[:1], transl[:1], np.full(1, 0.3), np.ones(1, dtype=bool))
    for got, expected in zip(one, (pose[:1], transl[:1], pose[:1], transl[:1]), strict=True):
        np.testing.assert_array_equal(got, expected)
    # Nothing at all.
    empty = combine_track(pose[:0], transl[:0], np.zeros(0), np.zeros(0, dtype=bool))
    assert [a.shape for a in empty] == [(0, 24, 3), (0, 3), (0, 24, 3), (0, 3)]
    # NaN rows before the first observation and a NaN gate.
    observed = np.ones(30, dtype=bool)
    observed[:4] = False
    holey = pose.copy()
    holey[:4] = np.nan
    gate = rng.uniform(size=30)
    gate[10] = np.nan
    got = combine_track(holey, transl, gate, observed)
    expected = reference.combine_track(holey, transl, gate, observed, PredictorConfig())
    assert _rotation_error(got[0], expected[0]) < 1e-9
    np.testing.assert_allclose(got[1], expected[1], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got[0][:5], np.broadcast_to(pose[4], (5, 24, 3)))


@pytest.mark.parametrize(("predictor_config", "combiner_config"), CONFIGS)
def test_fuse_tracks_matches_the_per_track_loop(predictor_config, combiner_config):
    table = _make_table(seed=5)
    got = fuse_tracks(table, predictor_config, combiner_config)
    expected = reference.fuse_tracks(table, predictor_config, combiner_config)
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name].dtype == expected[name].dtype, name
    for prefix in ("", "pred_", "recon_"):
        for name in (f"{prefix}global_orient", f"{prefix}body_pose"):
            a = got[name].astype(np.float64)
            b = expected[name].astype(np.float64)
            assert np.all(np.isfinite(a)), name
            assert _rotation_error(a, b) < 1e-6, name
        name = f"{prefix}transl"
        a, b = got[name].astype(np.float64), expected[name].astype(np.float64)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(got["gate"], expected["gate"], rtol=0, atol=1e-7)
    untouched = set(expected) - {
        f"{p}{n}" for p in ("", "pred_", "recon_") for n in ("global_orient", "body_pose", "transl")
    }
    for name in untouched - {"gate"}:
        np.testing.assert_array_equal(got[name], table[name], err_msg=name)


def test_fusing_some_tracks_leaves_the_others_bit_identical():
    table = _make_table(seed=6)
    everything = fuse_tracks(table)
    ids = np.unique(table["track_id"])
    for chosen in ([int(ids[0])], [int(ids[2]), int(ids[4])], []):
        got = fuse_tracks(table, track_ids=chosen)
        mine = np.isin(table["track_id"], chosen)
        for name, column in got.items():
            np.testing.assert_array_equal(column[~mine], table[name][~mine], err_msg=name)
            if column.dtype.kind == "f":
                np.testing.assert_allclose(
                    column[mine], everything[name][mine], rtol=0, atol=1e-6, err_msg=name
                )
            else:
                np.testing.assert_array_equal(column[mine], everything[name][mine])
    # Unknown ids change nothing.
    got = fuse_tracks(table, track_ids=[999])
    for name, column in got.items():
        np.testing.assert_array_equal(column, table[name])


@pytest.mark.parametrize("max_step", [0.2, 0.05, 0.7, 1e-4])
def test_rate_limit_matches_the_two_sweeps(max_step):
    rng = np.random.default_rng(7)
    targets = rng.uniform(size=(5, 90))
    targets[rng.uniform(size=targets.shape) < 0.15] = 0.0
    targets[1, 30:60] = 1.0
    got = _rate_limit(targets, max_step)
    for row, target in zip(got, targets, strict=True):
        np.testing.assert_allclose(row, reference.rate_limit(target, max_step), rtol=0, atol=1e-12)
        np.testing.assert_allclose(_rate_limit(target, max_step), row, rtol=0, atol=0)
    assert np.all(got[targets == 0.0] == 0.0)
    assert _rate_limit(np.zeros(0), 0.2).shape == (0,)
    assert _rate_limit(np.ones(1), 0.2).tolist() == [1.0]


def test_gates_of_many_tracks_are_each_track_s_gate():
    rng = np.random.default_rng(8)
    reliability = rng.uniform(size=(4, 50))
    reliability[0, 5] = np.nan
    occluded = rng.uniform(size=(4, 50)) < 0.1
    valid = rng.uniform(size=(4, 50)) > 0.05
    config = CombinerConfig(max_gate_step=0.15)
    both = gate_from_reliability(reliability, occluded, valid, config)
    for i in range(4):
        row = gate_from_reliability(reliability[i], occluded[i], valid[i], config)
        np.testing.assert_array_equal(both[i], row)
        np.testing.assert_allclose(
            row,
            reference.gate_of_track(reliability[i], occluded[i], valid[i], config),
            rtol=0,
            atol=1e-12,
        )


def test_rotation_step_quaternions_are_prediction_steps_rotations():
    rng = np.random.default_rng(9)
    T = 80
    poses, valids = [], []
    for kind in (False, True):
        pose, _ = _motion(T, rng, near_pi=kind)
        valid = rng.uniform(size=T) > 0.2
        valid[20:31] = False
        poses.append(pose)
        valids.append(valid)
    config = PredictorConfig(damping=0.8, max_angular_speed=0.1, max_velocity_gap=3)
    valid = np.stack(valids, axis=1)  # (T, 2)
    quat = np.stack([axis_angle_to_quaternion(p) for p in poses], axis=1)  # (T, 2, 24, 4)
    last, before = velocity_frames(valid)
    tracks = np.arange(2)
    planes = np.moveaxis(quat, -1, 0)  # (4, T, 2, 24)
    step = rotation_step_quaternions(
        planes[:, np.maximum(before, 0), tracks],
        planes[:, np.maximum(last, 0), tracks],
        np.where(before >= 0, last - before, 0)[..., None],
        (np.arange(T)[:, None] - last)[..., None],
        config,
    )
    for i in range(2):
        expected, _ = reference.prediction_steps(poses[i], np.zeros((T, 3)), valids[i], config)
        w = step[0, :, i]
        v = np.moveaxis(step[1:, :, i], 0, -1)
        np.testing.assert_allclose(np.sum(step[:, :, i] ** 2, axis=0), 1.0, atol=1e-12)
        as_aa = (
            2.0
            * np.arctan2(np.linalg.norm(v, axis=-1), w)[..., None]
            * (v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-300))
        )
        assert _rotation_error(as_aa, expected) < 1e-10
        ref_last = reference.last_valid_before(valids[i])
        np.testing.assert_array_equal(last[:, i], ref_last)
        ref_before = np.where(ref_last >= 0, ref_last[np.maximum(ref_last, 0)], -1)
        np.testing.assert_array_equal(before[:, i], ref_before)


def test_track_rows_are_checked():
    pose = np.zeros((5, 24, 3))
    transl = np.zeros((5, 3))
    with pytest.raises(ValueError, match="track_rows"):
        combine_tracks(pose, transl, np.ones(5), np.ones(5, dtype=bool), [slice(0, 6)])
    with pytest.raises(ValueError, match="track_rows"):
        combine_tracks(pose, transl, np.ones(5), np.ones(5, dtype=bool), [slice(0, 5, 2)])
    # Rows in no track stay zero.
    pose[:] = 0.3
    got = combine_tracks(pose, transl, np.ones(5), np.ones(5, dtype=bool), [slice(1, 3)])
    assert np.all(got[0][[0, 3, 4]] == 0.0) and np.all(got[0][1:3] == 0.3)
