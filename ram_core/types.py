"""Small typed objects the pipeline stages exchange.

Stages talk only through these (numpy arrays inside, no torch). Image coordinates are
pixels with the origin at the top-left pixel corner; 3D coordinates are metres in the
camera frame with OpenCV axes (x right, y down, z forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """What a probe of the video file found."""

    path: str
    fps: float
    width: int
    height: int
    frame_count: int
    # How far the file's frames are turned (clockwise, degrees: 0, 90, 180 or 270) to stand
    # upright as players show them (a phone's rotation tag); width and height are upright.
    rotation_deg: int = 0
    # Variable-frame-rate files only: for each of our frame_count frames (a constant grid
    # at fps, as Blender's movie strip plays it), the index of the decoded frame shown.
    # None: our frames are the decoded frames, one for one.
    frame_sources: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Frame:
    """One decoded frame. ``rgb``: (H, W, 3) uint8, RGB order."""

    index: int
    rgb: np.ndarray


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def matrix(self) -> np.ndarray:
        """K: (3, 3)."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64
        )

    @classmethod
    def assumed(cls, width: int, height: int, focal_px: float | None = None) -> CameraIntrinsics:
        """Intrinsics for a video that states none.

        Without a known focal length we take the image diagonal in pixels (CLIFF's
        convention, a ~53 degree diagonal field of view), principal point at the centre.
        """
        f = float(focal_px) if focal_px else float(np.hypot(width, height))
        return cls(fx=f, fy=f, cx=width / 2.0, cy=height / 2.0, width=width, height=height)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points -> (..., 2) pixels."""
        z = np.clip(points_cam[..., 2], 1e-6, None)
        u = self.fx * points_cam[..., 0] / z + self.cx
        v = self.fy * points_cam[..., 1] / z + self.cy
        return np.stack([u, v], axis=-1)


@dataclass(frozen=True)
class Detection:
    """A person found by a detector. ``box_xyxy``: (4,) float pixels.

    keypoints: (17, 3) COCO body keypoints (x, y, score) when the detector finds them
    (the full backend's Keypoint R-CNN); they make good point prompts for SAM2.
    """

    box_xyxy: np.ndarray
    score: float
    keypoints: np.ndarray | None = None


@dataclass(frozen=True)
class PoseLandmarks:
    """MediaPipe Pose output for one person, mapped to full-frame pixels.

    image_px: (33, 2) pixel positions in the full frame.
    visibility: (33,) in [0, 1].
    world_m: (33, 3) metric, hip-centred, MediaPipe's world axes (x right, y down, z away
    from the camera, as MediaPipe documents them for ``pose_world_landmarks``).
    """

    image_px: np.ndarray
    visibility: np.ndarray
    world_m: np.ndarray


@dataclass(frozen=True)
class Observation:
    """One segmenter candidate for one person in one frame.

    mask: (H, W) bool, full frame.
    box_xyxy: (4,) float, the mask's bounding box.
    quality: the segmenter's own confidence in the mask, [0, 1] (SAM2: predicted IoU;
        MediaPipe: mean mask probability inside the mask).
    object_score: > 0 when the segmenter believes a person is there (SAM2's object score
        logit; lite: a logit made from the pose visibility).
    appearance: (D,) float32 descriptor the track memory is made of (lite: colour
        statistics of the masked pixels).
    landmarks: lite backend only, the pose found in the same pass (saves a second run).
    state: the segmenter's private handle on this candidate, which a ``MemorySegmenter``
        needs to ``commit`` it (SAM2: which candidate of its latest call); opaque to others.
    """

    mask: np.ndarray
    box_xyxy: np.ndarray
    quality: float
    object_score: float
    appearance: np.ndarray
    landmarks: PoseLandmarks | None = None
    state: object | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Prompt:
    """Where a segmenter should look: a track's predicted box, or a new detection.

    points_xy: (N, 2) pixel positions of point prompts, point_labels: (N,) 1 for "on the
    person", 0 for "not on the person"; both None when the prompt is a box alone.
    """

    box_xyxy: np.ndarray
    track_id: int | None = None
    points_xy: np.ndarray | None = None
    point_labels: np.ndarray | None = None


@dataclass(frozen=True)
class BodyEstimate:
    """SMPL parameters for one person in one frame (axis-angle, SMPL convention).

    global_orient: (3,), body_pose: (23, 3), betas: (10,), transl: (3,) metres, camera frame.
    confidence: [0, 1], how much the reconstructor trusts this estimate.
    """

    global_orient: np.ndarray
    body_pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    confidence: float


@dataclass
class TrackFrame:
    """What SegFollow decided for one track in one frame."""

    track_id: int
    frame: int
    box_xyxy: np.ndarray  # (4,) the observed mask box, or the Kalman box when occluded
    s_mask: float
    s_kf: float
    s_fused: float
    reliability: float
    occluded: bool
    observation: Observation | None = field(default=None, repr=False)


class Detector(Protocol):
    """Finds people in a frame."""

    def detect(self, frame: Frame) -> list[Detection]: ...


class Segmenter(Protocol):
    """Proposes person masks near prompts; knows how to compare appearances."""

    def segment(self, frame: Frame, prompts: Sequence[Prompt]) -> list[list[Observation]]:
        """One list of candidates per prompt (possibly empty), in prompt order."""
        ...

    def appearance_similarity(self, memory: np.ndarray, appearance: np.ndarray) -> float:
        """Similarity in [0, 1] of a track's memory descriptor and a candidate's."""
        ...


@runtime_checkable
class MemorySegmenter(Segmenter, Protocol):
    """A segmenter that answers a track's prompt from that person's own memory (SAM2).

    Its candidates for a track's own prompt are already conditioned on that person, so
    SegFollow scores them by the segmenter's confidence alone, and tells it afterwards
    which candidate became the person's memory.
    """

    def commit(
        self,
        frame_index: int,
        track_id: int,
        observation: Observation,
        lam: float | None,
        admitted: bool,
    ) -> None:
        """The candidate SegFollow chose for this person in this frame.

        lam None: a new person's prompt frame (the memory is conditioned on it). Otherwise
        a tracked frame: lam is the EMA decay in [0, 1] from the Kalman consistency and
        admitted says whether the frame passed the memory admission rule.
        """
        ...

    def forget(self, track_id: int) -> None:
        """The track ended or was dropped: free its memory."""
        ...


@dataclass(frozen=True)
class TrackObservation:
    """A confirmed track's observation in one frame, as the reconstruction stage gets it.

    observation: the segmenter's chosen candidate (its ``mask`` (H, W) bool, and the lite
    backend's ``landmarks``). box_xyxy: (4,) the track's box in this frame. reliability:
    SegFollow's reliability of this frame in [0, 1].
    """

    track_id: int
    observation: Observation
    box_xyxy: np.ndarray
    reliability: float

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, full frame."""
        return self.observation.mask


class Reconstructor(Protocol):
    """The reconstruction stage: SMPL parameters for every confirmed track of a frame.

    Called once per frame, in frame order, with the tracks that are confirmed and observed
    in it (a temporal reconstructor keeps per-track state between calls, keyed by track
    id); ``forget(track_id)`` is called once a track has ended, after its last frame was
    reconstructed. ``rest_skeleton`` is the manifest's record of the skeleton its output is
    solved on (``ram_core.body.skeleton.builtin_rest_skeleton()`` for the built-in one).
    """

    rest_skeleton: dict[str, Any]

    def reconstruct(
        self, frame: Frame, tracks: Sequence[TrackObservation], camera: CameraIntrinsics
    ) -> list[BodyEstimate | None]:
        """One estimate per track, in the order given (None: no usable pose)."""
        ...

    def forget(self, track_id: int) -> None:
        """The track ended: free whatever is kept for it."""
        ...


@runtime_checkable
class FramesReconstructor(Reconstructor, Protocol):
    """A reconstructor whose estimates depend on each frame alone (no per-track state), so
    several frames can be solved in one call, which shares the work's overhead."""

    def reconstruct_frames(
        self,
        frames: Sequence[tuple[Frame, Sequence[TrackObservation]]],
        camera: CameraIntrinsics,
    ) -> list[list[BodyEstimate | None]]:
        """Per frame, one estimate per track in the order given, as ``reconstruct`` would."""
        ...
