"""Build a planned import in the scene: collection, camera, one keyframed armature per track.

The plan (``results.load_import_plan``) and the tracks' bodies (the built-in one, or the
user's SMPL file shaped by each track's betas) are read and checked first, so a bad result
folder or SMPL file raises before the scene is touched. A re-import of the same result
replaces its collection only after the new one is complete.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Euler, Matrix

from ram_core.body.skeleton import JOINT_NAMES
from ram_core.io.palette import track_color

from . import animation, sequencer
from .body_mesh import TrackBody, builtin_track_body, smpl_track_body, track_shape
from .results import (
    CAMERA_ROTATION_EULER,
    FRAME_OFFSET,
    ImportPlan,
    TrackPlan,
    load_import_plan,
    scene_fps,
)
from .skeleton import (
    ArmaturePlan,
    body_translation,
    continuous_quaternions,
    plan_armature,
    pose_bone_keys,
)
from .track_edits import track_spans

RESULT_PATH_PROP = "ram_result_path"
TRACK_ID_PROP = "ram_track_id"
SOURCE_VIDEO_PROP = "ram_source_video"
BODY_MODEL_PROP = "ram_body_model"
# Where the armature's world placement came from ("manifest", "estimated at import…").
WORLD_PROP = "ram_world"
# Keyed custom properties on each armature: what the Combiner saw and did, per frame.
SIGNAL_PROPS = {
    "ram_reliability": "How much the video observation was trusted (0..1)",
    "ram_gate": "The Combiner's gate: 1 follows the observation, 0 the prediction",
    "ram_occluded": "1 where the person is marked occluded",
    "ram_contact_left": "1 where the left foot is planted (a retarget keeps it planted)",
    "ram_contact_right": "1 where the right foot is planted (a retarget keeps it planted)",
}
# The flags among them: held constant between keys.
STEP_SIGNALS = {"ram_occluded", "ram_contact_left", "ram_contact_right"}
# Digests of what an armature's keys were written from (``sync`` rewrites only changes).
MOTION_DIGEST_PROP = "ram_motion_digest"
SIGNAL_DIGEST_PROP = "ram_signal_digest"
SIGNAL_GROUP = "RAM"


@dataclass(frozen=True)
class ImportReport:
    """What one import made: the collection, its camera and armatures, and warnings."""

    collection: bpy.types.Collection
    camera: bpy.types.Object
    armatures: tuple
    warnings: tuple[str, ...]


def import_result(
    filepath: str | Path,
    scene: bpy.types.Scene | None = None,
    smpl_model: str | Path | None = None,
) -> ImportReport:
    """Import a ``NAME.ram`` result folder (or a file inside it) into ``scene``.

    ``smpl_model``: the user's SMPL file for the rest skeletons and bodies (None or '': the
    built-in ones). Raises, with the scene untouched, ram_core's ResultFormatError for a
    folder it cannot read, MissingModelError / BadInputError for a missing or broken SMPL
    file.
    """
    path = Path(filepath)
    if path.is_file():
        path = path.parent
    plan = load_import_plan(path)
    bodies = plan_track_bodies(plan, smpl_model)
    return build_import(plan, scene or bpy.context.scene, bodies)


def plan_track_bodies(plan: ImportPlan, smpl_model: str | Path | None) -> tuple[TrackBody, ...]:
    """Each track's rest skeleton and body: from the SMPL file for the track's mean betas, or
    the built-in ones. Raises before anything is built when the SMPL file is unusable."""
    if not smpl_model:
        return tuple(builtin_track_body() for _ in plan.tracks)
    return tuple(smpl_track_body(smpl_model, track_shape(track.betas)) for track in plan.tracks)


def imported_collections(scene: bpy.types.Scene, result_path: Path | None = None) -> list:
    """Collections linked in ``scene`` that hold an import (of ``result_path`` if given)."""
    found = []
    for collection in scene.collection.children_recursive:
        stored = collection.get(RESULT_PATH_PROP)
        if stored is None:
            continue
        if result_path is None or Path(stored) == Path(result_path):
            found.append(collection)
    return found


def build_import(
    plan: ImportPlan, scene: bpy.types.Scene, bodies: tuple[TrackBody, ...] | None = None
) -> ImportReport:
    """Create the import's data in ``scene``; on any failure remove what was made.

    ``bodies``: one per track (default: the built-in body for every track).
    """
    if bodies is None:
        bodies = plan_track_bodies(plan, None)
    if len(bodies) != len(plan.tracks):
        raise ValueError(f"{len(plan.tracks)} tracks but {len(bodies)} bodies")
    warnings: list[str] = []
    collection = bpy.data.collections.new(plan.collection_name)
    collection[RESULT_PATH_PROP] = str(plan.result_path)
    scene.collection.children.link(collection)
    try:
        camera = _build_camera(plan, collection, warnings)
        armatures = _build_armatures(plan, collection, bodies)
        _build_bodies(plan, armatures, collection, bodies)
        strip = sequencer.add_video_strip(
            scene,
            plan.video_path,
            plan.result_path,
            plan.video_rotation_deg,
            (plan.camera.width_px, plan.camera.height_px),
        )
    except BaseException:
        remove_import(collection)
        raise
    for old in imported_collections(scene, plan.result_path):
        if old != collection:
            remove_import(old)
    sequencer.remove_video_strips(scene, plan.result_path, keep=strip)
    # The old import's names are free now; take the planned ones.
    collection.name = plan.collection_name
    for armature, track in zip(armatures, plan.tracks, strict=True):
        armature.name = armature.data.name = track.name
        for child in armature.children:
            child.name = body_name(track.name)
    _set_scene(plan, scene, camera)
    set_import_state(collection, plan, armatures)
    return ImportReport(collection, camera, tuple(armatures), tuple(warnings))


def body_name(track_name: str) -> str:
    """The name of a track's body mesh object."""
    return f"{track_name}_body"


def remove_import(collection: bpy.types.Collection) -> None:
    """Delete an import's collection with its objects, their data, materials and actions,
    and its video strip in the scenes that show it."""
    result_path = collection.get(RESULT_PATH_PROP)
    if result_path is not None and not any(
        other != collection and other.get(RESULT_PATH_PROP) == result_path
        for other in bpy.data.collections
    ):
        for scene in bpy.data.scenes:
            sequencer.remove_video_strips(scene, Path(result_path))
    for obj in list(collection.all_objects):
        remove_track_object(obj)
    bpy.data.collections.remove(collection)


def remove_track_object(obj: bpy.types.Object) -> None:
    """Delete one object of an import with its material, action and data once unused."""
    data = obj.data
    action = obj.animation_data.action if obj.animation_data else None
    materials = [slot.material for slot in obj.material_slots if slot.material is not None]
    bpy.data.objects.remove(obj)
    for material in materials:
        if material.users == 0:
            bpy.data.materials.remove(material)
    if action is not None and action.users == 0:
        bpy.data.actions.remove(action)
    if data is not None and data.users == 0:
        if isinstance(data, bpy.types.Camera):
            clips = [bg.clip for bg in data.background_images if bg.clip is not None]
            bpy.data.cameras.remove(data)
            for clip in clips:
                if clip.users == 0:
                    bpy.data.movieclips.remove(clip)
        elif isinstance(data, bpy.types.Armature):
            bpy.data.armatures.remove(data)
        elif isinstance(data, bpy.types.Mesh):
            bpy.data.meshes.remove(data)


def _key_turning_camera(camera: bpy.types.Object, plan: ImportPlan, turn: Matrix) -> None:
    """A turning camera's rotation keyed on every frame it was followed, so the footage stays
    lined up through it while the people stand still in the world."""
    frames, per_frame = plan.camera_keys
    camera.rotation_mode = "QUATERNION"
    quaternions = np.array(
        [Matrix((matrix @ np.array(turn)).tolist()).to_quaternion() for matrix in per_frame]
    )
    quaternions = continuous_quaternions(quaternions)
    action = animation.action_of(camera, f"{camera.name}_turn")
    animation.write_channels(
        action, camera, "rotation_quaternion", frames, quaternions, "RAM camera"
    )


def _clip_upright(clip, rotation_deg: int, upright: tuple[int, int]) -> bool:
    """Whether this Blender turned a movie clip stored turned upright."""
    if rotation_deg % 180:
        return tuple(clip.size) == upright
    return bpy.app.version >= (5, 0, 0)


def _build_camera(plan: ImportPlan, collection, warnings: list[str]) -> bpy.types.Object:
    settings = plan.camera
    data = bpy.data.cameras.new(f"{plan.collection_name} camera")
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = settings.sensor_width_mm
    data.lens = settings.lens_mm
    data.shift_x = settings.shift_x
    data.shift_y = settings.shift_y
    data.clip_start = 0.01
    data.clip_end = 1000.0
    camera = bpy.data.objects.new(f"{plan.collection_name} camera", data)
    camera.rotation_mode = "XYZ"
    turn = Euler(CAMERA_ROTATION_EULER, "XYZ").to_matrix().to_4x4()
    camera.matrix_world = Matrix(plan.camera_to_world.tolist()) @ turn
    camera[RESULT_PATH_PROP] = str(plan.result_path)
    collection.objects.link(camera)
    if plan.camera_keys is not None:
        _key_turning_camera(camera, plan, turn)
    if plan.video_path is None or not plan.video_path.is_file():
        warnings.append(f"The source video {plan.video_path} is missing; no camera background.")
        return camera
    camera[SOURCE_VIDEO_PROP] = str(plan.video_path)
    clip = bpy.data.movieclips.load(str(plan.video_path), check_existing=True)
    clip.frame_start = FRAME_OFFSET
    upright = (settings.width_px, settings.height_px)
    if plan.video_rotation_deg and not _clip_upright(clip, plan.video_rotation_deg, upright):
        if clip.users == 0:
            bpy.data.movieclips.remove(clip)
        warnings.append(
            f"This Blender shows {plan.video_path.name} as stored, turned "
            f"{plan.video_rotation_deg} degrees from upright: no camera background (the "
            "Sequencer strip is turned upright). Blender 5 shows it upright."
        )
        return camera
    data.show_background_images = True
    background = data.background_images.new()
    background.source = "MOVIE_CLIP"
    background.clip = clip
    background.alpha = 1.0
    return camera


def _build_armatures(plan: ImportPlan, collection, bodies: tuple[TrackBody, ...]) -> list:
    """One armature per track; tracks with the same body share one rest skeleton's layout."""
    rest_skeletons: dict[tuple, bpy.types.Armature] = {}  # body key -> first armature data
    armatures = []
    for track, body in zip(plan.tracks, bodies, strict=True):
        if body.key in rest_skeletons:
            data = rest_skeletons[body.key].copy()
        else:
            data = _armature_data(plan_armature(body.rest_joints), collection)
            rest_skeletons[body.key] = data
        obj = _track_object(plan, track, data, collection)
        obj[BODY_MODEL_PROP] = body.source
        armatures.append(obj)
    # Pose channels exist only once the depsgraph has seen the objects.
    bpy.context.view_layer.update()
    for obj, track in zip(armatures, plan.tracks, strict=True):
        _style_pose_bones(obj, track.color)
        write_track_keys(obj, track, plan.solved_rest_pelvis)
    return armatures


def _armature_data(plan: ArmaturePlan, collection) -> bpy.types.Armature:
    """The rest skeleton, made once in edit mode through a temporary object."""
    data = bpy.data.armatures.new("RAM_SMPL24")
    holder = bpy.data.objects.new("RAM_SMPL24 (building)", data)
    collection.objects.link(holder)
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    previous_mode = bpy.context.mode
    try:
        if previous_mode != "OBJECT" and previous_active is not None:
            bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = holder
        bpy.ops.object.mode_set(mode="EDIT")
        edit_bones = []
        for j, name in enumerate(plan.names):
            bone = data.edit_bones.new(name)
            bone.head = plan.heads[j]
            bone.tail = plan.tails[j]
            bone.roll = float(plan.rolls[j])
            bone.use_connect = False
            if plan.parents[j] >= 0:
                bone.parent = edit_bones[plan.parents[j]]
            edit_bones.append(bone)
        bpy.ops.object.mode_set(mode="OBJECT")
    finally:
        view_layer.objects.active = previous_active
        bpy.data.objects.remove(holder)
    data.display_type = "OCTAHEDRAL"
    return data


def _track_object(plan: ImportPlan, track: TrackPlan, data, collection):
    obj = bpy.data.objects.new(track.name, data)
    data.name = track.name
    obj[TRACK_ID_PROP] = track.track_id
    obj[SOURCE_VIDEO_PROP] = str(plan.video_path or "")
    obj[RESULT_PATH_PROP] = str(plan.result_path)
    obj.color = (*track.color, 1.0)
    obj.show_in_front = True
    # The armature's space is the camera frame; the world frame stands it on the floor.
    obj.matrix_world = Matrix(plan.camera_to_world.tolist())
    obj[WORLD_PROP] = plan.world_source
    collection.objects.link(obj)
    return obj


def _build_bodies(
    plan: ImportPlan, armatures: list, collection, bodies: tuple[TrackBody, ...]
) -> list:
    """One skinned body per armature; tracks with the same body share one mesh.

    The armature's space is SMPL's rest space and its bones sit on the rest joints the body
    mesh was made for, so the body is parented with an identity transform.
    """
    meshes: dict[tuple, bpy.types.Mesh] = {}
    objects = []
    for armature, track, body in zip(armatures, plan.tracks, bodies, strict=True):
        first_with_mesh = body.key not in meshes
        if first_with_mesh:
            meshes[body.key] = _body_mesh_data(body.mesh, f"{plan.collection_name} body")
        obj = _body_object(plan, armature, track, meshes[body.key], collection, body.source)
        if first_with_mesh:
            # Vertex group names live on the mesh: one object's groups serve all sharing it.
            _fill_vertex_groups(obj, body.mesh)
        objects.append(obj)
    return objects


def _body_object(plan: ImportPlan, armature, track: TrackPlan, mesh, collection, source: str):
    obj = bpy.data.objects.new(body_name(track.name), mesh)
    collection.objects.link(obj)
    obj.parent = armature
    obj.matrix_parent_inverse = Matrix.Identity(4)
    obj.matrix_basis = Matrix.Identity(4)
    obj.color = (*track.color, 1.0)
    obj[TRACK_ID_PROP] = track.track_id
    obj[RESULT_PATH_PROP] = str(plan.result_path)
    obj[BODY_MODEL_PROP] = source
    modifier = obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature
    modifier.use_vertex_groups = True
    modifier.use_bone_envelopes = False
    # Each body gets its own material in an object-linked slot: the mesh stays shared.
    material = bpy.data.materials.new(body_name(track.name))
    material.diffuse_color = (*track.color, 1.0)
    obj.material_slots[0].link = "OBJECT"
    obj.material_slots[0].material = material
    return obj


def track_body(armature: bpy.types.Object):
    """The body mesh object an import parented to ``armature`` (None if the artist removed
    it)."""
    for child in armature.children:
        if child.type == "MESH" and child.get(TRACK_ID_PROP) == armature.get(TRACK_ID_PROP):
            return child
    return None


def add_split_track(
    plan: ImportPlan, track: TrackPlan, source: bpy.types.Object, collection
) -> bpy.types.Object:
    """A new armature for a track split off ``source``'s: the same rest skeleton and body
    (it is the same person), its own name, colour, material and keys."""
    data = source.data.copy()
    obj = _track_object(plan, track, data, collection)
    # Where the import put its people (a re-estimate from the edited tracks could differ).
    obj.matrix_world = source.matrix_world.copy()
    obj[WORLD_PROP] = source.get(WORLD_PROP, "none")
    obj[BODY_MODEL_PROP] = source.get(BODY_MODEL_PROP, "")
    bpy.context.view_layer.update()
    _style_pose_bones(obj, track.color)
    write_track_keys(obj, track, plan.solved_rest_pelvis)
    body = track_body(source)
    if body is not None:
        _body_object(plan, obj, track, body.data, collection, body.get(BODY_MODEL_PROP, ""))
    return obj


def _body_mesh_data(body, name: str) -> bpy.types.Mesh:
    mesh = bpy.data.meshes.new(name)
    face_count = len(body.faces)
    mesh.vertices.add(len(body.vertices))
    mesh.vertices.foreach_set("co", body.vertices.ravel())
    mesh.loops.add(3 * face_count)
    mesh.loops.foreach_set("vertex_index", body.faces.ravel())
    mesh.polygons.add(face_count)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * face_count, 3, dtype=np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(face_count, dtype=bool))
    mesh.update(calc_edges=True)
    # One slot, linked per object to that track's material.
    mesh.materials.append(None)
    return mesh


def _fill_vertex_groups(obj, body) -> None:
    groups = body.joint_groups()
    for j, name in enumerate(body.joint_names):
        group = obj.vertex_groups.new(name=name)
        for weight, vertices in groups.get(j, ()):
            group.add(vertices.tolist(), weight, "REPLACE")


def _style_pose_bones(obj, color: tuple[float, float, float]) -> None:
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
        pose_bone.color.palette = "CUSTOM"
        pose_bone.color.custom.normal = color
        pose_bone.color.custom.select = tuple(min(1.0, c + 0.3) for c in color)
        pose_bone.color.custom.active = (1.0, 1.0, 1.0)


def write_track_keys(
    obj: bpy.types.Object, track: TrackPlan, solved_rest_pelvis: np.ndarray | None
) -> None:
    """(Re)write a track's pose keys and keyed signals on its armature, in place.

    Only the armature's own channels are rewritten when they changed (the digests say):
    the artist's other keys, constraints, children and materials stay as they are.
    """
    motion = track_digest(track.frames, track.global_orient, track.body_pose, track.transl)
    if obj.get(MOTION_DIGEST_PROP) != motion:
        bone_rest = np.array(
            [np.array(obj.data.bones[name].matrix_local.to_3x3()) for name in JOINT_NAMES]
        )
        rest_pelvis = np.array(obj.data.bones[JOINT_NAMES[0]].head_local)
        transl = body_translation(track.transl, solved_rest_pelvis, rest_pelvis)
        quaternions, root_locations = pose_bone_keys(
            track.global_orient, track.body_pose, transl, bone_rest
        )
        action = animation.action_of(obj, f"{track.name}_motion")
        root = JOINT_NAMES[0]
        animation.write_channels(
            action, obj, f'pose.bones["{root}"].location', track.frames, root_locations, root
        )
        for j, name in enumerate(JOINT_NAMES):
            path = f'pose.bones["{name}"].rotation_quaternion'
            animation.write_channels(action, obj, path, track.frames, quaternions[:, j], name)
        obj[MOTION_DIGEST_PROP] = motion
    signals = _track_signals(track)
    digest = track_digest(track.frames, *signals.values())
    if obj.get(SIGNAL_DIGEST_PROP) != digest:
        action = animation.action_of(obj, f"{track.name}_motion")
        for name, values in signals.items():
            if name not in obj:
                obj[name] = float(values[0]) if len(values) else 0.0
                obj.id_properties_ui(name).update(min=0.0, max=1.0, description=SIGNAL_PROPS[name])
            curve = animation.ensure_fcurve(action, obj, f'["{name}"]', 0, SIGNAL_GROUP)
            step = name in STEP_SIGNALS
            animation.write_keys(curve, track.frames, values, constant=step)
        obj[SIGNAL_DIGEST_PROP] = digest


def _track_signals(track: TrackPlan) -> dict[str, np.ndarray]:
    count = len(track.frames)
    ones, zeros = np.ones(count), np.zeros(count)
    signals = {
        "ram_reliability": ones if track.reliability is None else track.reliability,
        "ram_gate": ones if track.gate is None else track.gate,
        "ram_occluded": zeros if track.occluded is None else track.occluded.astype(float),
    }
    contact = (
        np.zeros((count, 2)) if track.foot_contact is None else track.foot_contact.astype(float)
    )
    signals["ram_contact_left"], signals["ram_contact_right"] = contact[:, 0], contact[:, 1]
    return signals


def track_digest(*arrays: np.ndarray) -> str:
    """A short fingerprint of the float32 values keys are made from."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def set_import_state(collection, plan: ImportPlan, armatures) -> None:
    """Record on the collection the edit log the scene shows, and fill its track list."""
    state = collection.ram
    state.edits_json = json.dumps(list(plan.edits))
    refresh_track_list(collection, plan.tracks_table, armatures, plan.unfused_tracks)


def refresh_track_list(
    collection,
    tracks: dict[str, np.ndarray],
    armatures,
    unfused: frozenset[int] = frozenset(),
) -> None:
    """The track list (``collection.ram.tracks``) from an edited tracks table, keeping each
    row's visibility and selection by track ID. ``unfused``: tracks edited since the
    Combiner last ran on them."""
    state = collection.ram
    kept = {item.track_id: (item.show_mask, item.selected) for item in state.tracks}
    by_id = {obj[TRACK_ID_PROP]: obj for obj in armatures}
    active_id = (
        state.tracks[state.active_track].track_id
        if 0 <= state.active_track < len(state.tracks)
        else None
    )
    state.tracks.clear()
    for span in track_spans(tracks).values():
        item = state.tracks.add()
        item.track_id = span.track_id
        item.armature = by_id.get(span.track_id)
        item.color = track_color(span.track_id)
        item.frame_first = span.frame_first
        item.frame_last = span.frame_last
        item.occluded_share = span.occluded_share
        item.show_mask, item.selected = kept.get(span.track_id, (True, False))
        item.needs_combine = span.track_id in unfused
    ids = [item.track_id for item in state.tracks]
    state.active_track = ids.index(active_id) if active_id in ids else min(0, len(ids) - 1)


def _set_scene(plan: ImportPlan, scene, camera) -> None:
    fps, fps_base = scene_fps(plan.fps)
    scene.render.fps = fps
    scene.render.fps_base = fps_base
    scene.frame_start = plan.frame_start
    scene.frame_end = plan.frame_end
    scene.render.resolution_x = plan.camera.width_px
    scene.render.resolution_y = plan.camera.height_px
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = plan.camera.pixel_aspect_x
    scene.render.pixel_aspect_y = plan.camera.pixel_aspect_y
    scene.camera = camera
