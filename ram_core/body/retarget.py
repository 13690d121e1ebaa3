"""Retarget a posed skeleton onto another rig: rest-pose aware, in world space. numpy only.

Blender gathers both armatures into ``Rig`` values (bone names, parents, rest matrices,
object matrix) and the source's per-frame pose-bone matrices; this module does the rest, so
the math is tested without Blender.

Method. A target bone mapped to a source bone turns in the world as the source bone turns
away from its rest pose. The two rest poses differ (T-pose against A-pose, other rolls and
lengths), so first each target bone's rest direction is swung onto its source bone's rest
direction (placed in the target's facing), then the source's world rotation since rest is
applied:

    W_target(t) = C2W @ D_source(t) @ F^-1 @ swing @ W_target_rest

where ``D_source(t) = W_source(t) @ W_source_rest^-1`` and ``F`` turns the source's rest
facing (left, up, front, read from its hips and head) into the target's. ``C2W`` turns the
source's world into the target's: the result's camera frame (x right, y down, z forward)
into Blender's Z-up world until the shot's own world frame is known. Unmapped bones keep
their pose relative to their parent. The pelvis bone also moves: the source's pelvis path,
scaled by the ratio of leg lengths, starting above the rig's own pelvis, with the lowest
foot of the clip at the rig's own foot height.

Blender's pose chain, per bone with parent p (4x4, armature space):
``P_b = P_p @ Rest_p^-1 @ Rest_b @ Basis_b`` (root: ``P_b = Rest_b @ Basis_b``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ram_core.body.rotations import rotation_between_vectors
from ram_core.motion.feet import pin_targets, two_bone_ik

# The result's camera frame (x right, y down, z forward) -> a Z-up world looking along +Y.
CAMERA_TO_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# Source joints (SMPL-24 names) that give a skeleton's facing and size.
FACING_JOINTS = ("pelvis", "left_hip", "right_hip", "head")
LEG_CHAINS = (("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle"))
FOOT_JOINTS = ("left_ankle", "right_ankle", "left_foot", "right_foot")


@dataclass(frozen=True)
class Rig:
    """An armature at rest: names, parent index per bone (-1 for roots; parents come before
    their children), rest matrices (B, 4, 4) in armature space (Blender's
    ``Bone.matrix_local``) and the object's world matrix (4, 4)."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    rest: np.ndarray
    object_matrix: np.ndarray = field(default_factory=lambda: np.eye(4))

    def __post_init__(self) -> None:
        count = len(self.names)
        if len(self.parents) != count or np.shape(self.rest) != (count, 4, 4):
            raise ValueError(f"a rig of {count} bones needs {count} parents and (B, 4, 4) rest")
        if any(not -1 <= p < b for b, p in enumerate(self.parents)):
            raise ValueError("every bone's parent must come before it")

    def index(self, name: str) -> int:
        return self.names.index(name)

    def rest_world(self) -> np.ndarray:
        """(B, 4, 4) world matrices at rest."""
        return self.object_matrix @ self.rest

    def heads_world(self) -> np.ndarray:
        """(B, 3) bone heads in the world at rest."""
        return self.rest_world()[:, :3, 3]


@dataclass(frozen=True)
class RetargetResult:
    """Per frame and target bone: the pose basis (T, B, 4, 4) (rotation, and translation on
    the pelvis bone), which bones were mapped, and the leg-length ratio used."""

    basis: np.ndarray
    mapped: tuple[str, ...]
    unmapped: tuple[str, ...]
    scale: float


def pose_matrices(rig: Rig, basis: np.ndarray) -> np.ndarray:
    """Armature-space pose matrices (T, B, 4, 4) from pose bases (T, B, 4, 4)."""
    basis = np.asarray(basis, dtype=np.float64)
    rest = np.asarray(rig.rest, dtype=np.float64)
    pose = np.empty_like(basis)
    for b, parent in enumerate(rig.parents):
        if parent < 0:
            pose[:, b] = rest[b] @ basis[:, b]
        else:
            offset = np.linalg.inv(rest[parent]) @ rest[b]
            pose[:, b] = pose[:, parent] @ offset @ basis[:, b]
    return pose


def basis_from_pose(rig: Rig, pose: np.ndarray) -> np.ndarray:
    """The inverse of ``pose_matrices``: (T, B, 4, 4) armature-space poses -> bases."""
    pose = np.asarray(pose, dtype=np.float64)
    rest = np.asarray(rig.rest, dtype=np.float64)
    basis = np.empty_like(pose)
    for b, parent in enumerate(rig.parents):
        if parent < 0:
            basis[:, b] = np.linalg.inv(rest[b]) @ pose[:, b]
        else:
            offset = np.linalg.inv(rest[parent]) @ rest[b]
            basis[:, b] = np.linalg.inv(pose[:, parent] @ offset) @ pose[:, b]
    return basis


def rest_facing(heads: dict[str, np.ndarray]) -> np.ndarray:
    """(3, 3) columns: the body's left, up and front at rest, from the hips and head
    (``heads`` by SMPL joint name, world positions)."""
    left = _unit(heads["left_hip"] - heads["right_hip"])
    up = heads["head"] - heads["pelvis"]
    up = _unit(up - left * np.dot(up, left))
    return np.column_stack([left, up, np.cross(left, up)])


def leg_length(heads: dict[str, np.ndarray]) -> float:
    """Mean hip-knee-ankle length of the two legs, metres."""
    lengths = [
        np.linalg.norm(heads[knee] - heads[hip]) + np.linalg.norm(heads[ankle] - heads[knee])
        for hip, knee, ankle in LEG_CHAINS
    ]
    return float(np.mean(lengths))


def retarget(
    source: Rig,
    source_basis: np.ndarray,
    target: Rig,
    bone_map: dict[str, str],
    target_basis_rest: np.ndarray | None = None,
    camera_to_world: np.ndarray = CAMERA_TO_ZUP,
    contacts: np.ndarray | None = None,
    ramp_frames: int = 3,
) -> RetargetResult:
    """The target's pose bases (T, B, 4, 4) that make it move as the source does.

    ``source_basis``: the source's pose bases (T, S, 4, 4). ``bone_map``: target bone ->
    source bone (SMPL-24 joint names on the source; it must map the joints of
    ``FACING_JOINTS`` and ``LEG_CHAINS``). ``target_basis_rest``: the target's current bases
    (B, 4, 4), kept on the bones that are not mapped (default: identity). ``contacts``:
    (T, 2) the source's feet (left, right) planted per frame; during each contact the
    target's ankle is held where it stood (its median over the contact) by a two-bone IK
    on the target's leg, easing in and out over ``ramp_frames``: a rig of other
    proportions does not slide its feet where the source did not.
    Raises ValueError for a map that names bones the rigs lack or misses those joints.
    """
    source_basis = np.asarray(source_basis, dtype=np.float64)
    frames = source_basis.shape[0]
    missing = [name for name in bone_map if name not in target.names]
    missing += [name for name in bone_map.values() if name not in source.names]
    if missing:
        raise ValueError(f"the bone map names bones the rigs lack: {', '.join(missing)}")
    by_source = {source_name: target_name for target_name, source_name in bone_map.items()}
    needed = {*FACING_JOINTS, *(joint for chain in LEG_CHAINS for joint in chain)}
    lacking = sorted(needed - set(by_source))
    if lacking:
        raise ValueError(f"the bone map must map the source's {', '.join(lacking)}")

    source_rest = source.rest_world()
    target_rest = target.rest_world()
    source_heads = {name: source_rest[source.index(name), :3, 3] for name in by_source}
    target_heads = {name: target_rest[target.index(by_source[name]), :3, 3] for name in by_source}
    # Source facing -> target facing at rest, and the source's world -> the target's.
    facing = rest_facing(target_heads) @ rest_facing(source_heads).T
    to_world = np.eye(4)
    to_world[:3, :3] = camera_to_world
    source_world = to_world @ source.object_matrix @ pose_matrices(source, source_basis)

    world_rotation = np.empty((frames, len(target.names), 3, 3))
    mapped = []
    for target_name, source_name in bone_map.items():
        b, s = target.index(target_name), source.index(source_name)
        source_rest_rot = source_rest[s, :3, :3]
        target_rest_rot = target_rest[b, :3, :3]
        # Swing the target bone (its y axis) onto the source bone's rest direction. Not the
        # pelvis: its bone may point anywhere (a rig's hip control often lies flat); the
        # body's facing already lines it up.
        if source_name == "pelvis":
            swing = np.eye(3)
        else:
            source_direction = facing @ source_rest_rot[:, 1]
            swing = rotation_between_vectors(_unit(target_rest_rot[:, 1]), _unit(source_direction))
        since_rest = source_world[:, s, :3, :3] @ (camera_to_world @ source_rest_rot).T
        world_rotation[:, b] = since_rest @ camera_to_world @ facing.T @ swing @ target_rest_rot
        mapped.append(target_name)

    scale = leg_length(target_heads) / leg_length(source_heads)
    pelvis_target = target.index(by_source["pelvis"])
    pelvis_path = source_world[:, source.index("pelvis"), :3, 3]
    feet = [source.index(j) for j in FOOT_JOINTS if j in source.names]
    lowest_foot = float(source_world[:, feet, 2, 3].min())
    rest_feet = [target_heads[j][2] for j in FOOT_JOINTS if j in target_heads]
    target_floor = float(min(rest_feet)) if rest_feet else float(target_rest[:, 2, 3].min())
    start = target_rest[pelvis_target, :3, 3]
    pelvis_world = np.empty((frames, 3))
    pelvis_world[:, :2] = start[:2] + scale * (pelvis_path[:, :2] - pelvis_path[0, :2])
    pelvis_world[:, 2] = target_floor + scale * (pelvis_path[:, 2] - lowest_foot)

    # World poses for every target bone, parents first; unmapped bones follow their parent.
    kept = (
        np.broadcast_to(np.eye(4), (len(target.names), 4, 4))
        if target_basis_rest is None
        else np.asarray(target_basis_rest, dtype=np.float64)
    )
    object_inverse = np.linalg.inv(target.object_matrix)
    rest = np.asarray(target.rest, dtype=np.float64)
    mapped_set = set(mapped)
    pelvis_local = (object_inverse @ np.c_[pelvis_world, np.ones(frames)].T).T[:, :3]

    def posed(world_rotation: np.ndarray) -> np.ndarray:
        """Armature-space poses (T, B, 4, 4), parents first; unmapped bones follow their
        parent."""
        pose = np.empty((frames, len(target.names), 4, 4))
        for b, parent in enumerate(target.parents):
            chained = (
                rest[b] if parent < 0 else pose[:, parent] @ np.linalg.inv(rest[parent]) @ rest[b]
            )
            chained = np.broadcast_to(chained, (frames, 4, 4))
            if target.names[b] not in mapped_set:
                pose[:, b] = chained @ kept[b]
                continue
            pose[:, b] = chained
            pose[:, b, :3, :3] = object_inverse[:3, :3] @ world_rotation[:, b]
            if b == pelvis_target:
                pose[:, b, :3, 3] = pelvis_local
        return pose

    pose = posed(world_rotation)
    if contacts is not None and np.any(contacts):
        world_rotation = _pin_feet(
            target, target.object_matrix @ pose, world_rotation, by_source, contacts, ramp_frames
        )
        pose = posed(world_rotation)
    basis = basis_from_pose(target, pose)
    unmapped = tuple(name for name in target.names if name not in mapped_set)
    return RetargetResult(basis, tuple(mapped), unmapped, scale)


def _pin_feet(
    target: Rig,
    world_pose: np.ndarray,
    world_rotation: np.ndarray,
    by_source: dict[str, str],
    contacts: np.ndarray,
    ramp_frames: int,
) -> np.ndarray:
    """The target's mapped world rotations with each leg turned (hip swing, knee bend) so its
    ankle holds still during the source's contacts; the foot keeps its world rotation."""
    contacts = np.asarray(contacts, dtype=bool)
    if contacts.shape != (len(world_pose), 2):
        raise ValueError(f"contacts must be (frames, 2), got {contacts.shape}")
    heads = world_pose[..., :3, 3]
    left = (
        heads[:, target.index(by_source["left_hip"])]
        - heads[:, target.index(by_source["right_hip"])]
    )
    rotation = world_rotation.copy()
    for foot, (hip, knee, ankle) in enumerate(LEG_CHAINS):
        hip_bone, knee_bone, ankle_bone = (target.index(by_source[j]) for j in (hip, knee, ankle))
        targets, weights = pin_targets(heads[:, ankle_bone], contacts[:, foot], ramp_frames)
        active = weights > 0
        if not active.any():
            continue
        at = heads[active]
        goal = at[:, ankle_bone] + weights[active, None] * (targets[active] - at[:, ankle_bone])
        swing, bend = two_bone_ik(
            at[:, hip_bone], at[:, knee_bone], at[:, ankle_bone], goal, left[active]
        )
        rotation[active, hip_bone] = swing @ rotation[active, hip_bone]
        rotation[active, knee_bone] = swing @ bend @ rotation[active, knee_bone]
    return rotation


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm < 1e-9:
        raise ValueError("two joints that set a direction coincide")
    return np.asarray(vector, dtype=np.float64) / norm
