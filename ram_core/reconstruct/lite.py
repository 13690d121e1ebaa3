"""The lite reconstructor: MediaPipe landmarks -> SMPL parameters on the built-in skeleton.

The rotations come from the landmark IK (``ram_core.reconstruct.ik``). The root translation
is solved in the camera frame so that the posed skeleton's joints, projected with the camera
intrinsics, land on MediaPipe's 2D image landmarks (visibility-weighted least squares: linear
in the translation, then a few Gauss-Newton steps on the pixel error). With too few visible
landmarks the depth comes from the box height and an assumed stature instead.

betas are zeros: the built-in skeleton has fixed proportions (a neutral adult, see
``ram_core.body.skeleton``); a person's size shows up in the depth, not in the shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ram_core.body.skeleton import REST_JOINTS_M, builtin_rest_skeleton
from ram_core.reconstruct.ik import (
    DIRECT_JOINT_IDS,
    DIRECT_LANDMARK_IDS,
    IkConfig,
    IkResult,
    fit_landmarks_batch,
)
from ram_core.types import BodyEstimate, CameraIntrinsics, Frame, Observation, TrackObservation

NUM_BETAS = 10


@dataclass(frozen=True)
class LiteReconstructorConfig:
    """Settings of the lite reconstructor.

    min_visibility: a landmark counts as seen at or above this visibility.
    min_seen_joints: fewer seen body joints (of the 12 with landmarks) than this and the
        depth falls back to the box height.
    min_mean_visibility: below this mean visibility of the 12 body joints, give up (None).
    assumed_stature_m: the fallback's head-to-heel height for the box.
    gauss_newton_steps: refinement steps of the translation on the pixel error.
    fit_error_scale_m, reprojection_scale: confidence falls as exp(-fit_error / scale) and
        exp(-rms_px / (scale * box_height_px)).
    fallback_confidence_factor: the box-height fallback's confidence is scaled by this.
    """

    min_visibility: float = 0.5
    min_seen_joints: int = 6
    min_mean_visibility: float = 0.15
    assumed_stature_m: float = 1.7
    gauss_newton_steps: int = 3
    fit_error_scale_m: float = 0.04
    reprojection_scale: float = 0.05
    fallback_confidence_factor: float = 0.5
    ik: IkConfig = field(default_factory=IkConfig)


def solve_translation(
    points_m: np.ndarray,
    pixels: np.ndarray,
    weights: np.ndarray,
    camera: CameraIntrinsics,
    gauss_newton_steps: int = 3,
) -> np.ndarray | None:
    """The offset t (3,) with ``project(points_m + t)`` ~ ``pixels``.

    points_m: (N, 3) camera axes; pixels: (N, 2); weights: (N,) >= 0. None when the system
    is degenerate or puts the points behind the camera.
    """
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    u = pixels[:, 0] - cx
    v = pixels[:, 1] - cy
    X, Y, Z = points_m[:, 0], points_m[:, 1], points_m[:, 2]
    zeros, ones = np.zeros_like(u), np.ones_like(u)
    # (u - cx)(Z + tz) = fx (X + tx)  and the same for y: linear in t.
    A = np.concatenate([np.stack([fx * ones, zeros, -u], 1), np.stack([zeros, fy * ones, -v], 1)])
    b = np.concatenate([u * Z - fx * X, v * Z - fy * Y])
    w = np.sqrt(np.concatenate([weights, weights]))
    if np.count_nonzero(weights > 0) < 2:
        return None
    t, *_ = np.linalg.lstsq(A * w[:, None], b * w, rcond=None)
    for _ in range(gauss_newton_steps):
        P = points_m + t
        if np.any(P[weights > 0, 2] <= 1e-3):
            return None
        z = P[:, 2]
        residual = np.concatenate(
            [fx * P[:, 0] / z + cx - pixels[:, 0], fy * P[:, 1] / z + cy - pixels[:, 1]]
        )
        J = np.concatenate([
            np.stack([fx / z, zeros, -fx * P[:, 0] / z**2], 1),
            np.stack([zeros, fy / z, -fy * P[:, 1] / z**2], 1),
        ])  # fmt: skip
        step, *_ = np.linalg.lstsq(J * w[:, None], -residual * w, rcond=None)
        t = t + step
    if not np.all(np.isfinite(t)) or np.any((points_m + t)[weights > 0, 2] <= 1e-3):
        return None
    return t


def translation_from_box(
    box_xyxy: np.ndarray, camera: CameraIntrinsics, stature_m: float
) -> np.ndarray:
    """Pelvis position (3,) from a person box: depth from its height, pelvis at its centre."""
    x0, y0, x1, y1 = (float(c) for c in box_xyxy)
    height_px = max(y1 - y0, 1.0)
    depth = camera.fy * stature_m / height_px
    centre_u, centre_v = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    return np.array(
        [
            (centre_u - camera.cx) / camera.fx * depth,
            (centre_v - camera.cy) / camera.fy * depth,
            depth,
        ]
    )


@dataclass(frozen=True)
class _Landmarks:
    """One observation's landmarks, checked: world (33, 3), image_px (33, 2), visibility
    (33,) in [0, 1]."""

    world: np.ndarray
    image_px: np.ndarray
    visibility: np.ndarray


def _usable_landmarks(
    observation: Observation, config: LiteReconstructorConfig
) -> _Landmarks | None:
    """The observation's landmarks, or None when they are missing, malformed, not finite or
    too faint to solve."""
    marks = observation.landmarks
    if marks is None:
        return None
    world = np.asarray(marks.world_m, dtype=np.float64)
    image_px = np.asarray(marks.image_px, dtype=np.float64)
    visibility = np.clip(np.asarray(marks.visibility, dtype=np.float64), 0.0, 1.0)
    if world.shape != (33, 3) or image_px.shape != (33, 2) or visibility.shape != (33,):
        return None
    if not (np.all(np.isfinite(world)) and np.all(np.isfinite(image_px))):
        return None
    if float(visibility[DIRECT_LANDMARK_IDS].mean()) < config.min_mean_visibility:
        return None
    return _Landmarks(world, image_px, visibility)


class LiteReconstructor:
    """``Reconstructor`` for the lite backend (landmark IK on the built-in skeleton).

    Each person's estimate depends on that frame's landmarks alone, so it keeps no state
    per track and ``forget`` has nothing to free.
    """

    def __init__(self, config: LiteReconstructorConfig | None = None):
        self.config = config or LiteReconstructorConfig()
        self.rest_skeleton = builtin_rest_skeleton()

    def reconstruct(
        self, frame: Frame, tracks: Sequence[TrackObservation], camera: CameraIntrinsics
    ) -> list[BodyEstimate | None]:
        """One estimate per track (see ``estimate``)."""
        return self.reconstruct_frames([(frame, tracks)], camera)[0]

    def reconstruct_frames(
        self,
        frames: Sequence[tuple[Frame, Sequence[TrackObservation]]],
        camera: CameraIntrinsics,
    ) -> list[list[BodyEstimate | None]]:
        """Per frame, one estimate per track; every person of every frame goes through one
        batched IK solve (each person's estimate is their own landmarks' alone)."""
        people = [track.observation for _, tracks in frames for track in tracks]
        usable = [_usable_landmarks(observation, self.config) for observation in people]
        solved = [i for i, marks in enumerate(usable) if marks is not None]
        estimates: list[BodyEstimate | None] = [None] * len(people)
        if solved:
            fits = fit_landmarks_batch(
                np.stack([usable[i].world for i in solved]),
                np.stack([usable[i].visibility for i in solved]),
                self.config.ik,
            )
            for i, ik in zip(solved, fits, strict=True):
                estimates[i] = self._place(ik, usable[i], people[i], camera)
        per_frame, start = [], 0
        for _, tracks in frames:
            per_frame.append(estimates[start : start + len(tracks)])
            start += len(tracks)
        return per_frame

    def forget(self, track_id: int) -> None:
        del track_id

    def estimate(
        self, frame: Frame, observation: Observation, camera: CameraIntrinsics
    ) -> BodyEstimate | None:
        """SMPL parameters in the camera frame, or None when the landmarks are missing or
        unusable (``frame`` is unused: the landmarks were found in the segmenter's pass)."""
        track = TrackObservation(0, observation, np.asarray(observation.box_xyxy), 1.0)
        return self.reconstruct(frame, [track], camera)[0]

    def _place(
        self,
        ik: IkResult,
        marks: _Landmarks,
        observation: Observation,
        camera: CameraIntrinsics,
    ) -> BodyEstimate:
        """The solved skeleton put in the camera frame, with its confidence."""
        cfg = self.config
        joint_visibility = marks.visibility[DIRECT_LANDMARK_IDS]
        mean_visibility = float(joint_visibility.mean())
        box = np.asarray(observation.box_xyxy, dtype=np.float64)
        box_height_px = max(float(box[3] - box[1]), 1.0)
        joints = ik.joints_m[DIRECT_JOINT_IDS]
        pixels = marks.image_px[DIRECT_LANDMARK_IDS]
        seen = joint_visibility >= cfg.min_visibility
        offset = None
        if np.count_nonzero(seen) >= cfg.min_seen_joints:
            offset = solve_translation(
                joints,
                pixels,
                np.where(seen, joint_visibility, 0.0),
                camera,
                cfg.gauss_newton_steps,
            )
        if offset is not None:
            projected = camera.project(joints + offset)
            rms_px = float(np.sqrt(np.mean(np.sum((projected - pixels)[seen] ** 2, axis=1))))
            confidence = (
                mean_visibility
                * np.exp(-ik.fit_error_m / cfg.fit_error_scale_m)
                * np.exp(-rms_px / (cfg.reprojection_scale * box_height_px))
            )
            pelvis_cam = ik.pelvis_m + offset
        else:
            # The box spans the whole body; our skeleton is ``stature`` tall at scale 1.
            pelvis_cam = translation_from_box(box, camera, cfg.assumed_stature_m)
            confidence = (
                cfg.fallback_confidence_factor
                * mean_visibility
                * np.exp(-ik.fit_error_m / cfg.fit_error_scale_m)
            )
        # SMPL: the posed pelvis is at J0 + transl.
        transl = pelvis_cam - REST_JOINTS_M[0]
        return BodyEstimate(
            global_orient=ik.global_orient,
            body_pose=ik.body_pose,
            betas=np.zeros(NUM_BETAS),
            transl=transl,
            confidence=float(np.clip(confidence, 0.0, 1.0)),
        )
