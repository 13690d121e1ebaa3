"""Retarget a track's armature onto the artist's rig, and export tracks. Plain functions.

Thin: the armatures are read into ``ram_core.body.retarget.Rig`` values, the math runs in
numpy, and the result is baked as one new action on the target (its other actions, its
constraints and its current pose of unmapped bones are left alone). The source is read from
its keys, so the artist's own corrections to a track are retargeted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Quaternion

from ram_core.body.retarget import CAMERA_TO_ZUP, RetargetResult, Rig, retarget
from ram_core.body.rig_presets import PRESETS, detect_preset, preset_map, read_bone_map
from ram_core.body.rotations import matrix_to_quaternion, quaternion_to_matrix
from ram_core.body.skeleton import JOINT_NAMES
from ram_core.errors import BadInputError

from . import animation
from .importer import TRACK_ID_PROP, WORLD_PROP
from .skeleton import continuous_quaternions

# Rigify's IK/FK switches, set to FK (1.0) so its FK controls drive the deform bones.
RIGIFY_FK_SWITCHES = (
    "upper_arm_parent.L",
    "upper_arm_parent.R",
    "thigh_parent.L",
    "thigh_parent.R",
)


class RetargetError(BadInputError):
    """A retarget that cannot be made: not a track, not an armature, an unusable map."""


@dataclass(frozen=True)
class RetargetReport:
    """What a retarget did (or, for a dry run, would do)."""

    preset: str
    mapped: dict[str, str]
    unmapped_bones: tuple[str, ...]
    unmapped_joints: tuple[str, ...]
    frames: tuple[int, int]
    action: bpy.types.Action | None
    scale: float


def rig_of(obj: bpy.types.Object) -> Rig:
    """An armature object as a Rig (bones ordered parents first)."""
    if obj is None or obj.type != "ARMATURE":
        raise RetargetError(f"{getattr(obj, 'name', obj)!r} is not an armature.")
    ordered: list[bpy.types.Bone] = []
    pending = [bone for bone in obj.data.bones if bone.parent is None]
    while pending:
        bone = pending.pop(0)
        ordered.append(bone)
        pending.extend(bone.children)
    index = {bone.name: i for i, bone in enumerate(ordered)}
    return Rig(
        names=tuple(bone.name for bone in ordered),
        parents=tuple(index[bone.parent.name] if bone.parent else -1 for bone in ordered),
        rest=np.array([np.array(bone.matrix_local) for bone in ordered]),
        object_matrix=np.array(obj.matrix_world),
    )


def keyed_frames(obj: bpy.types.Object) -> np.ndarray:
    """Every frame from a track armature's first key to its last."""
    curves = _curves(obj)
    keys = [c for path, c in curves.items() if path[0].endswith("rotation_quaternion")]
    if not keys:
        raise RetargetError(f"{obj.name} has no keyed rotations to retarget.")
    first = min(curve.keyframe_points[0].co[0] for curve in keys if len(curve.keyframe_points))
    last = max(curve.keyframe_points[-1].co[0] for curve in keys if len(curve.keyframe_points))
    return np.arange(round(first), round(last) + 1)


def keyed_bases(obj: bpy.types.Object, rig: Rig, frames: np.ndarray) -> np.ndarray:
    """(T, B, 4, 4) pose bases of an armature read from its keys (linear between keys),
    its current pose where a channel has none."""
    curves = _curves(obj)
    bases = np.tile(np.eye(4), (len(frames), len(rig.names), 1, 1))
    for b, name in enumerate(rig.names):
        pose_bone = obj.pose.bones[name]
        rotation_path = f'pose.bones["{name}"].rotation_quaternion'
        quaternion = np.array(
            [
                _sampled(curves.get((rotation_path, i)), frames, pose_bone.rotation_quaternion[i])
                for i in range(4)
            ]
        ).T
        quaternion /= np.linalg.norm(quaternion, axis=1, keepdims=True)
        bases[:, b, :3, :3] = quaternion_to_matrix(quaternion)
        location_path = f'pose.bones["{name}"].location'
        bases[:, b, :3, 3] = np.array(
            [
                _sampled(curves.get((location_path, i)), frames, pose_bone.location[i])
                for i in range(3)
            ]
        ).T
    return bases


def keyed_contacts(obj: bpy.types.Object, frames: np.ndarray) -> np.ndarray | None:
    """(T, 2) the track's planted feet (left, right) from its keyed ``ram_contact_left`` and
    ``ram_contact_right`` (what the import keyed, or the artist's own keys), each held from
    one key to the next; None when the armature has neither."""
    curves = _curves(obj)
    keyed = [curves.get((f'["ram_contact_{side}"]', 0)) for side in ("left", "right")]
    if all(curve is None or len(curve.keyframe_points) == 0 for curve in keyed):
        return None
    return np.stack([_held(curve, frames) > 0.5 for curve in keyed], axis=1)


def current_bases(obj: bpy.types.Object, rig: Rig) -> np.ndarray:
    """(B, 4, 4) the target's pose bases now (kept on the bones no map entry drives)."""
    return np.array([np.array(obj.pose.bones[name].matrix_basis) for name in rig.names])


def choose_map(target: bpy.types.Object, preset: str, map_file: str = "") -> tuple[str, dict]:
    """(preset used, {target bone: SMPL joint}). ``map_file`` wins over ``preset``;
    'AUTO' detects the preset from the bone names; 'CUSTOM' is the map edited on the
    target (``Object.ram_bone_map``). Raises RetargetError."""
    names = [bone.name for bone in target.data.bones]
    if map_file:
        try:
            mapping = read_bone_map(bpy.path.abspath(map_file))
        except ValueError as exc:
            raise RetargetError(str(exc)) from exc
        return "FILE", mapping
    if preset == "CUSTOM":
        mapping = {item.bone: item.joint for item in target.ram_bone_map if item.bone}
        return "CUSTOM", mapping
    if preset == "AUTO":
        found = detect_preset(names)
        if found is None:
            raise RetargetError(
                f"{target.name}'s bone names fit no preset; choose one, or edit and save a map."
            )
        preset = found
    if preset not in PRESETS:
        raise RetargetError(f"Unknown preset {preset!r}.")
    return preset, preset_map(preset, names)


def retarget_track(
    source: bpy.types.Object,
    target: bpy.types.Object,
    preset: str = "AUTO",
    map_file: str = "",
    dry_run: bool = False,
) -> RetargetReport:
    """Bake ``source`` (a track's armature)'s motion onto ``target`` as a new action.

    A dry run only reports the map (mapped pairs, target bones left unmapped, SMPL joints
    no bone takes). Raises RetargetError with the scene unchanged.
    """
    if source is None or TRACK_ID_PROP not in source or source.type != "ARMATURE":
        raise RetargetError(f"{getattr(source, 'name', source)!r} is not a RAM track armature.")
    if target is None or target.type != "ARMATURE":
        raise RetargetError(f"{getattr(target, 'name', target)!r} is not an armature.")
    if target == source:
        raise RetargetError("The source and the target are the same armature.")
    used, mapping = choose_map(target, preset, map_file)
    missing = sorted(set(mapping) - {bone.name for bone in target.data.bones})
    if missing:
        raise RetargetError(f"The map names bones {target.name} lacks: {', '.join(missing)}.")
    source_rig, target_rig = rig_of(source), rig_of(target)
    frames = keyed_frames(source)
    unmapped_bones = tuple(name for name in target_rig.names if name not in mapping)
    unmapped_joints = tuple(j for j in JOINT_NAMES if j not in set(mapping.values()))
    if dry_run:
        return RetargetReport(
            used,
            mapping,
            unmapped_bones,
            unmapped_joints,
            (int(frames[0]), int(frames[-1])),
            None,
            1.0,
        )
    try:
        result = retarget(
            source_rig,
            keyed_bases(source, source_rig, frames),
            target_rig,
            mapping,
            current_bases(target, target_rig),
            # An armature placed in the shot's world is upright already; one imported
            # before the world frame existed stands in the camera frame.
            camera_to_world=np.eye(3)
            if source.get(WORLD_PROP, "none") != "none"
            else CAMERA_TO_ZUP,
            contacts=keyed_contacts(source, frames),
        )
    except ValueError as exc:
        raise RetargetError(f"Cannot retarget onto {target.name}: {exc}") from exc
    switches = _rigify_to_fk(target) if used == "RIGIFY" else {}
    previous_action = target.animation_data.action if target.animation_data else None
    try:
        if _constrained_chain(target, target_rig, result.mapped):
            result = _visual_bases(target, target_rig, result)
        action = _bake(target, target_rig, result, frames, f"{source.name}_on_{target.name}")
    except BaseException:
        # The rig as it was: its switches, its action, no half-written one.
        for name, value in switches.items():
            target.pose.bones[name]["IK_FK"] = value
        if target.animation_data is not None:
            baked = target.animation_data.action
            target.animation_data.action = previous_action
            if baked is not None and baked != previous_action and baked.users == 0:
                bpy.data.actions.remove(baked)
        raise
    return RetargetReport(
        used,
        mapping,
        unmapped_bones,
        unmapped_joints,
        (int(frames[0]), int(frames[-1])),
        action,
        result.scale,
    )


def _bake(target, rig: Rig, result: RetargetResult, frames: np.ndarray, name: str):
    """A new action on ``target`` with the mapped bones' rotations (in each bone's own
    rotation mode) and the pelvis bone's location."""
    action = bpy.data.actions.new(name)
    if target.animation_data is None:
        target.animation_data_create()
    target.animation_data.action = action
    for name_ in result.mapped:
        b = rig.index(name_)
        pose_bone = target.pose.bones[name_]
        group = name_
        rotation = result.basis[:, b, :3, :3]
        base = f'pose.bones["{name_}"]'
        if pose_bone.rotation_mode == "QUATERNION":
            values = continuous_quaternions(matrix_to_quaternion(rotation))
            animation.write_channels(
                action, target, f"{base}.rotation_quaternion", frames, values, group
            )
        elif pose_bone.rotation_mode == "AXIS_ANGLE":
            quaternions = continuous_quaternions(matrix_to_quaternion(rotation))
            values = np.array([_axis_angle(q) for q in quaternions])
            animation.write_channels(
                action, target, f"{base}.rotation_axis_angle", frames, values, group
            )
        else:
            values = _eulers(rotation, pose_bone.rotation_mode)
            animation.write_channels(
                action, target, f"{base}.rotation_euler", frames, values, group
            )
        translation = result.basis[:, b, :3, 3]
        if np.abs(translation).max() > 1e-6:
            animation.write_channels(action, target, f"{base}.location", frames, translation, group)
    return action


def _constrained_chain(target, rig: Rig, mapped: tuple[str, ...]) -> bool:
    """Whether a mapped bone or one of its ancestors has constraints (a control rig such as
    Rigify): then a bone's parent is not where the plain chain of rest offsets puts it."""
    for name in mapped:
        bone = target.pose.bones[name]
        while bone is not None:
            if any(not c.mute for c in bone.constraints):
                return True
            bone = bone.parent
    return False


def _visual_bases(target, rig: Rig, result: RetargetResult) -> RetargetResult:
    """The mapped bones' bases that give the solved world poses on a rig whose bones follow
    constraints: an unconstrained copy of the rig holds the solved poses, the mapped bones
    copy their world transforms from it, and each frame's evaluated pose is read back as
    bases (Blender's own visual keying), then the copy and the constraints go."""
    proxy = bpy.data.objects.new("RAM retarget proxy", target.data.copy())
    bpy.context.scene.collection.objects.link(proxy)
    proxy.matrix_world = target.matrix_world
    added = []
    basis = result.basis.copy()
    view_layer = bpy.context.view_layer
    try:
        view_layer.update()
        for name in result.mapped:
            constraint = target.pose.bones[name].constraints.new("COPY_TRANSFORMS")
            constraint.name = "RAM retarget"
            constraint.target, constraint.subtarget = proxy, name
            added.append((target.pose.bones[name], constraint))
        proxy_bones = [proxy.pose.bones[name] for name in rig.names]
        mapped = [(rig.index(name), target.pose.bones[name]) for name in result.mapped]
        for b, pose_bone in enumerate(proxy_bones):
            pose_bone.rotation_mode = "QUATERNION"
            # Unmapped bones hold one pose throughout: set once.
            pose_bone.matrix_basis = Matrix(result.basis[0, b].tolist())
        driven = [(b, proxy.pose.bones[rig.names[b]]) for b, _ in mapped]
        for t in range(len(basis)):
            for b, pose_bone in driven:
                pose_bone.matrix_basis = Matrix(result.basis[t, b].tolist())
            view_layer.update()
            for b, pose_bone in mapped:
                local = target.convert_space(
                    pose_bone=pose_bone,
                    matrix=pose_bone.matrix,
                    from_space="POSE",
                    to_space="LOCAL",
                )
                basis[t, b] = np.array(local)
    finally:
        for pose_bone, constraint in added:
            pose_bone.constraints.remove(constraint)
        data = proxy.data
        bpy.data.objects.remove(proxy)
        bpy.data.armatures.remove(data)
    return RetargetResult(basis, result.mapped, result.unmapped, result.scale)


def _eulers(rotation: np.ndarray, mode: str) -> np.ndarray:
    values = np.empty((len(rotation), 3))
    previous = None
    for t, matrix in enumerate(rotation):
        # Each euler near the one before, so the curves do not jump by 2 pi.
        rotation_matrix = Matrix(matrix.tolist())
        euler = (
            rotation_matrix.to_euler(mode)
            if previous is None
            else rotation_matrix.to_euler(mode, previous)
        )
        values[t] = euler
        previous = euler
    return values


def _axis_angle(q: np.ndarray) -> tuple[float, float, float, float]:
    axis, angle = Quaternion(q.tolist()).to_axis_angle()
    return (angle, *axis)


def _rigify_to_fk(target) -> dict[str, float]:
    """Set Rigify's IK/FK switches to FK; returns what they were."""
    before = {}
    for name in RIGIFY_FK_SWITCHES:
        bone = target.pose.bones.get(name)
        if bone is not None and "IK_FK" in bone:
            before[name] = float(bone["IK_FK"])
            bone["IK_FK"] = 1.0
    return before


def _curves(obj) -> dict[tuple[str, int], bpy.types.FCurve]:
    if obj.animation_data is None or obj.animation_data.action is None:
        return {}
    return {
        (curve.data_path, curve.array_index): curve
        for curve in animation.action_fcurves(obj.animation_data.action, obj)
    }


def _held(curve, frames: np.ndarray) -> np.ndarray:
    """A curve's value at each frame as its last key at or before it (0 before the first)."""
    if curve is None or len(curve.keyframe_points) == 0:
        return np.zeros(len(frames))
    co = np.empty(2 * len(curve.keyframe_points))
    curve.keyframe_points.foreach_get("co", co)
    at = np.searchsorted(co[0::2], frames + 1e-6, side="right") - 1
    return np.where(at >= 0, co[1::2][np.maximum(at, 0)], 0.0)


def _sampled(curve, frames: np.ndarray, default: float) -> np.ndarray:
    if curve is None or len(curve.keyframe_points) == 0:
        return np.full(len(frames), float(default))
    co = np.empty(2 * len(curve.keyframe_points))
    curve.keyframe_points.foreach_get("co", co)
    return np.interp(frames, co[0::2], co[1::2])


def export_track(armature: bpy.types.Object, directory: Path, file_format: str) -> Path:
    """Write one track (its armature, and for FBX its body) to ``directory`` as
    ``track_NNN.fbx`` / ``.bvh`` through Blender's own exporters. Returns the file."""
    track_id = int(armature[TRACK_ID_PROP])
    suffix = file_format.lower()
    path = Path(directory) / f"track_{track_id:03d}.{suffix}"
    frames = keyed_frames(armature)
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    previous_selection = [obj for obj in view_layer.objects if obj.select_get()]
    try:
        for obj in previous_selection:
            obj.select_set(False)
        armature.select_set(True)
        view_layer.objects.active = armature
        if file_format == "FBX":
            for child in armature.children:
                if child.name in view_layer.objects:
                    child.select_set(True)
            result = bpy.ops.export_scene.fbx(
                filepath=str(path),
                use_selection=True,
                object_types={"ARMATURE", "MESH"},
                add_leaf_bones=False,
                bake_anim=True,
                bake_anim_use_all_actions=False,
                bake_anim_use_nla_strips=False,
                # Every frame exactly: the default simplification drops keys.
                bake_anim_simplify_factor=0.0,
            )
        else:
            result = bpy.ops.export_anim.bvh(
                filepath=str(path),
                frame_start=int(frames[0]),
                frame_end=int(frames[-1]),
                rotate_mode="NATIVE",
            )
    finally:
        for obj in view_layer.objects:
            obj.select_set(obj in previous_selection)
        view_layer.objects.active = previous_active
    if "FINISHED" not in result or not path.is_file():
        raise RetargetError(f"Blender's {file_format} exporter did not write {path}.")
    return path
