"""A result folder read and turned into what the importer builds. No bpy here.

Frames and axes. Video frame ``f`` is shown at Blender frame ``f + FRAME_OFFSET`` (a movie
clip's first frame sits on frame 1). The result is in the OpenCV camera frame (x right,
y down, z forward). The shot's world frame (``ImportPlan.camera_to_world``: Z up, the floor
at z = 0, see ``ram_core.motion.world``) places everything: the camera object is
``camera_to_world`` turned a half-turn about x (a Blender camera looks down its local -z
with y up), and each armature's object matrix is ``camera_to_world`` (its space is the
camera frame), so the people stand on one floor and still line up with the video through
the camera. ``CAMERA_TO_WORLD`` (the identity) is the frame when nothing says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ram_core.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ram_core.body.skeleton import REST_JOINTS_M
from ram_core.io.palette import track_color
from ram_core.io.result import RamResult, ResultFormatError, load_result, solved_rest_skeleton
from ram_core.motion.world import estimate_world, nearest_frame, world_from_manifest

FRAME_OFFSET = 1
CAMERA_ROTATION_EULER = (math.pi, 0.0, 0.0)
CAMERA_TO_WORLD = np.eye(4)
# Blender's default full-frame sensor; only the ratio lens / sensor matters.
SENSOR_WIDTH_MM = 36.0


@dataclass(frozen=True)
class CameraSettings:
    """A Blender camera that projects like the result's pinhole intrinsics.

    Sensor fit is horizontal: ``lens_mm / sensor_width_mm = fx / width``. Shifts are in
    units of the larger image side, as Blender measures them. Non-square pixels (fx != fy)
    become Blender's pixel aspect (both >= 1); only square pixels are checked in tests.
    """

    width_px: int
    height_px: int
    lens_mm: float
    sensor_width_mm: float
    shift_x: float
    shift_y: float
    pixel_aspect_x: float
    pixel_aspect_y: float


@dataclass(frozen=True)
class TrackPlan:
    """One person: name, colour and per-frame SMPL parameters.

    frames: (T,) Blender frame numbers; global_orient (T, 3), body_pose (T, 23, 3)
    axis-angle; transl (T, 3) metres in the camera frame; betas (T, 10).
    """

    track_id: int
    name: str
    color: tuple[float, float, float]
    frames: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    betas: np.ndarray
    # (T,) what the Combiner saw and did: the observation's reliability in [0, 1], the gate
    # (1 = the reconstruction, 0 = the prediction) and the occlusion flag.
    reliability: np.ndarray | None = None
    gate: np.ndarray | None = None
    occluded: np.ndarray | None = None
    # (T, 2) whether the left and right foot are planted.
    foot_contact: np.ndarray | None = None


@dataclass(frozen=True)
class ImportPlan:
    """Everything the importer needs, read and checked before the scene is touched."""

    result_path: Path
    collection_name: str
    video_path: Path | None
    fps: float
    frame_start: int
    frame_end: int
    camera: CameraSettings
    tracks: tuple[TrackPlan, ...]
    manifest: dict[str, Any]
    # The rest pelvis (3,) the result's ``transl`` was solved with, where the result says
    # (the built-in skeleton's); None: the body model's own, as SMPL's convention has it.
    solved_rest_pelvis: np.ndarray | None = None
    # The manifest's record of that skeleton (``ram_core.io.result.solved_rest_skeleton``).
    rest_skeleton: dict[str, Any] | None = None
    # The edit log the tracks reflect (``edits.json`` when the plan was read).
    edits: tuple[dict[str, Any], ...] = ()
    # The shot's world frame (Z up, floor at z = 0): camera coordinates -> world, (4, 4),
    # from the manifest or, for a result written before it was stored, estimated here.
    camera_to_world: np.ndarray = field(default_factory=lambda: CAMERA_TO_WORLD.copy())
    world_source: str = "none"
    # The edited tracks table the plan was made from (name -> (N, ...) arrays).
    tracks_table: dict[str, np.ndarray] | None = None
    # Tracks edited since the Combiner last ran on them (``RamResult.unfused_tracks``).
    unfused_tracks: frozenset[int] = frozenset()
    # A turning camera: scene frames (F,) and its camera_to_world (F, 4, 4) there (the
    # tracks' poses are then in the first frame's camera coordinates); None when static.
    camera_keys: tuple[np.ndarray, np.ndarray] | None = None
    # The clockwise turn that stands the video file upright (a phone's rotation tag); the
    # camera, masks and tracks are upright.
    video_rotation_deg: int = 0


def track_object_name(track_id: int) -> str:
    """``RAM_Person_003`` for track 3."""
    return f"RAM_Person_{track_id:03d}"


def camera_settings(camera: dict[str, Any]) -> CameraSettings:
    """The manifest's ``camera`` entry (fx, fy, cx, cy, width, height) as Blender settings.

    Raises ResultFormatError when a value is missing or not positive.
    """
    try:
        fx, fy = float(camera["fx"]), float(camera["fy"])
        cx, cy = float(camera["cx"]), float(camera["cy"])
        width, height = int(camera["width"]), int(camera["height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultFormatError(f"The manifest's camera entry is incomplete ({exc}).") from exc
    if min(fx, fy) <= 0 or min(width, height) <= 0:
        raise ResultFormatError("The manifest's camera has a non-positive focal or size.")
    larger_side = max(width, height)
    # Blender's vertical focal in pixels is fx * aspect_x / aspect_y, so their ratio is fx / fy.
    return CameraSettings(
        width_px=width,
        height_px=height,
        lens_mm=fx / width * SENSOR_WIDTH_MM,
        sensor_width_mm=SENSOR_WIDTH_MM,
        shift_x=(width / 2.0 - cx) / larger_side,
        shift_y=(cy - height / 2.0) / larger_side,
        pixel_aspect_x=max(1.0, fy / fx),
        pixel_aspect_y=max(1.0, fx / fy),
    )


def scene_fps(fps: float) -> tuple[int, float]:
    """Blender's (fps, fps_base) for a frame rate: 29.97 -> (30, 1.001)."""
    if not fps > 0:
        raise ResultFormatError(f"The source video's frame rate {fps!r} is not positive.")
    rounded = max(1, round(fps))
    return rounded, rounded / fps


def plan_import(result: RamResult, with_world: bool = True) -> ImportPlan:
    """Check a loaded result and lay out the import. Raises ResultFormatError.

    ``with_world`` False leaves ``camera_to_world`` at the camera frame: for updating an
    import in place, whose objects keep the placement they have (estimating it again from
    an older result's tracks would cost a pass over every row).
    """
    manifest = result.manifest
    video = manifest.get("source_video") or {}
    if "camera" not in manifest:
        raise ResultFormatError(f"{result.path}: the manifest has no camera entry.")
    camera = camera_settings(manifest["camera"])
    try:
        fps = float(video["fps"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultFormatError(f"{result.path}: the manifest lacks the video's fps.") from exc
    scene_fps(fps)
    frames = result.tracks["frame"]
    start = int(video.get("start", frames.min() if frames.size else 0))
    end = int(video.get("end", frames.max() + 1 if frames.size else start + 1))
    turns = _camera_turns(result)
    tracks = []
    for track_id in result.track_ids():
        rows = result.track(int(track_id))
        global_orient = rows["global_orient"].astype(np.float64)
        transl = rows["transl"].astype(np.float64)
        if turns is not None:
            global_orient, transl = _into_first_camera(
                global_orient, transl, turns(rows["frame"]), solved_pelvis(manifest)
            )
        tracks.append(
            TrackPlan(
                track_id=int(track_id),
                name=track_object_name(int(track_id)),
                color=track_color(int(track_id)),
                frames=rows["frame"].astype(np.int64) + FRAME_OFFSET,
                global_orient=global_orient,
                body_pose=rows["body_pose"].astype(np.float64),
                transl=transl,
                betas=rows["betas"].astype(np.float64),
                reliability=rows["reliability"].astype(np.float64),
                gate=rows["gate"].astype(np.float64),
                occluded=rows["occluded"].astype(bool),
                foot_contact=rows["foot_contact"].astype(bool),
            )
        )
    video_path = Path(video["path"]) if video.get("path") else None
    skeleton = solved_rest_skeleton(manifest)
    camera_to_world, world_source = (
        shot_world(result, fps) if with_world else (CAMERA_TO_WORLD.copy(), "kept")
    )
    return ImportPlan(
        result_path=result.path.resolve(),
        collection_name=f"RAM {result.path.name}",
        video_path=video_path,
        fps=fps,
        frame_start=start + FRAME_OFFSET,
        frame_end=max(start, end - 1) + FRAME_OFFSET,
        camera=camera,
        tracks=tuple(tracks),
        manifest=manifest,
        solved_rest_pelvis=(
            np.asarray(skeleton["pelvis_m"], dtype=np.float64)
            if skeleton["kind"] == "builtin"
            else None
        ),
        rest_skeleton=skeleton,
        edits=tuple(result.edits),
        tracks_table=result.tracks,
        unfused_tracks=result.unfused_tracks,
        camera_to_world=camera_to_world,
        world_source=world_source,
        video_rotation_deg=int(video.get("rotation_deg", 0) or 0) % 360,
        camera_keys=(
            None
            if result.camera_track is None
            else (result.camera_track[0].astype(np.int64) + FRAME_OFFSET, result.camera_track[1])
        ),
    )


def solved_pelvis(manifest: dict[str, Any]) -> np.ndarray:
    """The rest pelvis a result's ``transl`` is relative to: the built-in skeleton's where
    the result was solved on it, else the built-in one as the nearest known (a body model's
    own pelvis differs by centimetres)."""
    skeleton = solved_rest_skeleton(manifest)
    if skeleton["kind"] == "builtin":
        return np.asarray(skeleton["pelvis_m"], dtype=np.float64)
    return REST_JOINTS_M[0].astype(np.float64)


def _camera_turns(result: RamResult):
    """For a turning camera, a function of frames (N,) -> (N, 3, 3) rotations taking each
    frame's camera coordinates into the first frame's; None for a static camera."""
    if result.camera_track is None or len(result.camera_track[0]) == 0:
        return None
    frames, per_frame = result.camera_track
    first = per_frame[0, :3, :3]
    into_first = first.T @ per_frame[:, :3, :3]  # R_t^T = C2W_0^T C2W_t

    def turns(row_frames: np.ndarray) -> np.ndarray:
        return into_first[nearest_frame(frames, row_frames)]

    return turns


def _into_first_camera(
    global_orient: np.ndarray, transl: np.ndarray, turns: np.ndarray, pelvis: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A track's root rotation and translation moved from each frame's camera coordinates
    into the first frame's (the camera turns about its centre)."""
    orient = matrix_to_axis_angle(turns @ axis_angle_to_matrix(global_orient))
    pelvis_first = np.einsum("nij,nj->ni", turns, transl + pelvis)
    return orient, pelvis_first - pelvis


def shot_world(result: RamResult, fps: float) -> tuple[np.ndarray, str]:
    """(camera_to_world, where it came from): the manifest's ``world``, else estimated from
    the tracks (older results), else the camera frame itself (no tracks)."""
    try:
        stored = world_from_manifest(result.manifest.get("world"))
    except ValueError as exc:
        raise ResultFormatError(f"{result.path}: {exc}.") from exc
    if stored is not None:
        return stored, "manifest"
    estimated = estimate_world(result.tracks, REST_JOINTS_M, fps)
    if estimated is None:
        return CAMERA_TO_WORLD.copy(), "none"
    return estimated.camera_to_world, f"estimated at import ({estimated.method})"


def load_import_plan(path: str | Path) -> ImportPlan:
    """Read a result folder (edits applied) and plan its import. Raises ResultFormatError."""
    return plan_import(load_result(path, apply_edits=True))


def project_points(points_cam: np.ndarray, camera: dict[str, Any]) -> np.ndarray:
    """Pinhole projection with the manifest's intrinsics: (..., 3) metres -> (..., 2) pixels."""
    points_cam = np.asarray(points_cam, dtype=np.float64)
    z = points_cam[..., 2]
    u = float(camera["fx"]) * points_cam[..., 0] / z + float(camera["cx"])
    v = float(camera["fy"]) * points_cam[..., 1] / z + float(camera["cy"])
    return np.stack([u, v], axis=-1)
