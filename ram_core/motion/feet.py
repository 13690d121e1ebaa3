"""Foot contact and planted feet: the clean-up that runs with the Combiner. numpy only.

In the shot's world frame (floor z = 0, Z up) a foot is in contact on the frames where its
sole is near the floor and it hardly moves. During each contact the foot is pinned where it
stood (the median of its positions over the contact, its sole on the floor), in two steps:

1. The root moves along the camera's line of sight through the pelvis only. One view is
   least sure of depth, which is where a planted foot's jitter mostly comes from, and a move
   along that ray leaves the pelvis where it is in the image.
2. A two-bone IK on each contacting leg (hip swing and knee bend; the foot keeps its world
   orientation) takes the ankle the rest of the way.

Both ease in and out over a few frames either side of a contact, so nothing pops. The same
pinning (``pin_targets``, ``two_bone_ik``) keeps contacts on a retarget's target rig.

The body's rest joints are the built-in skeleton's unless given; a result solved on an SMPL
file's body is pinned on the built-in proportions (a centimetre-level difference at the feet).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ram_core.body.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    rotation_between_vectors,
)
from ram_core.body.skeleton import (
    JOINT_INDEX,
    PARENTS,
    REST_JOINTS_M,
    forward_kinematics,
    forward_kinematics_matrices,
)
from ram_core.motion.world import SOLE_HEIGHT_M

FEET = ("left", "right")
# (hip, knee, ankle, toe base) per foot, left then right.
LEG_JOINTS = tuple(
    tuple(JOINT_INDEX[f"{side}_{part}"] for part in ("hip", "knee", "ankle", "foot"))
    for side in FEET
)
# Sole below the ankle and below the toe base on the built-in body at rest.
ANKLE_SOLE_M, TOE_SOLE_M = float(SOLE_HEIGHT_M[0]), float(SOLE_HEIGHT_M[1])


@dataclass(frozen=True)
class FootConfig:
    """How contacts are found and how hard feet are pinned.

    enabled: clean up at all (contacts are still flagged when False).
    max_sole_height_m: a sole higher than this above the floor is in the air.
    max_speed_m_s: a foot moving faster than this over the floor is in the air: across
        the line of sight after a moving average of speed_window_s, along it (depth) of
        depth_window_s.
    floor_window_s: the window of the running level its soles are judged against.
    min_contact_frames: shorter contacts are dropped; gaps of at most fill_gap_frames
        inside a contact are filled.
    ramp_frames: the pinning eases in and out over this many frames either side.
    snap_to_floor: pin the foot where it stood with the level the person's soles stand on
        moved onto z = 0 (along the line of sight: a person standing under or over the
        floor is at the wrong depth), not only where it stood.
    max_root_shift_m: the largest root move along the line of sight.
    max_image_shift_px: how far a pinned ankle may move across the image; the rest of its
        pull, along its line of sight, is depth and free.
    """

    enabled: bool = True
    max_sole_height_m: float = 0.10
    max_speed_m_s: float = 0.5
    speed_window_s: float = 0.1
    depth_window_s: float = 0.4
    floor_window_s: float = 1.0
    min_contact_frames: int = 3
    fill_gap_frames: int = 2
    ramp_frames: int = 3
    snap_to_floor: bool = True
    max_root_shift_m: float = 0.5
    max_image_shift_px: float = 3.0

    def __post_init__(self) -> None:
        for name in (
            "max_sole_height_m",
            "max_speed_m_s",
            "speed_window_s",
            "depth_window_s",
            "floor_window_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"feet.{name} must be positive, got {getattr(self, name)}")
        if self.min_contact_frames < 1 or self.fill_gap_frames < 0 or self.ramp_frames < 0:
            raise ValueError(
                "feet.min_contact_frames must be >= 1 and fill_gap_frames, ramp_frames >= 0"
            )
        if self.max_root_shift_m < 0:
            raise ValueError(f"feet.max_root_shift_m must be >= 0, got {self.max_root_shift_m}")


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D boolean array."""
    edges = np.diff(np.r_[0, np.asarray(flags, dtype=np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    return list(zip(starts, stops, strict=True))


def tidy_contacts(flags: np.ndarray, fill_gap: int, min_frames: int) -> np.ndarray:
    """Fills gaps of at most ``fill_gap`` frames between contacts, then drops contacts
    shorter than ``min_frames``. (T,) -> (T,)."""
    flags = np.asarray(flags, dtype=bool).copy()
    spans = runs(flags)
    for (_, stop), (start, _) in itertools.pairwise(spans):
        if start - stop <= fill_gap:
            flags[stop:start] = True
    for start, stop in runs(flags):
        if stop - start < min_frames:
            flags[start:stop] = False
    return flags


def sole_heights(joints_world: np.ndarray) -> np.ndarray:
    """(T, 2) height of each foot's lowest sole point (heel or toe) above z = 0."""
    heights = []
    for _, _, ankle, toe in LEG_JOINTS:
        heel = joints_world[:, ankle, 2] - ANKLE_SOLE_M
        front = joints_world[:, toe, 2] - TOE_SOLE_M
        heights.append(np.minimum(heel, front))
    return np.stack(heights, axis=1)


def floor_speeds(
    points: np.ndarray, camera_centre: np.ndarray, fps: float, config: FootConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(T,) speeds over the floor of a (T, 3) world path: across the line of sight, and
    along it. The image pins the first; the second is depth, where a reconstruction from
    one view jitters by centimetres a frame, so it is averaged over a longer window."""
    if len(points) < 2:
        return np.zeros(len(points)), np.zeros(len(points))
    sight = points[:, :2] - camera_centre[:2]
    sight /= np.maximum(np.linalg.norm(sight, axis=1, keepdims=True), 1e-9)
    across_axis = np.stack([-sight[:, 1], sight[:, 0]], axis=1)
    speeds = []
    for axis, window_s in ((across_axis, config.speed_window_s), (sight, config.depth_window_s)):
        coordinate = _moving_average(np.einsum("tk,tk->t", points[:, :2], axis), window_s * fps)
        speeds.append(np.abs(np.gradient(coordinate)) * fps)
    return speeds[0], speeds[1]


def _moving_average(values: np.ndarray, window: float) -> np.ndarray:
    window = max(1, round(window))
    padded = np.pad(values, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def local_floor(heights: np.ndarray, fps: float, window_s: float) -> np.ndarray:
    """(T,) the level a track's soles stand on around each frame: a running median of its
    lower sole. One view gets a person's depth, so their height over the floor, a little
    wrong; a contact is judged against this level, not z = 0."""
    window = max(1, round(window_s * fps)) | 1
    lowest = heights.min(axis=1)
    padded = np.pad(lowest, window // 2, mode="edge")
    strided = np.lib.stride_tricks.sliding_window_view(padded, window)
    return np.median(strided, axis=1)


def detect_contacts(
    joints_world: np.ndarray, camera_centre: np.ndarray, fps: float, config: FootConfig
) -> np.ndarray:
    """(T, 2) contact flags of one track's contiguous frames, joints (T, 24, 3) in the world
    frame, seen from ``camera_centre`` (3,)."""
    heights = sole_heights(joints_world)
    level = local_floor(heights, fps, config.floor_window_s)
    contacts = np.zeros(heights.shape, dtype=bool)
    for foot, (_, _, ankle, _) in enumerate(LEG_JOINTS):
        across, along = floor_speeds(joints_world[:, ankle], camera_centre, fps, config)
        planted = (
            (heights[:, foot] - level < config.max_sole_height_m)
            & (across < config.max_speed_m_s)
            & (along < config.max_speed_m_s)
        )
        contacts[:, foot] = tidy_contacts(
            planted, config.fill_gap_frames, config.min_contact_frames
        )
    return contacts


def pin_targets(
    positions: np.ndarray,
    contacts: np.ndarray,
    ramp_frames: int,
    anchor_of: Callable[[int, int], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Where a foot should be on each frame, and how strongly: (T, 3) targets, (T,) weights.

    Each contact's anchor is ``anchor_of(start, stop)``, by default the median of
    ``positions`` over it. Weights are 1 during a contact and fall linearly to 0 over
    ``ramp_frames`` either side, toward the nearest contact's anchor; elsewhere the target
    is the position itself at weight 0.
    """
    positions = np.asarray(positions, dtype=np.float64)
    frames = len(positions)
    targets = positions.copy()
    weights = np.zeros(frames)
    for start, stop in runs(contacts):
        anchor = (
            np.median(positions[start:stop], axis=0)
            if anchor_of is None
            else anchor_of(start, stop)
        )
        lo, hi = max(0, start - ramp_frames), min(frames, stop + ramp_frames)
        index = np.arange(lo, hi)
        distance = np.maximum(start - index, index - (stop - 1)).clip(min=0)
        weight = 1.0 - distance / (ramp_frames + 1)
        stronger = weight > weights[lo:hi]
        weights[lo:hi] = np.where(stronger, weight, weights[lo:hi])
        targets[lo:hi] = np.where(stronger[:, None], anchor, targets[lo:hi])
    return targets, weights


def floor_anchor(
    stood: np.ndarray, ankle_height: float, camera_centre: np.ndarray, config: FootConfig
) -> np.ndarray:
    """Where an ankle that stood at ``stood`` (world) is with its sole on the floor: along
    the line of sight through it, so it stays where the image shows it and only its depth
    changes; straight down or up where that line meets the floor too far away."""
    sight = stood - camera_centre
    wanted = ankle_height - camera_centre[2]
    if sight[2] < -1e-6:
        scale = wanted / sight[2]
        if abs(scale - 1.0) * np.linalg.norm(sight) <= config.max_root_shift_m:
            return camera_centre + scale * sight
    return np.array([stood[0], stood[1], ankle_height])


def two_bone_ik(
    hip: np.ndarray,
    knee: np.ndarray,
    ankle: np.ndarray,
    target: np.ndarray,
    bend_hint: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """World-space rotations that take a leg's ankle to ``target``: (swing, bend), (T, 3, 3).

    The knee's new world rotation is ``swing @ bend @ old`` and the hip's ``swing @ old``:
    ``bend`` turns the shin about the knee in the leg's plane until hip-to-ankle has the
    target's distance (clamped to the leg's reach), ``swing`` turns the whole leg about the
    hip onto the target. ``bend_hint`` (T, 3): the knee's bending axis for a straight leg
    (the body's left; the positive turn bends the shin backwards).
    """
    thigh, shin = knee - hip, ankle - knee
    thigh_length = np.linalg.norm(thigh, axis=-1)
    shin_length = np.linalg.norm(shin, axis=-1)
    axis = np.cross(thigh, shin)
    axis_norm = np.linalg.norm(axis, axis=-1, keepdims=True)
    hint = bend_hint / np.maximum(np.linalg.norm(bend_hint, axis=-1, keepdims=True), 1e-12)
    axis = np.where(axis_norm > 1e-6, axis / np.maximum(axis_norm, 1e-12), hint)
    reach = np.linalg.norm(target - hip, axis=-1)
    shortest = np.abs(thigh_length - shin_length) + 1e-4
    reach = np.clip(reach, shortest, 0.9999 * (thigh_length + shin_length))
    bent_now = _angle(thigh, shin)
    cos_wanted = (thigh_length**2 + shin_length**2 - reach**2) / (2 * thigh_length * shin_length)
    # The angle between thigh and shin directions is pi minus the knee's inner angle.
    bent_wanted = np.pi - np.arccos(np.clip(cos_wanted, -1.0, 1.0))
    bend = axis_angle_to_matrix(axis * (bent_wanted - bent_now)[..., None])
    new_ankle = knee + np.einsum("tij,tj->ti", bend, shin)
    swing = rotation_between_vectors(new_ankle - hip, target - hip)
    return swing, bend


def plant_track(
    pose: np.ndarray,
    transl: np.ndarray,
    camera_to_world: np.ndarray,
    focal_px: float,
    fps: float,
    config: FootConfig,
    rest_joints: np.ndarray = REST_JOINTS_M,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One track's contiguous frames: pose (T, 24, 3) axis-angle and transl (T, 3) in the
    camera frame (focal length ``focal_px``); camera_to_world (4, 4), or (T, 4, 4) for a
    turning camera. Returns the cleaned pose, transl and the contacts (T, 2)."""
    # One camera_to_world, or one per frame for a turning camera (which keeps its centre).
    per_frame = np.broadcast_to(camera_to_world, (len(pose), 4, 4))
    rotation, centre = per_frame[:, :3, :3], per_frame[0, :3, 3]
    joints, _ = forward_kinematics(pose[:, 0], pose[:, 1:], transl, rest_joints)
    world = np.einsum("tij,tkj->tki", rotation, joints) + centre
    contacts = detect_contacts(world, centre, fps, config)
    if not config.enabled or not contacts.any():
        return pose, transl, contacts

    # Each foot's ankle target in the camera frame, and how strongly it pulls.
    heights = sole_heights(world)
    level = local_floor(heights, fps, config.floor_window_s)
    targets, weights = [], []
    for foot, (_, _, ankle, _) in enumerate(LEG_JOINTS):
        path = world[:, ankle]
        # The ankle's height over the level the person's soles stand on: kept, while that
        # level goes onto the floor.
        over_level = path[:, 2] - level

        def anchor_of(start: int, stop: int, path=path, over_level=over_level) -> np.ndarray:
            stood = np.median(path[start:stop], axis=0)
            if not config.snap_to_floor:
                return stood
            return floor_anchor(stood, float(np.median(over_level[start:stop])), centre, config)

        target_world, weight = pin_targets(path, contacts[:, foot], config.ramp_frames, anchor_of)
        targets.append(np.einsum("tji,tj->ti", rotation, target_world - centre))
        weights.append(weight)
    targets, weights = np.stack(targets, 1), np.stack(weights, 1)  # (T, 2, 3), (T, 2)

    # Where each ankle may go: its pull, cut across the line of sight to the image budget
    # from where the image put it.
    ankles = joints[:, [leg[2] for leg in LEG_JOINTS]]
    allowed = np.stack(
        [
            ankles[:, foot]
            + _within_image_budget(
                weights[:, foot, None] * (targets[:, foot] - ankles[:, foot]),
                ankles[:, foot],
                focal_px,
                config,
            )
            for foot in range(len(LEG_JOINTS))
        ],
        axis=1,
    )

    # 1. The root along the line of sight through the pelvis.
    pull = np.einsum("tf,tfk->tk", weights, allowed - ankles)
    total = weights.sum(axis=1)
    ray = joints[:, 0] / np.maximum(np.linalg.norm(joints[:, 0], axis=1, keepdims=True), 1e-9)
    along = np.einsum("tk,tk->t", ray, pull) / np.maximum(total, 1e-9)
    pulled = total > 1e-9
    frames = np.arange(len(along))
    # Between contacts the shift goes linearly from one to the next; it holds before the
    # first and after the last.
    along = np.interp(frames, frames[pulled], along[pulled])
    along = np.clip(along, -config.max_root_shift_m, config.max_root_shift_m)
    transl = transl + along[:, None] * ray

    # 2. Each contacting leg's two-bone IK, the foot's world orientation kept.
    local = axis_angle_to_matrix(pose)
    for foot, (hip, knee, ankle, _) in enumerate(LEG_JOINTS):
        joints, world_rotations = forward_kinematics_matrices(local, transl, rest_joints)
        active = weights[:, foot] > 0
        if not active.any():
            continue
        at = joints[active]
        target = allowed[active, foot]
        left = at[:, JOINT_INDEX["left_hip"]] - at[:, JOINT_INDEX["right_hip"]]
        swing, bend = two_bone_ik(at[:, hip], at[:, knee], at[:, ankle], target, left)
        g = world_rotations[active]
        new_hip = swing @ g[:, hip]
        new_knee = swing @ bend @ g[:, knee]
        local[active, hip] = _transpose(g[:, PARENTS[hip]]) @ new_hip
        local[active, knee] = _transpose(new_hip) @ new_knee
        local[active, ankle] = _transpose(new_knee) @ g[:, ankle]
    return matrix_to_axis_angle(local), transl, contacts


def plant_feet(
    tracks: dict[str, np.ndarray],
    camera_to_world: np.ndarray,
    focal_px: float,
    fps: float,
    config: FootConfig | None = None,
    track_ids: Iterable[int] | None = None,
    rest_joints: np.ndarray = REST_JOINTS_M,
) -> dict[str, np.ndarray]:
    """A new table with ``foot_contact`` set and, where ``config.enabled``, the final pose
    columns (``global_orient``, ``body_pose``, ``transl``) cleaned. ``camera_to_world``:
    (4, 4), or (N, 4, 4) per row for a turning camera. ``track_ids``: only these
    tracks; the other rows are copied unchanged. Runs over each track's stretches of
    consecutive frames."""
    config = config or FootConfig()
    out = {k: np.array(v, copy=True) for k, v in tracks.items()}
    track_id, frame = out["track_id"], out["frame"]
    if "foot_contact" not in out:
        out["foot_contact"] = np.zeros((len(track_id), 2), dtype=bool)
    wanted = None if track_ids is None else {int(i) for i in track_ids}
    breaks = np.flatnonzero((np.diff(track_id) != 0) | (np.diff(frame) != 1)) + 1
    starts = np.r_[0, breaks] if len(track_id) else np.zeros(0, dtype=int)
    stops = np.r_[breaks, len(track_id)] if len(track_id) else np.zeros(0, dtype=int)
    camera_to_world = np.asarray(camera_to_world, dtype=np.float64)
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        if wanted is not None and int(track_id[start]) not in wanted:
            continue
        rows = slice(start, stop)
        pose = np.concatenate(
            [out["global_orient"][rows, None, :], out["body_pose"][rows]], axis=1
        ).astype(np.float64)
        pose, transl, contacts = plant_track(
            pose,
            out["transl"][rows].astype(np.float64),
            camera_to_world[rows] if camera_to_world.ndim == 3 else camera_to_world,
            focal_px,
            fps,
            config,
            rest_joints,
        )
        out["foot_contact"][rows] = contacts
        out["global_orient"][rows] = pose[:, 0]
        out["body_pose"][rows] = pose[:, 1:]
        out["transl"][rows] = transl
    return out


def _within_image_budget(
    pull: np.ndarray, ankle: np.ndarray, focal_px: float, config: FootConfig
) -> np.ndarray:
    """(T, 3) pulls on ankles (camera frame) with their part across the line of sight cut
    to ``config.max_image_shift_px`` on the image."""
    sight = ankle / np.maximum(np.linalg.norm(ankle, axis=-1, keepdims=True), 1e-9)
    along = np.einsum("tk,tk->t", pull, sight)[:, None] * sight
    across = pull - along
    limit = config.max_image_shift_px * np.maximum(ankle[:, 2:3], 1e-3) / focal_px
    length = np.linalg.norm(across, axis=-1, keepdims=True)
    return along + across * np.minimum(1.0, limit / np.maximum(length, 1e-12))


def _transpose(matrices: np.ndarray) -> np.ndarray:
    return np.swapaxes(matrices, -1, -2)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    return np.arctan2(cross, np.einsum("...k,...k->...", a, b))
