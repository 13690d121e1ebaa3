"""Tracking metrics against py-motmetrics' own figures and hand-made cases; 3D pose metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ram_core.eval.datasets import read_mot_challenge
from ram_core.eval.metrics import (
    LSP14_HIPS,
    MATCH,
    SWITCH,
    TrackedBoxes,
    acceleration_error,
    evaluate_mot,
    mot_events,
    mpjpe,
    pa_mpjpe,
    procrustes_align,
    similarity_procrustes,
)

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = json.loads((FIXTURES / "motmetrics_reference.json").read_text())["sequences"]


def tracks(*rows: tuple[int, int, float, float, float, float]) -> TrackedBoxes:
    """Rows of (frame, id, x1, y1, x2, y2)."""
    a = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return TrackedBoxes(a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2:])


def walk(track_id: int, frames: range, x0: float = 0.0, step: float = 10.0) -> list[tuple]:
    return [(f, track_id, x0 + step * f, 0.0, x0 + step * f + 50.0, 100.0) for f in frames]


# --- against py-motmetrics 1.4.0 ---------------------------------------------------------


@pytest.mark.parametrize("sequence", sorted(REFERENCE))
def test_metrics_equal_py_motmetrics(sequence):
    gt = read_mot_challenge(FIXTURES / "mot" / sequence / "gt.txt").boxes
    pred = read_mot_challenge(FIXTURES / "mot" / sequence / "test.txt").boxes
    ours = evaluate_mot(gt, pred).as_dict()
    for name, expected in REFERENCE[sequence].items():
        assert ours[name] == pytest.approx(expected, abs=1e-6), name
    assert ours["motp_iou"] == pytest.approx(1.0 - REFERENCE[sequence]["motp"], abs=1e-6)


def test_reference_covers_switches_and_fragmentations():
    # The check above only means something if the sequences exercise every kind of error.
    for figures in REFERENCE.values():
        for name in ("num_switches", "num_fragmentations", "num_false_positives", "num_misses"):
            assert figures[name] > 0, name


# --- hand-made cases ----------------------------------------------------------------------


def test_perfect_tracking():
    gt = tracks(*walk(1, range(1, 6)), *walk(2, range(1, 6), x0=300))
    pred = tracks(*[(f, i + 10, *box) for f, i, *box in gt_rows(gt)])
    m = evaluate_mot(gt, pred)
    assert (m.mota, m.idf1, m.idp, m.idr, m.motp, m.motp_iou) == (1.0, 1.0, 1.0, 1.0, 0.0, 1.0)
    assert (m.num_switches, m.num_misses, m.num_false_positives, m.num_fragmentations) == (
        0,
        0,
        0,
        0,
    )
    assert (m.num_objects, m.num_predictions, m.num_unique_objects, m.num_frames) == (10, 10, 2, 5)
    assert m.mostly_tracked == 2


def gt_rows(boxes: TrackedBoxes) -> list[tuple]:
    return [
        (int(f), int(i), *b)
        for f, i, b in zip(boxes.frame, boxes.track_id, boxes.box_xyxy, strict=True)
    ]


def test_one_id_switch():
    gt = tracks(*walk(1, range(4)))
    pred = tracks(*walk(7, range(2)), *walk(8, range(2, 4)))
    m = evaluate_mot(gt, pred)
    assert m.num_switches == 1
    assert m.mota == pytest.approx(1 - 1 / 4)
    # The best single identity covers 2 of 4 frames.
    assert (m.idtp, m.idfp, m.idfn) == (2, 2, 2)
    assert m.idf1 == pytest.approx(0.5)
    assert m.num_fragmentations == 0


def test_one_miss_at_the_end_is_not_a_fragmentation():
    gt = tracks(*walk(1, range(3)))
    pred = tracks(*walk(1, range(2)))
    m = evaluate_mot(gt, pred)
    assert (m.num_misses, m.num_fragmentations, m.num_switches) == (1, 0, 0)
    assert m.mota == pytest.approx(2 / 3)
    assert m.idr == pytest.approx(2 / 3)
    assert m.idp == pytest.approx(1.0)


def test_a_gap_inside_a_track_is_one_fragmentation():
    gt = tracks(*walk(1, range(6)))
    pred = tracks(*walk(1, [0, 1, 3, 5]))  # missed at 2 and at 4: two gaps
    m = evaluate_mot(gt, pred)
    assert (m.num_misses, m.num_fragmentations, m.num_switches) == (2, 2, 0)


def test_one_false_positive():
    gt = tracks(*walk(1, range(4)))
    pred = tracks(*walk(1, range(4)), (2, 5, 900.0, 900.0, 950.0, 1000.0))
    m = evaluate_mot(gt, pred)
    assert (m.num_false_positives, m.num_misses, m.num_switches) == (1, 0, 0)
    assert m.mota == pytest.approx(1 - 1 / 4)
    assert m.precision == pytest.approx(4 / 5)
    assert m.idp == pytest.approx(4 / 5)


def test_iou_exactly_at_the_threshold_pairs_and_motp_is_its_distance():
    gt = tracks((0, 1, 0.0, 0.0, 2.0, 1.0))
    half = tracks((0, 1, 0.0, 0.0, 1.0, 1.0))  # IoU exactly 0.5
    third = tracks((0, 1, 0.0, 0.0, 2.0, 1.5))  # IoU 2/3
    below = tracks((0, 1, 0.0, 0.0, 0.9, 1.0))  # IoU 0.45
    assert evaluate_mot(gt, half).num_matches == 1
    assert evaluate_mot(gt, half).motp == pytest.approx(0.5)
    assert evaluate_mot(gt, third).motp_iou == pytest.approx(2 / 3)
    assert evaluate_mot(gt, below).num_misses == 1
    assert evaluate_mot(gt, below, iou_threshold=0.4).num_matches == 1


def test_a_kept_correspondence_beats_a_better_new_pairing():
    # Frame 1 pairs object 1 with prediction 1. In frame 2 prediction 2 fits better, but the
    # earlier pairing is still allowed (IoU >= 0.5), so it is kept: no switch, one FP.
    gt = tracks((1, 1, 0.0, 0.0, 100.0, 100.0), (2, 1, 0.0, 0.0, 100.0, 100.0))
    pred = tracks(
        (1, 1, 0.0, 0.0, 100.0, 100.0),
        (2, 1, 0.0, 0.0, 100.0, 60.0),  # IoU 0.6
        (2, 2, 0.0, 0.0, 100.0, 100.0),  # IoU 1.0
    )
    events, _ = mot_events(gt, pred)
    assert [(e.frame, e.kind, e.pred_id) for e in events if e.kind in (MATCH, SWITCH)] == [
        (1, MATCH, 1),
        (2, MATCH, 1),
    ]
    m = evaluate_mot(gt, pred)
    assert (m.num_switches, m.num_false_positives) == (0, 1)


def test_a_lost_correspondence_is_re_paired_by_minimum_cost():
    # Object 1's prediction leaves; two candidates remain and the closer one is taken.
    gt = tracks((1, 1, 0.0, 0.0, 100.0, 100.0), (2, 1, 0.0, 0.0, 100.0, 100.0))
    pred = tracks(
        (1, 1, 0.0, 0.0, 100.0, 100.0),
        (2, 2, 0.0, 0.0, 100.0, 70.0),
        (2, 3, 0.0, 0.0, 100.0, 95.0),
    )
    events, _ = mot_events(gt, pred)
    switch = [e for e in events if e.kind == SWITCH]
    assert [(e.frame, e.pred_id) for e in switch] == [(2, 3)]


def test_idf1_counts_identities_not_frame_matches():
    # Two people swap predicted IDs halfway: two switches, and the best identity mapping
    # covers only half of each track.
    a, b = walk(1, range(4)), walk(2, range(4), x0=500)
    gt = tracks(*a, *b)
    pred_rows = [(f, 10 if f < 2 else 20, *box) for f, _, *box in a]
    pred_rows += [(f, 20 if f < 2 else 10, *box) for f, _, *box in b]
    m = evaluate_mot(gt, tracks(*pred_rows))
    assert m.num_switches == 2
    assert m.mota == pytest.approx(1 - 2 / 8)
    assert m.idtp == 4
    assert m.idf1 == pytest.approx(0.5)


def test_no_predictions():
    gt = tracks(*walk(1, range(3)))
    m = evaluate_mot(gt, tracks())
    assert (m.mota, m.idf1, m.recall) == (0.0, 0.0, 0.0)
    assert math.isnan(m.motp)
    assert m.mostly_lost == 1


def test_tracked_boxes_refuse_bad_input():
    with pytest.raises(ValueError, match="more than once"):
        tracks((0, 1, 0, 0, 1, 1), (0, 1, 2, 2, 3, 3))
    with pytest.raises(ValueError, match="disagree"):
        TrackedBoxes(np.zeros(2), np.zeros(3), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        TrackedBoxes(np.zeros(2), np.zeros(2), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="iou_threshold"):
        evaluate_mot(tracks(), tracks(), iou_threshold=0.0)


# --- 3D pose ------------------------------------------------------------------------------


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.fixture
def poses() -> np.ndarray:
    """(T, 14, 3) joints in mm, not symmetric, so a mirror image is a different pose."""
    rng = np.random.default_rng(3)
    return rng.normal(scale=300.0, size=(5, 14, 3))


def test_mpjpe_is_zero_for_a_shifted_copy_and_measures_offsets(poses):
    shifted = poses + np.array([100.0, -50.0, 2000.0])
    assert mpjpe(shifted, poses, root_indices=LSP14_HIPS) == pytest.approx(0.0, abs=1e-9)
    moved = poses.copy()
    moved[:, 7] += [0.0, 30.0, 40.0]  # 50 mm on one joint that is not a hip
    assert mpjpe(moved, poses, root_indices=LSP14_HIPS) == pytest.approx(50.0 / 14)


def test_mpjpe_centres_on_the_mean_of_the_hips(poses):
    moved = poses.copy()
    moved[:, 2] += [14.0, 0.0, 0.0]  # one hip moves 14: the root moves 7, every joint errs 7
    assert mpjpe(moved, poses, root_indices=LSP14_HIPS) == pytest.approx(7.0)
    assert mpjpe(moved, poses, root_indices=(3,)) == pytest.approx(14.0 / 14)


def test_pa_mpjpe_removes_a_similarity_transform(poses):
    rng = np.random.default_rng(0)
    rotation = random_rotation(rng)
    pred = 1.7 * poses @ rotation.T + [10.0, 20.0, 30.0]
    assert pa_mpjpe(pred, poses) == pytest.approx(0.0, abs=1e-8)
    scale, rot, translation = similarity_procrustes(pred, poses)
    assert scale == pytest.approx(np.full(5, 1 / 1.7))
    assert np.allclose(rot, rotation.T)
    assert np.allclose(procrustes_align(pred, poses), poses)
    assert translation.shape == (5, 3)


def test_procrustes_never_reflects(poses):
    mirrored = poses * [-1.0, 1.0, 1.0]
    _, rotation, _ = similarity_procrustes(mirrored, poses)
    assert np.allclose(np.linalg.det(rotation), 1.0)
    # A reflection would fit the mirror image exactly; a rotation cannot.
    assert pa_mpjpe(mirrored, poses) > 50.0


def test_procrustes_fit_is_a_least_squares_optimum(poses):
    rng = np.random.default_rng(1)
    pred = poses[:1] + rng.normal(scale=40.0, size=(1, 14, 3))
    scale, rotation, translation = similarity_procrustes(pred, poses[:1])

    def loss(s, r, t):
        return float((((s * pred[0] @ r.T + t) - poses[0]) ** 2).sum())

    best = loss(scale[0], rotation[0], translation[0])
    for _ in range(200):
        # A small random turn, projected back onto the rotations.
        w = rng.normal(scale=0.05, size=3)
        skew = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
        u, _, vt = np.linalg.svd(rotation[0] @ (np.eye(3) + skew))
        s = scale[0] * (1 + rng.normal(scale=0.05))
        t = translation[0] + rng.normal(scale=5.0, size=3)
        assert loss(s, u @ vt, t) >= best - 1e-6


def test_acceleration_error_known_value():
    gt = np.zeros((5, 2, 3))
    pred = gt.copy()
    pred[2] += [0.0, 0.0, 1.0]  # one frame jumps 1 unit: accelerations 1, -2, 1
    assert acceleration_error(pred, gt) == pytest.approx(4 / 3)
    steady = np.cumsum(np.ones((6, 3, 3)), axis=0)  # constant velocity: no acceleration
    assert acceleration_error(steady, np.zeros((6, 3, 3))) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="3 frames"):
        acceleration_error(gt[:2], gt[:2])


def test_acceleration_error_can_centre_on_the_root():
    gt = np.zeros((4, 3, 3))
    pred = gt.copy()
    pred[1] += 5.0  # the whole body jumps: no error once centred on the root
    assert acceleration_error(pred, gt) > 0
    assert acceleration_error(pred, gt, root_indices=(0,)) == pytest.approx(0.0)


def test_joint_metrics_refuse_mismatched_shapes(poses):
    with pytest.raises(ValueError, match="alike"):
        mpjpe(poses, poses[:, :13])
