"""Tracking metrics (CLEAR-MOT, identity measures) and 3D pose metrics. Pure numpy/scipy.

Tracking follows py-motmetrics 1.4.0 (``MOTAccumulator.update`` and ``metrics.create``)
definition for definition, so our figures equal its figures on the same files:

- A ground-truth box and a predicted box may pair in a frame when their IoU is at least
  ``iou_threshold`` (py-motmetrics: distance ``1 - IoU <= 0.5``).
- Frame by frame, a pairing made earlier is kept while it is still allowed; the remaining
  boxes are paired by a minimum-cost assignment on ``1 - IoU``. A ground-truth object paired
  with a different prediction than last time is an ID switch; unpaired ground truth is a
  miss, an unpaired prediction a false positive.
- MOTA = 1 - (misses + switches + false positives) / ground-truth boxes.
- MOTP is reported in py-motmetrics' convention: the mean *distance* ``1 - IoU`` over the
  pairs (matches and switches), so lower is better. ``motp_iou`` = 1 - MOTP is the mean IoU
  of the pairs (the MOTChallenge devkit's convention, higher is better).
- A fragmentation is a tracked-to-missed transition of one object between the first and the
  last frame it is tracked.
- IDF1/IDP/IDR (Ristani et al. 2016): one global one-to-one assignment of predicted
  identities to ground-truth identities that maximises the number of frames in which the
  two boxes could pair (IoU at or above the threshold), counted independently of the
  frame-by-frame matching above.

3D metrics take joints as ``(T, J, 3)`` arrays and keep the unit they are given (pass
millimetres for the usual 3DPW figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ram_core.detect.boxes import iou_matrix

MATCH = "MATCH"
SWITCH = "SWITCH"
MISS = "MISS"
FALSE_POSITIVE = "FP"

# Root joints: SMPL-24's pelvis; the hips of the 14 LSP joints (3DPW protocol: the pelvis is
# the mean of the two hips, LSP order r_ankle, r_knee, r_hip, l_hip, ...).
SMPL24_ROOT = (0,)
LSP14_HIPS = (2, 3)


@dataclass(frozen=True)
class TrackedBoxes:
    """Boxes with identities over frames, one row per (frame, track).

    frame: (N,) int64 frame numbers; track_id: (N,) int64; box_xyxy: (N, 4) float64 pixels.
    Rows keep the order they were given in (within a frame that order breaks assignment
    ties, as in py-motmetrics). A track appears at most once per frame.
    """

    frame: np.ndarray
    track_id: np.ndarray
    box_xyxy: np.ndarray

    def __post_init__(self) -> None:
        frame = np.asarray(self.frame, dtype=np.int64).reshape(-1)
        track_id = np.asarray(self.track_id, dtype=np.int64).reshape(-1)
        box = np.asarray(self.box_xyxy, dtype=np.float64)
        if box.size == 0:
            box = box.reshape(0, 4)
        if box.ndim != 2 or box.shape[1] != 4:
            raise ValueError(f"box_xyxy must be (N, 4), got {box.shape}")
        if not frame.shape[0] == track_id.shape[0] == box.shape[0]:
            raise ValueError(
                f"frame, track_id and box_xyxy disagree on N: "
                f"{frame.shape[0]}, {track_id.shape[0]}, {box.shape[0]}"
            )
        if not np.isfinite(box).all():
            raise ValueError("box_xyxy holds a NaN or infinite value")
        pairs = np.stack([frame, track_id], axis=1)
        unique_pairs, counts = np.unique(pairs, axis=0, return_counts=True)
        if counts.size and counts.max() > 1:
            f, t = unique_pairs[int(np.argmax(counts))]
            raise ValueError(f"track {t} appears more than once in frame {f}")
        object.__setattr__(self, "frame", frame)
        object.__setattr__(self, "track_id", track_id)
        object.__setattr__(self, "box_xyxy", box)

    @classmethod
    def from_xywh(
        cls, frame: np.ndarray, track_id: np.ndarray, box_xywh: np.ndarray
    ) -> TrackedBoxes:
        """From top-left corner plus width and height: (N, 4)."""
        b = np.asarray(box_xywh, dtype=np.float64).reshape(-1, 4)
        # x + w exactly as py-motmetrics forms the far corner, so IoUs agree to the last bit.
        return cls(frame, track_id, np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1))

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass(frozen=True)
class MotEvent:
    """One frame-level decision. gt_id is None for a false positive, pred_id for a miss;
    distance is 1 - IoU for a match or switch, NaN otherwise."""

    frame: int
    kind: str
    gt_id: int | None
    pred_id: int | None
    distance: float


@dataclass(frozen=True)
class MotMetrics:
    """CLEAR-MOT and identity measures of one sequence (see the module docstring)."""

    mota: float
    motp: float  # mean (1 - IoU) over pairs: py-motmetrics' convention, lower is better
    motp_iou: float  # mean IoU over pairs: MOTChallenge's convention, higher is better
    idf1: float
    idp: float
    idr: float
    precision: float
    recall: float
    num_frames: int
    num_objects: int  # ground-truth boxes
    num_predictions: int  # predicted boxes
    num_unique_objects: int
    num_matches: int  # pairs that are not switches
    num_switches: int
    num_false_positives: int
    num_misses: int
    num_fragmentations: int
    mostly_tracked: int
    partially_tracked: int
    mostly_lost: int
    idtp: int
    idfp: int
    idfn: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when both are zero (py-motmetrics' quiet divide)."""
    if denominator == 0:
        return float("nan") if numerator == 0 else float(np.sign(numerator) * np.inf)
    return float(numerator) / float(denominator)


def _assign_with_forbidden(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost assignment where NaN marks a forbidden pair: (rows, cols) of allowed pairs.

    Forbidden pairs get a cost no optimal solution of the allowed pairs would take (the
    same constant py-motmetrics uses, so ties break the same way), then are dropped.
    """
    if cost.size == 0:
        return []
    allowed = np.isfinite(cost)
    if not allowed.any():
        return []
    finite = cost
    if not allowed.all():
        c = np.abs(cost[allowed]).max() + 1
        finite = np.where(allowed, cost, 2 * min(cost.shape) * c + 1)
    rows, cols = linear_sum_assignment(finite)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]


def _frame_rows(boxes: TrackedBoxes) -> dict[int, np.ndarray]:
    """frame -> row indices of that frame, in the given order."""
    order = np.argsort(boxes.frame, kind="stable")
    frames, starts = np.unique(boxes.frame[order], return_index=True)
    groups = np.split(order, starts[1:]) if order.size else []
    return {int(f): g for f, g in zip(frames, groups, strict=True)}


def mot_events(
    gt: TrackedBoxes, pred: TrackedBoxes, iou_threshold: float = 0.5
) -> tuple[list[MotEvent], dict[tuple[int, int], int]]:
    """Frame-by-frame CLEAR-MOT decisions, and how often each (gt_id, pred_id) could pair.

    Returns (events in frame order, {(gt_id, pred_id): frames with IoU >= threshold}).
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    max_distance = 1.0 - iou_threshold
    gt_rows = _frame_rows(gt)
    pred_rows = _frame_rows(pred)
    correspondence: dict[int, int] = {}  # gt id -> the prediction it was last paired with
    events: list[MotEvent] = []
    pairable: dict[tuple[int, int], int] = {}

    for frame in sorted(set(gt_rows) | set(pred_rows)):
        g = gt_rows.get(frame, np.empty(0, dtype=np.int64))
        p = pred_rows.get(frame, np.empty(0, dtype=np.int64))
        gt_ids = gt.track_id[g]
        pred_ids = pred.track_id[p]
        distance = 1.0 - iou_matrix(gt.box_xyxy[g], pred.box_xyxy[p])
        distance = np.where(distance <= max_distance, distance, np.nan)
        for i, j in zip(*np.nonzero(np.isfinite(distance)), strict=True):
            key = (int(gt_ids[i]), int(pred_ids[j]))
            pairable[key] = pairable.get(key, 0) + 1

        gt_done = np.zeros(len(g), dtype=bool)
        pred_done = np.zeros(len(p), dtype=bool)
        if len(g) and len(p):
            # Keep last pairings that are still allowed, before any new assignment.
            for i, gt_id in enumerate(gt_ids.tolist()):
                if gt_id not in correspondence:
                    continue
                candidates = np.flatnonzero(~pred_done & (pred_ids == correspondence[gt_id]))
                if candidates.size == 0 or not np.isfinite(distance[i, candidates[0]]):
                    continue
                j = int(candidates[0])
                gt_done[i] = pred_done[j] = True
                events.append(
                    MotEvent(frame, MATCH, gt_id, int(pred_ids[j]), float(distance[i, j]))
                )
            rest = distance.copy()
            rest[gt_done, :] = np.nan
            rest[:, pred_done] = np.nan
            for i, j in _assign_with_forbidden(rest):
                gt_id, pred_id = int(gt_ids[i]), int(pred_ids[j])
                switched = gt_id in correspondence and correspondence[gt_id] != pred_id
                kind = SWITCH if switched else MATCH
                events.append(MotEvent(frame, kind, gt_id, pred_id, float(distance[i, j])))
                gt_done[i] = pred_done[j] = True
                correspondence[gt_id] = pred_id
        events.extend(
            MotEvent(frame, MISS, int(gt_id), None, float("nan")) for gt_id in gt_ids[~gt_done]
        )
        events.extend(
            MotEvent(frame, FALSE_POSITIVE, None, int(pred_id), float("nan"))
            for pred_id in pred_ids[~pred_done]
        )
    return events, pairable


def _fragmentations(states: list[bool]) -> int:
    """Tracked-to-missed transitions between the first and last tracked frame."""
    tracked = np.flatnonzero(states)
    if tracked.size == 0:
        return 0
    span = np.asarray(states[tracked[0] : tracked[-1] + 1])
    return int(np.count_nonzero(span[:-1] & ~span[1:]))


def _identity_true_positives(pairable: dict[tuple[int, int], int]) -> int:
    """Frames covered by the best one-to-one identity assignment (IDTP)."""
    if not pairable:
        return 0
    gt_ids = sorted({g for g, _ in pairable})
    pred_ids = sorted({p for _, p in pairable})
    gt_index = {g: i for i, g in enumerate(gt_ids)}
    pred_index = {p: j for j, p in enumerate(pred_ids)}
    overlap = np.zeros((len(gt_ids), len(pred_ids)))
    for (g, p), count in pairable.items():
        overlap[gt_index[g], pred_index[p]] = count
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return int(overlap[rows, cols].sum())


def evaluate_mot(gt: TrackedBoxes, pred: TrackedBoxes, iou_threshold: float = 0.5) -> MotMetrics:
    """CLEAR-MOT and identity measures of predicted tracks against ground truth."""
    events, pairable = mot_events(gt, pred, iou_threshold)
    kinds = [e.kind for e in events]
    num_matches = kinds.count(MATCH)
    num_switches = kinds.count(SWITCH)
    num_false_positives = kinds.count(FALSE_POSITIVE)
    num_misses = kinds.count(MISS)
    num_paired = num_matches + num_switches
    num_objects = len(gt)
    num_predictions = len(pred)
    distance_sum = float(sum(e.distance for e in events if e.kind in (MATCH, SWITCH)))
    motp = _ratio(distance_sum, num_paired)

    states_by_object: dict[int, list[bool]] = {}
    for e in events:
        if e.gt_id is not None:
            states_by_object.setdefault(e.gt_id, []).append(e.kind != MISS)
    track_ratios = np.array([np.mean(s) for s in states_by_object.values()])

    idtp = _identity_true_positives(pairable)
    return MotMetrics(
        mota=1.0 - _ratio(num_misses + num_switches + num_false_positives, num_objects),
        motp=motp,
        motp_iou=1.0 - motp,
        idf1=_ratio(2 * idtp, num_objects + num_predictions),
        idp=_ratio(idtp, num_predictions),
        idr=_ratio(idtp, num_objects),
        precision=_ratio(num_paired, num_paired + num_false_positives),
        recall=_ratio(num_paired, num_objects),
        num_frames=len(set(gt.frame.tolist()) | set(pred.frame.tolist())),
        num_objects=num_objects,
        num_predictions=num_predictions,
        num_unique_objects=len(states_by_object),
        num_matches=num_matches,
        num_switches=num_switches,
        num_false_positives=num_false_positives,
        num_misses=num_misses,
        num_fragmentations=sum(_fragmentations(s) for s in states_by_object.values()),
        mostly_tracked=int(np.count_nonzero(track_ratios >= 0.8)),
        partially_tracked=int(np.count_nonzero((track_ratios >= 0.2) & (track_ratios < 0.8))),
        mostly_lost=int(np.count_nonzero(track_ratios < 0.2)),
        idtp=idtp,
        idfp=num_predictions - idtp,
        idfn=num_objects - idtp,
    )


# --- 3D pose ----------------------------------------------------------------------------


def _joint_pair(joints_pred: np.ndarray, joints_gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(joints_pred, dtype=np.float64)
    gt = np.asarray(joints_gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim not in (2, 3) or pred.shape[-1] != 3:
        raise ValueError(
            f"joints must be (T, J, 3) or (J, 3) and alike, got {pred.shape} and {gt.shape}"
        )
    if pred.ndim == 2:
        pred, gt = pred[None], gt[None]
    return pred, gt


def centre_on_root(joints: np.ndarray, root_indices: Sequence[int]) -> np.ndarray:
    """(T, J, 3) -> (T, J, 3) with the mean of the root joints moved to the origin."""
    j = np.asarray(joints, dtype=np.float64)
    return j - j[..., list(root_indices), :].mean(axis=-2, keepdims=True)


def similarity_procrustes(
    source: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best similarity transform per frame taking source onto target (least squares).

    source, target: (T, J, 3). Returns scale (T,), rotation (T, 3, 3) with det = +1 and
    translation (T, 3) such that ``scale * source @ rotation.T + translation`` ≈ target.
    A reflection is never used: when the best orthogonal fit would reflect, the axis of the
    smallest singular value is flipped back (Umeyama 1991).
    """
    src, tgt = _joint_pair(source, target)
    src_mean = src.mean(axis=1, keepdims=True)
    tgt_mean = tgt.mean(axis=1, keepdims=True)
    src0 = src - src_mean
    tgt0 = tgt - tgt_mean
    covariance = np.einsum("tji,tjk->tik", tgt0, src0)  # (T, 3, 3) target x source
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))
    sign = np.where(sign == 0, 1.0, sign)
    fix = np.ones_like(singular)
    fix[:, -1] = sign
    rotation = u @ (fix[:, :, None] * vt)
    src_var = np.einsum("tji,tji->t", src0, src0)
    scale = np.einsum("ti,ti->t", singular, fix) / np.maximum(src_var, 1e-12)
    translation = tgt_mean[:, 0] - scale[:, None] * np.einsum(
        "tij,tj->ti", rotation, src_mean[:, 0]
    )
    return scale, rotation, translation


def procrustes_align(joints_pred: np.ndarray, joints_gt: np.ndarray) -> np.ndarray:
    """(T, J, 3) predicted joints moved by their best similarity transform onto the truth."""
    pred, gt = _joint_pair(joints_pred, joints_gt)
    scale, rotation, translation = similarity_procrustes(pred, gt)
    return scale[:, None, None] * np.einsum("tij,tkj->tki", rotation, pred) + translation[:, None]


def mpjpe(
    joints_pred: np.ndarray, joints_gt: np.ndarray, root_indices: Sequence[int] = SMPL24_ROOT
) -> float:
    """Mean per-joint position error after centring both on their root, in the input unit.

    joints: (T, J, 3) or (J, 3). root_indices: joints whose mean is the root (3DPW with 14
    LSP joints: ``LSP14_HIPS``).
    """
    pred, gt = _joint_pair(joints_pred, joints_gt)
    error = centre_on_root(pred, root_indices) - centre_on_root(gt, root_indices)
    return float(np.linalg.norm(error, axis=-1).mean())


def pa_mpjpe(joints_pred: np.ndarray, joints_gt: np.ndarray) -> float:
    """Mean per-joint error after a per-frame similarity Procrustes fit, in the input unit."""
    pred, gt = _joint_pair(joints_pred, joints_gt)
    return float(np.linalg.norm(procrustes_align(pred, gt) - gt, axis=-1).mean())


def acceleration_error(
    joints_pred: np.ndarray,
    joints_gt: np.ndarray,
    root_indices: Sequence[int] | None = None,
) -> float:
    """Mean ||Δ²X_pred − Δ²X_gt|| over frames 1..T-2 and joints, in input unit per frame².

    joints: (T, J, 3) with T >= 3. Δ²X_t = X_{t+1} − 2 X_t + X_{t−1}. With root_indices both
    sequences are centred on their root first (the 3DPW protocol of VIBE and its followers
    measures pelvis-centred joints); None measures the joints as given.
    """
    pred, gt = _joint_pair(joints_pred, joints_gt)
    if pred.shape[0] < 3:
        raise ValueError(f"acceleration needs at least 3 frames, got {pred.shape[0]}")
    if root_indices is not None:
        pred = centre_on_root(pred, root_indices)
        gt = centre_on_root(gt, root_indices)
    accel_pred = pred[2:] - 2.0 * pred[1:-1] + pred[:-2]
    accel_gt = gt[2:] - 2.0 * gt[1:-1] + gt[:-2]
    return float(np.linalg.norm(accel_pred - accel_gt, axis=-1).mean())
