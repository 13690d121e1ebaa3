"""The "without SegFollow" baseline: a plain Kalman + IoU tracker (SORT-style).

It plugs into the pipeline where SegFollow does, with the same contract
(``step(frame, detections) -> list[TrackFrame]``, ``is_confirmed(track_id)``), so the rest
of the pipeline (pose per tracked box, Predictor, Combiner, result) is unchanged. What it
leaves out is everything SegFollow adds: masks propagated between detections, the
appearance memory and the fused score. Association uses boxes alone:

- every track's box is predicted one frame ahead by the same Kalman filter as SegFollow's
  (``ram_core.track.kalman``);
- the frame's detections are assigned to tracks by the Hungarian method on ``1 - IoU`` of
  predicted box and detection box; a pair below ``min_iou`` is not a match;
- a matched track is corrected with the detection box; an unmatched detection that passes
  the birth thresholds starts a tentative track, confirmed after ``min_hits`` hits; a
  tentative track that misses more than ``tentative_max_misses`` frames is dropped, a
  confirmed one ends after ``max_age`` frames without a match.

The tracker therefore needs a detection every frame (``detect_every = 1``): a frame without
detections only coasts every track on its Kalman prediction.

To give the reconstructor something to work with, the segmenter is prompted once per frame
with the detection box of every track that was matched or born (the same call SegFollow
makes, without its memory); its observation supplies the pose landmarks and the mask. The
reported box is that observation's mask box (the box SegFollow reports too, so MOT figures
compare association and not box conventions), or the detection box when the segmenter finds
nobody in it. A coasting track reports its Kalman box and is marked occluded.

Scores in the TrackFrames: ``s_kf`` is the IoU of predicted and detected box (1 at birth),
``s_mask`` the segmenter's mask quality, ``s_fused`` the association score (the IoU again),
and ``reliability`` = IoU x presence (the logistic of the segmenter's object score):
SegFollow's formula with the IoU in place of its fused score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ram_core.detect.boxes import iou_matrix, xyah_to_xyxy, xyxy_to_xyah
from ram_core.track import kalman
from ram_core.track.segfollow import DEFAULT_FPS, SegFollowConfig, coasting_frame
from ram_core.types import Detection, Frame, Observation, Prompt, Segmenter, TrackFrame


@dataclass(frozen=True)
class IouTrackerConfig:
    """Thresholds of the IoU tracker. ``from_segfollow`` copies SegFollow's shared ones."""

    min_iou: float = 0.3
    """Least IoU of predicted box and detection for a match (SORT's threshold)."""
    min_hits: int = 5
    """Frames a new track must be matched in before it is confirmed."""
    tentative_max_misses: int = 2
    """Frames a not-yet-confirmed track may miss before it is dropped."""
    max_age: int = 50
    """Frames without a match before a confirmed track ends."""
    birth_min_score: float = 0.5
    """Detector score a new person needs."""
    birth_min_size_px: tuple[float, float] = (25.0, 50.0)
    """Smallest box (w, h) a new person may have."""

    def __post_init__(self) -> None:
        if not 0.0 < self.min_iou <= 1.0:
            raise ValueError(f"min_iou must be in (0, 1], got {self.min_iou}")
        if self.min_hits < 1 or self.max_age < 1 or self.tentative_max_misses < 0:
            raise ValueError("min_hits >= 1, max_age >= 1 and tentative_max_misses >= 0")

    @classmethod
    def from_segfollow(
        cls, config: SegFollowConfig, fps: float = DEFAULT_FPS, min_iou: float = 0.3
    ) -> IouTrackerConfig:
        """The same confirmation, ageing and birth thresholds as a SegFollow run at ``fps``,
        so an ablation changes the association alone."""
        return cls(
            min_iou=min_iou,
            min_hits=config.n_init,
            tentative_max_misses=config.tentative_max_misses,
            max_age=config.max_age(fps),
            birth_min_score=config.birth_min_score,
            birth_min_size_px=config.birth_min_size_px,
        )

    @property
    def confirmation_delay(self) -> int:
        """Most frames after its birth before a track is known to be confirmed or dropped."""
        return self.min_hits - 1 + self.tentative_max_misses


@dataclass
class BoxTrack:
    """One person's state inside the IoU tracker."""

    track_id: int
    mean: np.ndarray
    cov: np.ndarray
    hits: int = 1
    confirmed: bool = False
    frames_since_seen: int = 0
    tentative_misses: int = 0

    @property
    def predicted_box(self) -> np.ndarray:
        return xyah_to_xyxy(self.mean[:4])


def associate(
    predicted_xyxy: np.ndarray, detected_xyxy: np.ndarray, min_iou: float
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Hungarian assignment on 1 - IoU. (T, 4), (D, 4) -> ([(track row, detection row)],
    IoU (T, D)); pairs below ``min_iou`` are left out."""
    overlap = iou_matrix(predicted_xyxy, detected_xyxy)
    if overlap.size == 0:
        return [], overlap
    rows, cols = linear_sum_assignment(1.0 - overlap)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if overlap[r, c] >= min_iou]
    return pairs, overlap


class IouTracker:
    """Tracks people by box overlap alone. ``step`` returns a TrackFrame per live track.

    Tentative tracks are reported too (``is_confirmed`` tells them apart), as SegFollow does.
    """

    def __init__(self, segmenter: Segmenter, config: IouTrackerConfig | None = None) -> None:
        self.segmenter = segmenter
        self.config = config or IouTrackerConfig()
        self.tracks: dict[int, BoxTrack] = {}
        self._next_id = 1
        # Segmenters that keep per-person state (MediaPipe's video graphs) free it here.
        self._forget = getattr(segmenter, "forget", None)

    def is_confirmed(self, track_id: int) -> bool:
        track = self.tracks.get(track_id)
        return track is not None and track.confirmed

    def step(self, frame: Frame, detections: Sequence[Detection] | None = None) -> list[TrackFrame]:
        cfg = self.config
        for track in self.tracks.values():
            track.mean, track.cov = kalman.predict(track.mean, track.cov)
        track_list = list(self.tracks.values())
        detections = [d for d in (detections or []) if self._birth_sized(d)]
        det_boxes = np.array([d.box_xyxy for d in detections], dtype=np.float64).reshape(-1, 4)
        predicted = np.array([t.predicted_box for t in track_list]).reshape(-1, 4)
        pairs, overlap = associate(predicted, det_boxes, cfg.min_iou)

        seen: list[tuple[BoxTrack, np.ndarray, float]] = []  # track, detection box, IoU
        matched_rows = set()
        matched_dets = set()
        for row, col in pairs:
            track = track_list[row]
            track.mean, track.cov = kalman.update(
                track.mean, track.cov, xyxy_to_xyah(det_boxes[col])
            )
            track.hits += 1
            track.frames_since_seen = 0
            track.confirmed = track.confirmed or track.hits >= cfg.min_hits
            matched_rows.add(row)
            matched_dets.add(col)
            seen.append((track, det_boxes[col], float(overlap[row, col])))

        coasting = [
            self._miss(track, frame.index)
            for row, track in enumerate(track_list)
            if row not in matched_rows
        ]
        self._remove_ended()
        coasting = [tf for tf in coasting if tf.track_id in self.tracks]

        for col, box in enumerate(det_boxes):
            if col not in matched_dets:
                seen.append((self._new_track(box), box, 1.0))

        observations = self._observe(frame, [(t.track_id, box) for t, box, _ in seen])
        results = [
            _seen_frame(track.track_id, frame.index, box, iou, obs)
            for (track, box, iou), obs in zip(seen, observations, strict=True)
        ]
        return sorted(results + coasting, key=lambda tf: tf.track_id)

    def _birth_sized(self, detection: Detection) -> bool:
        box = np.asarray(detection.box_xyxy, dtype=np.float64)
        min_w, min_h = self.config.birth_min_size_px
        return (
            detection.score >= self.config.birth_min_score
            and box[2] - box[0] >= min_w
            and box[3] - box[1] >= min_h
        )

    def _observe(
        self, frame: Frame, boxes: list[tuple[int, np.ndarray]]
    ) -> list[Observation | None]:
        """One segmenter call for every detected person; the first candidate per prompt."""
        if not boxes:
            return []
        prompts = [Prompt(box_xyxy=box, track_id=track_id) for track_id, box in boxes]
        proposals = self.segmenter.segment(frame, prompts)
        return [candidates[0] if candidates else None for candidates in proposals]

    def _miss(self, track: BoxTrack, frame_index: int) -> TrackFrame:
        track.frames_since_seen += 1
        if not track.confirmed:
            track.tentative_misses += 1
        # As in SegFollow: a hidden person keeps moving but does not keep changing size.
        track.mean[6:8] = 0.0
        return coasting_frame(track.track_id, frame_index, track.predicted_box)

    def _remove_ended(self) -> None:
        for track_id, track in list(self.tracks.items()):
            if track.frames_since_seen == 0:
                continue
            if track.confirmed:
                ended = track.frames_since_seen > self.config.max_age
            else:
                ended = track.tentative_misses > self.config.tentative_max_misses
            if ended:
                del self.tracks[track_id]
                if self._forget is not None:
                    self._forget(track_id)

    def _new_track(self, box_xyxy: np.ndarray) -> BoxTrack:
        mean, cov = kalman.initiate(xyxy_to_xyah(box_xyxy))
        track = BoxTrack(
            track_id=self._next_id,
            mean=mean,
            cov=cov,
            confirmed=self.config.min_hits <= 1,
        )
        self.tracks[track.track_id] = track
        self._next_id += 1
        return track


def _seen_frame(
    track_id: int, frame_index: int, box: np.ndarray, iou: float, obs: Observation | None
) -> TrackFrame:
    if obs is None:
        # The detector saw someone the segmenter could not: no pose, but the box is real.
        return TrackFrame(
            track_id=track_id,
            frame=frame_index,
            box_xyxy=np.asarray(box, dtype=np.float64),
            s_mask=0.0,
            s_kf=iou,
            s_fused=iou,
            reliability=0.0,
            occluded=True,
        )
    presence = 1.0 / (1.0 + np.exp(-obs.object_score))
    return TrackFrame(
        track_id=track_id,
        frame=frame_index,
        box_xyxy=np.asarray(obs.box_xyxy, dtype=np.float64),
        s_mask=float(obs.quality),
        s_kf=iou,
        s_fused=iou,
        reliability=float(np.clip(iou * presence, 0.0, 1.0)),
        occluded=False,
        observation=obs,
    )
