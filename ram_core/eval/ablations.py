"""Ablations on the benchmark scenes: which part of the method buys what (``ram-core eval bench``).

The variants mirror the RAM paper's ablation table, each a named pipeline configuration run
on the lite backend (the full backend needs weights this build cannot have):

- ``full``: SegFollow (appearance memory + Kalman prior) and the Predictor + Combiner, the
  detector every 5 frames (the pipeline's default).
- ``no_segfollow``: SegFollow replaced by a plain Kalman + IoU tracker
  (``ram_core.eval.iou_tracker``, SORT-style), fed by the detector every frame, which a tracker
  without mask propagation needs. Poses, Predictor and Combiner as in ``full``.
- ``no_memory``: SegFollow without its appearance memory. The segmenter is wrapped so that
  its appearance similarity is always 1, which makes SegFollow's ``s_mask`` (similarity x
  mask quality) the mask quality alone: candidates are told apart by mask quality, the
  Kalman prior and the motion gate only. Freezing the EMA (``ema_lambda_min = max = 1``)
  would not remove the memory, only keep the first frame's appearance as a fixed template.
  The paper's row is T-HMR's Memory Cache, which the lite reconstructor does not have;
  SegFollow's appearance memory is the memory the lite pipeline has.
- ``no_predictor``: no prediction at all. Every frame shows its own reconstruction with no
  blending; a frame without one (hidden, or no pose found) holds the track's last
  reconstruction (the first one before the track's first pose). Holding is what a keyed
  timeline shows over a gap; leaving the frames empty would drop exactly the frames the
  Predictor exists for from the pose metrics.
- ``detect_every_frame``: ``full`` with the detector every frame (K = 1 against K = 5).

Scoring, per scene (the conventions are also in the JSON output):

- MOT (CLEAR-MOT, IDF1, ``ram_core.eval.metrics``, IoU >= 0.5): the ground truth is the full body
  box (clipped to the image) of every person in frame whose ``visible_fraction`` is at
  least ``min_visible_fraction`` (default 0.5: a tracker must find a person at least half
  seen). People in frame but less visible are ignored, as MOTChallenge ignores its
  distractors: a predicted box that pairs with one of them (per-frame Hungarian, same IoU)
  is removed before scoring, so following a hidden person is neither a miss nor a false
  positive. Predictions are the rows a tracker claims to see, those not flagged
  ``occluded``, with their ``box_xyxy``: what a MOT tracker reports (the peers report only
  matched boxes). The rows a track carries a hidden person through are the Predictor's
  and are scored by "MPJPE hidden"; counting their guessed boxes as detections charged a
  false positive for every frame a hidden walker was not where a straight line put them.
  MOTP is shown as the mean IoU of the pairs (higher is better).
- 3D (3DPW conventions, ``ram_core.eval.metrics``): tracks are paired with people frame by frame
  by Hungarian on IoU of the track's box (rows not flagged occluded) and the person's
  visible box (``match_tracks_to_people``, the pairing the end-to-end test uses). MPJPE
  (pelvis-centred) and PA-MPJPE (similarity Procrustes) in millimetres over the SMPL-24
  joints of those pairs, from the final (combined) pose. "MPJPE hidden" is the MPJPE over
  the frames a track carried its person through: between two frames paired with the same
  person, the frames in which the track was not paired (the person hidden or missed).
  Matched tracks only: a person no track follows adds nothing here (MOT counts it).
- FPS: frames over the wall time of the pipeline run (decoding, every stage, writing the
  result; no preview), the backend's start-up excluded. Absolute values are this machine's.

The mean row of each variant is the mean over scenes of each column (pose columns over the
scenes where they are defined).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ram_core.body.skeleton import forward_kinematics
from ram_core.config import PipelineConfig, RunConfig
from ram_core.detect.boxes import clip_box, iou_matrix
from ram_core.errors import BadInputError
from ram_core.eval.bench_scenes import BenchScene, SceneGroundTruth
from ram_core.eval.iou_tracker import IouTracker, IouTrackerConfig
from ram_core.eval.metrics import (
    SMPL24_ROOT,
    MotMetrics,
    TrackedBoxes,
    evaluate_mot,
    mpjpe,
    pa_mpjpe,
)
from ram_core.io.progress import NoProgress, Progress
from ram_core.models.backends import Backend, resolve_backend
from ram_core.motion.fusion import track_reconstruction, track_slices
from ram_core.motion.predictor import hold_last_pose
from ram_core.pipeline import (
    TrackerFactory,
    TrackFusion,
    TrackingStage,
    predictor_combiner_fusion,
    run_pipeline,
    segfollow_tracking,
)
from ram_core.track.segfollow import SegFollow
from ram_core.types import Frame, Observation, Prompt, Segmenter

MM_PER_M = 1000.0

# --------------------------------------------------------------------------- variants


class AppearanceBlindSegmenter:
    """A segmenter whose appearance similarity is always 1 (SegFollow without memory).

    It is never a ``MemorySegmenter``: a segmenter with its own per-person memory (SAM2)
    would keep remembering people, so this variant is defined for the lite backend.
    """

    def __init__(self, inner: Segmenter) -> None:
        self.inner = inner

    def segment(self, frame: Frame, prompts: Sequence[Prompt]) -> list[list[Observation]]:
        return self.inner.segment(frame, prompts)

    def appearance_similarity(self, memory: np.ndarray, appearance: np.ndarray) -> float:
        del memory, appearance
        return 1.0

    def forget(self, track_id: int) -> None:
        forget = getattr(self.inner, "forget", None)
        if forget is not None:
            forget(track_id)


def iou_tracking(segmenter: Segmenter, config: RunConfig, fps: float) -> TrackingStage:
    """The Kalman + IoU tracker with SegFollow's confirmation, ageing and birth settings."""
    tracker_config = IouTrackerConfig.from_segfollow(config.segfollow, fps)
    return TrackingStage(IouTracker(segmenter, tracker_config), tracker_config.confirmation_delay)


def memoryless_segfollow_tracking(
    segmenter: Segmenter, config: RunConfig, fps: float
) -> TrackingStage:
    """SegFollow whose s_mask is the mask quality alone (no appearance memory)."""
    return TrackingStage(
        SegFollow(AppearanceBlindSegmenter(segmenter), config.segfollow, fps),
        config.segfollow.confirmation_delay,
    )


def _set_pose(
    table: dict[str, np.ndarray], prefix: str, rows: slice, pose: np.ndarray, transl: np.ndarray
) -> None:
    """Write (T, 24, 3) axis-angle and (T, 3) translation into ``{prefix}*`` columns."""
    table[f"{prefix}global_orient"][rows] = pose[:, 0]
    table[f"{prefix}body_pose"][rows] = pose[:, 1:]
    table[f"{prefix}transl"][rows] = transl


def reconstruction_only_fusion(
    table: dict[str, np.ndarray], config: RunConfig
) -> dict[str, np.ndarray]:
    """No Predictor: each frame keeps its reconstruction; a frame without one holds the
    track's last one. ``pred_*`` hold those held poses and the gate is 1 where observed."""
    del config
    out = {k: np.array(v, copy=True) for k, v in table.items()}
    for rows in track_slices(out["track_id"]):
        recon_pose, recon_transl, recon_valid, observed = track_reconstruction(out, rows)
        held_pose, held_transl = hold_last_pose(recon_pose, recon_transl, observed)
        for prefix, use_recon in (("", observed), ("recon_", recon_valid)):
            # recon_* where invalid take the held pose: the table has no holes (fuse_tracks).
            pose = np.where(use_recon[:, None, None], recon_pose, held_pose)
            transl = np.where(use_recon[:, None], recon_transl, held_transl)
            _set_pose(out, prefix, rows, pose, transl)
        _set_pose(out, "pred_", rows, held_pose, held_transl)
        out["gate"][rows] = observed.astype(np.float32)
    return out


@dataclass(frozen=True)
class Variant:
    """One named configuration of the pipeline."""

    name: str
    summary: str
    detect_every: int
    tracking: TrackerFactory
    fusion: TrackFusion

    def run_config(self, base: RunConfig, focal_px: float | None) -> RunConfig:
        """``base`` with this variant's detection interval, the scene's focal length and no
        preview."""
        pipeline = dataclasses.replace(
            base.pipeline, detect_every=self.detect_every, focal_px=focal_px, preview=False
        )
        return dataclasses.replace(base, pipeline=pipeline)


VARIANTS: dict[str, Variant] = {
    "full": Variant(
        "full",
        "SegFollow + appearance memory + Predictor/Combiner, detector every 5 frames",
        5,
        segfollow_tracking,
        predictor_combiner_fusion,
    ),
    "no_segfollow": Variant(
        "no_segfollow",
        "Kalman + IoU tracker (SORT-style) instead of SegFollow, detector every frame",
        1,
        iou_tracking,
        predictor_combiner_fusion,
    ),
    "no_memory": Variant(
        "no_memory",
        "SegFollow with no appearance memory (s_mask = mask quality), detector every 5",
        5,
        memoryless_segfollow_tracking,
        predictor_combiner_fusion,
    ),
    "no_predictor": Variant(
        "no_predictor",
        "no Predictor: raw reconstruction, gaps hold the last one, detector every 5",
        5,
        segfollow_tracking,
        reconstruction_only_fusion,
    ),
    "detect_every_frame": Variant(
        "detect_every_frame",
        "full, with the detector every frame (K = 1)",
        1,
        segfollow_tracking,
        predictor_combiner_fusion,
    ),
}


def parse_variants(text: str | None) -> list[Variant]:
    """'a,b' -> those variants, in that order (None: all); BadInputError on unknown names."""
    if text is None:
        return list(VARIANTS.values())
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise BadInputError(
            f"unknown variant(s) {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(VARIANTS)}"
        )
    return [VARIANTS[n] for n in dict.fromkeys(names)]


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class BenchSettings:
    """How results are scored against a scene."""

    min_visible_fraction: float = 0.5
    """A person less visible than this is ignored by the MOT figures."""
    iou_threshold: float = 0.5
    """Least box IoU of a match (MOT pairs and the 3D pairing alike)."""
    max_frames: int | None = None
    """Score (and run) only the first frames of each scene."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_visible_fraction <= 1.0:
            raise ValueError(
                f"the least visible fraction must be in [0, 1], got {self.min_visible_fraction}"
            )
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"the IoU threshold must be in (0, 1], got {self.iou_threshold}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"the frame limit must be >= 1, got {self.max_frames}")

    def frames_of(self, scene: BenchScene) -> int:
        total = scene.gt.num_frames
        return total if self.max_frames is None else min(total, self.max_frames)


@dataclass(frozen=True)
class PoseScore:
    """3D errors in millimetres (NaN where no frame counts) and the frames they cover."""

    mpjpe_mm: float
    pa_mpjpe_mm: float
    hidden_mpjpe_mm: float
    frames: int
    hidden_frames: int


# Person heights (full box, pixels) the recall is broken down by: [low, high).
HEIGHT_BINS_PX: tuple[tuple[float, float], ...] = (
    (0.0, 40.0), (40.0, 80.0), (80.0, 160.0), (160.0, math.inf),
)  # fmt: skip


def height_bin_label(low: float, high: float) -> str:
    return f"{low:g}+ px" if math.isinf(high) else f"{low:g}-{high:g} px"


@dataclass(frozen=True)
class SceneScore:
    """One variant on one scene."""

    scene: str
    variant: str
    frames: int
    seconds: float
    mot: MotMetrics
    pose: PoseScore
    # Per HEIGHT_BINS_PX: (people found, people counted) over the scene's frames.
    recall_by_height: tuple[tuple[int, int], ...] = ()

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else math.nan


def match_tracks_to_people(
    tracks: Mapping[str, np.ndarray],
    people_box_xyxy: np.ndarray,
    people_present: np.ndarray,
    min_iou: float = 0.5,
) -> dict[tuple[int, int], int]:
    """Per frame, Hungarian on box IoU between the tracks' rows not flagged occluded and the
    people present in that frame.

    tracks: result table (``frame``, ``track_id``, ``box_xyxy``, ``occluded``, (N,) rows);
    people_box_xyxy: (F, P, 4); people_present: (F, P) bool. Frames beyond F are skipped.
    Returns {(frame, person index): track id} for pairs with IoU >= min_iou.
    """
    matches: dict[tuple[int, int], int] = {}
    frame_col = np.asarray(tracks["frame"])
    usable = ~np.asarray(tracks["occluded"], dtype=bool)
    for frame in np.unique(frame_col):
        if frame >= people_box_xyxy.shape[0]:
            continue
        rows = np.flatnonzero((frame_col == frame) & usable)
        present = np.flatnonzero(people_present[frame])
        if rows.size == 0 or present.size == 0:
            continue
        iou = iou_matrix(tracks["box_xyxy"][rows], people_box_xyxy[frame, present])
        for r, c in zip(*linear_sum_assignment(-iou), strict=True):
            if iou[r, c] >= min_iou:
                matches[(int(frame), int(present[c]))] = int(tracks["track_id"][rows[r]])
    return matches


def carried_through_gaps(
    matches: Mapping[tuple[int, int], int], tracks: Mapping[str, np.ndarray]
) -> dict[tuple[int, int], int]:
    """Frames a track carried its person through: between two frames in which the same
    track is paired with the same person, every frame where that track has a row and is
    paired with nobody. Returns {(frame, person index): track id}."""
    frame_col = np.asarray(tracks["frame"]).tolist()
    rows = set(zip(frame_col, np.asarray(tracks["track_id"]).tolist(), strict=True))
    busy = {(frame, track) for (frame, _), track in matches.items()}
    by_person: dict[int, list[tuple[int, int]]] = {}
    for (frame, person), track in sorted(matches.items()):
        by_person.setdefault(person, []).append((frame, track))
    carried: dict[tuple[int, int], int] = {}
    for person, pairs in by_person.items():
        for (before, track), (after, next_track) in itertools.pairwise(pairs):
            if track != next_track:
                continue
            for frame in range(before + 1, after):
                if (frame, track) in rows and (frame, track) not in busy:
                    carried[(frame, person)] = track
    return carried


def score_poses(
    tracks: Mapping[str, np.ndarray],
    gt: SceneGroundTruth,
    frames: int,
    min_iou: float = 0.5,
) -> PoseScore:
    """MPJPE, PA-MPJPE (paired frames) and MPJPE over carried frames, in millimetres."""
    present = (gt.visible_fraction > 0) & np.isfinite(gt.box_visible_xyxy).all(axis=-1)
    present[frames:] = False
    matches = match_tracks_to_people(tracks, gt.box_visible_xyxy, present, min_iou)
    carried = carried_through_gaps(matches, tracks)
    joints, _ = forward_kinematics(tracks["global_orient"], tracks["body_pose"], tracks["transl"])
    frame_col = np.asarray(tracks["frame"]).tolist()
    track_col = np.asarray(tracks["track_id"]).tolist()
    row_of = {key: i for i, key in enumerate(zip(frame_col, track_col, strict=True))}

    def pairs(selection: Mapping[tuple[int, int], int]) -> tuple[np.ndarray, np.ndarray]:
        ours, truth = [], []
        for (frame, person), track in sorted(selection.items()):
            target = gt.joints_cam[frame, person].astype(np.float64)
            if np.isfinite(target).all():
                ours.append(joints[row_of[(frame, track)]])
                truth.append(target)
        return np.array(ours).reshape(-1, 24, 3), np.array(truth).reshape(-1, 24, 3)

    seen_ours, seen_truth = pairs(matches)
    hidden_ours, hidden_truth = pairs(carried)

    def error(metric: Callable[..., float], ours: np.ndarray, truth: np.ndarray) -> float:
        return MM_PER_M * metric(ours, truth) if ours.shape[0] else math.nan

    return PoseScore(
        mpjpe_mm=error(lambda a, b: mpjpe(a, b, SMPL24_ROOT), seen_ours, seen_truth),
        pa_mpjpe_mm=error(pa_mpjpe, seen_ours, seen_truth),
        hidden_mpjpe_mm=error(lambda a, b: mpjpe(a, b, SMPL24_ROOT), hidden_ours, hidden_truth),
        frames=int(seen_ours.shape[0]),
        hidden_frames=int(hidden_ours.shape[0]),
    )


def _occluded(tracks: Mapping[str, np.ndarray]) -> np.ndarray:
    """The rows a tracker flags as carried through (a peer's table has no such column: it
    reports only boxes it matched)."""
    if "occluded" not in tracks:
        return np.zeros(len(tracks["frame"]), dtype=bool)
    return np.asarray(tracks["occluded"], dtype=bool)


def score_tracking(
    tracks: Mapping[str, np.ndarray],
    gt: SceneGroundTruth,
    frames: int,
    min_visible_fraction: float = 0.5,
    iou_threshold: float = 0.5,
) -> MotMetrics:
    """CLEAR-MOT and IDF1 of a result's rows against the scene's full boxes, people less
    visible than ``min_visible_fraction`` ignored (see the module docstring)."""
    full = clip_box(gt.box_full_xyxy, gt.width, gt.height)
    in_frame = gt.in_frame[:frames]
    counted = in_frame & (gt.visible_fraction[:frames] >= min_visible_fraction)
    gt_frame, gt_person = np.nonzero(counted)
    gt_boxes = TrackedBoxes(
        gt_frame, gt.person_ids[gt_person], full[gt_frame, gt_person].reshape(-1, 4)
    )

    frame_col = np.asarray(tracks["frame"])
    keep = (frame_col < frames) & ~_occluded(tracks)
    for frame in np.unique(frame_col[keep]):
        ignored = np.flatnonzero(in_frame[frame] & ~counted[frame])
        if ignored.size == 0:
            continue
        rows = np.flatnonzero(frame_col == frame)
        people = np.flatnonzero(in_frame[frame])
        iou = iou_matrix(tracks["box_xyxy"][rows], full[frame, people])
        for r, c in zip(*linear_sum_assignment(-iou), strict=True):
            if iou[r, c] >= iou_threshold and people[c] in ignored:
                keep[rows[r]] = False
    pred_boxes = TrackedBoxes(
        frame_col[keep], np.asarray(tracks["track_id"])[keep], tracks["box_xyxy"][keep]
    )
    return evaluate_mot(gt_boxes, pred_boxes, iou_threshold)


def recall_by_height(
    tracks: Mapping[str, np.ndarray],
    gt: SceneGroundTruth,
    frames: int,
    min_visible_fraction: float = 0.5,
    iou_threshold: float = 0.5,
) -> tuple[tuple[int, int], ...]:
    """Per HEIGHT_BINS_PX, (found, counted): people at least ``min_visible_fraction``
    visible, counted by the height of their full box in the image, found when a row of the
    result pairs with them (one to one per frame, box IoU >= ``iou_threshold``)."""
    full = clip_box(gt.box_full_xyxy, gt.width, gt.height)
    heights = full[..., 3] - full[..., 1]
    counted = gt.in_frame[:frames] & (gt.visible_fraction[:frames] >= min_visible_fraction)
    found = np.zeros_like(counted)
    frame_col = np.asarray(tracks["frame"])
    claimed = ~_occluded(tracks)
    for frame in np.unique(frame_col[(frame_col < frames) & claimed]):
        people = np.flatnonzero(counted[frame])
        if people.size == 0:
            continue
        rows = np.flatnonzero((frame_col == frame) & claimed)
        iou = iou_matrix(tracks["box_xyxy"][rows], full[frame, people])
        for r, c in zip(*linear_sum_assignment(-iou), strict=True):
            if iou[r, c] >= iou_threshold:
                found[frame, people[c]] = True
    out = []
    for low, high in HEIGHT_BINS_PX:
        in_bin = counted & (heights[:frames] >= low) & (heights[:frames] < high)
        out.append((int((found & in_bin).sum()), int(in_bin.sum())))
    return tuple(out)


def score_result(
    tracks: Mapping[str, np.ndarray],
    scene: BenchScene,
    settings: BenchSettings,
    variant: str,
    seconds: float,
) -> SceneScore:
    """Every figure of one result table against its scene."""
    frames = settings.frames_of(scene)
    return SceneScore(
        scene=scene.name,
        variant=variant,
        frames=frames,
        seconds=seconds,
        mot=score_tracking(
            tracks, scene.gt, frames, settings.min_visible_fraction, settings.iou_threshold
        ),
        pose=score_poses(tracks, scene.gt, frames, settings.iou_threshold),
        recall_by_height=recall_by_height(
            tracks, scene.gt, frames, settings.min_visible_fraction, settings.iou_threshold
        ),
    )


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str  # percent, count, fraction, mm, rate


TABLE_COLUMNS: tuple[Column, ...] = (
    Column("mota", "MOTA", "percent"),
    Column("idf1", "IDF1", "percent"),
    Column("id_switches", "ID sw.", "count"),
    Column("recall", "Recall", "percent"),
    Column("motp_iou", "MOTP (IoU)", "fraction"),
    Column("mpjpe_mm", "MPJPE (mm)", "mm"),
    Column("pa_mpjpe_mm", "PA-MPJPE (mm)", "mm"),
    Column("hidden_mpjpe_mm", "MPJPE hidden (mm)", "mm"),
    Column("fps", "FPS", "rate"),
)


def table_row(score: SceneScore) -> dict[str, float]:
    """The table's figures of one score (NaN where undefined)."""
    return {
        "mota": score.mot.mota,
        "idf1": score.mot.idf1,
        "id_switches": float(score.mot.num_switches),
        "recall": score.mot.recall,
        "motp_iou": score.mot.motp_iou,
        "mpjpe_mm": score.pose.mpjpe_mm,
        "pa_mpjpe_mm": score.pose.pa_mpjpe_mm,
        "hidden_mpjpe_mm": score.pose.hidden_mpjpe_mm,
        "fps": score.fps,
    }


def mean_rows(scores: Sequence[SceneScore]) -> dict[str, dict[str, float]]:
    """variant -> the mean over its scenes of each column (NaNs skipped)."""
    by_variant: dict[str, list[dict[str, float]]] = {}
    for score in scores:
        by_variant.setdefault(score.variant, []).append(table_row(score))
    means = {}
    for variant, rows in by_variant.items():
        means[variant] = {}
        for column in TABLE_COLUMNS:
            values = np.array([row[column.key] for row in rows], dtype=np.float64)
            finite = values[np.isfinite(values)]
            means[variant][column.key] = float(finite.mean()) if finite.size else math.nan
    return means


def _json_number(value: float) -> float | int | None:
    """Strict JSON has no NaN: an undefined figure becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_dict(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _json_number(v) for k, v in values.items()}


CONVENTIONS = {
    "mot": "CLEAR-MOT/IDF1 against full boxes of people with visible_fraction >= "
    "min_visible_fraction; less visible people ignored (predictions pairing with them "
    "removed); predictions are the rows not flagged occluded; motp_iou = mean IoU of pairs",
    "pose": "SMPL-24 joints in mm; MPJPE pelvis-centred, PA-MPJPE similarity Procrustes, on "
    "frames where a track's box pairs with the person's visible box; hidden: frames a "
    "track carried its person through between two such pairs",
    "fps": "frames / wall time of the pipeline run without preview, backend start-up excluded",
    "mean": "mean over scenes of each column, undefined values skipped",
}


def report_document(
    scores: Sequence[SceneScore],
    scenes: Sequence[BenchScene],
    variants: Sequence[Variant],
    settings: BenchSettings,
    backend: str,
    machine: str,
) -> dict[str, Any]:
    """The whole run as plain JSON-ready data (``format_report`` prints it)."""
    return {
        "benchmark": "bench",
        "backend": backend,
        "machine": machine,
        "settings": dataclasses.asdict(settings),
        "conventions": CONVENTIONS,
        "variants": [
            {"name": v.name, "summary": v.summary, "detect_every": v.detect_every} for v in variants
        ],
        "scenes": [
            {
                "name": s.name,
                "description": s.description,
                "frames": settings.frames_of(s),
                "people": s.gt.num_people,
            }
            for s in scenes
        ],
        "results": [
            {
                "scene": s.scene,
                "variant": s.variant,
                "frames": s.frames,
                "seconds": round(s.seconds, 4),
                "row": _json_dict(table_row(s)),
                "mot": _json_dict(s.mot.as_dict()),
                "pose": _json_dict(dataclasses.asdict(s.pose)),
                "recall_by_height": [list(pair) for pair in s.recall_by_height],
            }
            for s in scores
        ],
        "height_bins_px": [
            [low, None if math.isinf(high) else high] for low, high in HEIGHT_BINS_PX
        ],
        "mean": [
            {"variant": variant, "row": _json_dict(row)}
            for variant, row in mean_rows(scores).items()
        ],
    }


def _cell(value: float | None, kind: str) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if kind == "percent":
        return f"{100.0 * value:.1f}%"
    if kind == "count":
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    if kind == "fraction":
        return f"{value:.3f}"
    return f"{value:.1f}"


def _markdown_table(rows: Sequence[tuple[str, Mapping[str, float | None]]]) -> list[str]:
    header = "| variant | " + " | ".join(c.label for c in TABLE_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(TABLE_COLUMNS)
    lines = [header, rule]
    for name, row in rows:
        cells = " | ".join(_cell(row.get(c.key), c.kind) for c in TABLE_COLUMNS)
        lines.append(f"| {name} | {cells} |")
    return lines


def format_report(document: Mapping[str, Any]) -> str:
    """The ablation table as markdown: one table per scene, then the mean over scenes."""
    settings = document["settings"]
    lines = [
        f"Backend: {document['backend']}. Machine: {document['machine']}.",
        f"MOT: IoU >= {settings['iou_threshold']:g} against full-body boxes, people with "
        f"visible fraction >= {settings['min_visible_fraction']:g} counted, less visible ones "
        "ignored; predictions are the rows a tracker claims to see (not flagged occluded); "
        "the rows it carries a hidden person through are scored by MPJPE hidden. MOTP is the "
        "mean IoU of the pairs. MPJPE / PA-MPJPE: SMPL-24 joints of matched tracks "
        "(pelvis-centred / Procrustes). MPJPE hidden: frames a track carried its person "
        "through; which frames those are depends on the tracker, so compare it between "
        "variants with the same tracker (`full`, `no_predictor`). FPS: whole pipeline run, "
        "this machine.",
        "",
        "Variants:",
    ]
    lines += [f"- `{v['name']}`: {v['summary']}" for v in document["variants"]]
    for scene in document["scenes"]:
        rows = [
            (r["variant"], r["row"]) for r in document["results"] if r["scene"] == scene["name"]
        ]
        if not rows:
            continue
        lines += [
            "",
            f"### {scene['name']} ({scene['frames']} frames, {scene['people']} people)",
            "",
            scene["description"],
            "",
            *_markdown_table(rows),
        ]
    lines += [
        "",
        f"### Mean over {len(document['scenes'])} scene(s)",
        "",
        *_markdown_table([(m["variant"], m["row"]) for m in document["mean"]]),
        *_height_table(document),
    ]
    return "\n".join(lines)


def _height_table(document: Mapping[str, Any]) -> list[str]:
    """Recall by person height, every scene pooled, one row per variant."""
    bins = document.get("height_bins_px") or []
    pooled: dict[str, np.ndarray] = {}
    for result in document["results"]:
        pairs = result.get("recall_by_height") or []
        if len(pairs) != len(bins):
            continue
        total = pooled.setdefault(result["variant"], np.zeros((len(bins), 2), dtype=np.int64))
        total += np.asarray(pairs, dtype=np.int64)
    if not pooled:
        return []
    labels = [height_bin_label(low, math.inf if high is None else high) for low, high in bins]
    lines = [
        "",
        "### Recall by person height (full box in the image; every scene pooled)",
        "",
        "| variant | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for variant, counts in pooled.items():
        cells = " | ".join(
            f"{100.0 * found / total:.1f}% ({total})" if total else "n/a" for found, total in counts
        )
        lines.append(f"| {variant} | {cells} |")
    return lines


# --------------------------------------------------------------------------- running

BackendFactory = Callable[[RunConfig], Backend]


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary() -> str:
    """One line naming the machine absolute times belong to."""
    return (
        f"{cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def lite_backend(config: RunConfig) -> Backend:
    """The lite backend on the CPU (what the benchmark measures)."""
    return resolve_backend("lite", "cpu", config)


class _RunProgress:
    """Forwards one pipeline run's frame progress under a label; drops its other messages
    (the benchmark says once which backend it uses)."""

    def __init__(self, outer: Progress, label: str) -> None:
        self.outer = outer
        self.label = label

    def stage(self, name: str, total: int | None = None) -> None:
        self.outer.stage(f"{self.label} {name}", total)

    def advance(self, n: int = 1) -> None:
        self.outer.advance(n)

    def info(self, message: str) -> None:
        pass

    def done(self, result: str) -> None:
        pass

    def error(self, message: str, exit_code: int) -> None:
        pass

    def close(self) -> None:
        pass


def run_variant(
    scene: BenchScene,
    variant: Variant,
    settings: BenchSettings,
    work_dir: Path,
    *,
    base_config: RunConfig | None = None,
    make_backend: BackendFactory = lite_backend,
    progress: Progress | None = None,
) -> SceneScore:
    """Run one variant of the pipeline on one scene and score it."""
    from ram_core.io.result import load_result

    base_config = base_config or RunConfig(pipeline=PipelineConfig())
    # The scene's camera is known: the benchmark measures tracking and pose, not focal length.
    config = variant.run_config(base_config, float(scene.gt.K[0, 0]))
    out = work_dir / f"{scene.name}.{variant.name}.ram"
    parts = make_backend(config)
    frames = settings.frames_of(scene)
    started = time.perf_counter()
    run_pipeline(
        scene.video_path,
        out,
        end=frames,
        config=config,
        progress=_RunProgress(progress or NoProgress(), f"{scene.name} / {variant.name}:"),
        stages=parts,
        tracking=variant.tracking,
        fusion=variant.fusion,
    )
    seconds = time.perf_counter() - started
    tracks = load_result(out).tracks
    shutil.rmtree(out, ignore_errors=True)
    return score_result(tracks, scene, settings, variant.name, seconds)


def run_ablations(
    scenes: Sequence[BenchScene],
    variants: Sequence[Variant],
    settings: BenchSettings | None = None,
    *,
    base_config: RunConfig | None = None,
    make_backend: BackendFactory = lite_backend,
    progress: Progress | None = None,
    warm_up_frames: int = 10,
) -> list[SceneScore]:
    """Every variant on every scene, scene by scene.

    A short untimed run first (``warm_up_frames`` of the first scene, 0 for none) pays the
    process's one-time start-up costs, so the first timed variant is not the slowest.
    """
    settings = settings or BenchSettings()
    scores = []
    with tempfile.TemporaryDirectory(prefix="ram-bench-") as work:
        if warm_up_frames > 0 and scenes and variants:
            warm_up = dataclasses.replace(
                settings, max_frames=min(warm_up_frames, settings.frames_of(scenes[0]))
            )
            run_variant(
                scenes[0],
                variants[0],
                warm_up,
                Path(work),
                base_config=base_config,
                make_backend=make_backend,
                progress=NoProgress(),
            )
        for scene in scenes:
            for variant in variants:
                scores.append(
                    run_variant(
                        scene,
                        variant,
                        settings,
                        Path(work),
                        base_config=base_config,
                        make_backend=make_backend,
                        progress=progress,
                    )
                )
    return scores
