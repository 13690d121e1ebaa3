"""Operators: retarget a track onto the artist's rig, edit and save bone maps, export tracks.

Their ids and arguments are an interface. ``source`` and ``target`` are object names; left
empty they come from the RAM panel's choices (``Scene.ram.retarget_source`` /
``retarget_target``).
"""

# Blender's class naming (RAM_OT_x) and its set-valued class attributes are its API.

from pathlib import Path

import bpy

from ram_core.body.rig_presets import PRESETS, read_bone_map, write_bone_map
from ram_core.body.skeleton import JOINT_NAMES
from ram_core.errors import RamError

from .importer import TRACK_ID_PROP
from .retargeting import RetargetError, choose_map, export_track, retarget_track

PRESET_ITEMS = [
    ("AUTO", "Auto", "Pick the preset from the target's bone names"),
    *((name, name.replace("_", " ").title(), f"The {name} bone names") for name in PRESETS),
    ("CUSTOM", "Custom", "The map edited on the target armature (RAM panel)"),
]
JOINT_ITEMS = [(name, name, f"SMPL joint {name}") for name in JOINT_NAMES]


def _object(name: str, fallback) -> bpy.types.Object | None:
    return bpy.data.objects.get(name) if name else fallback


class RAM_PG_bone_pair(bpy.types.PropertyGroup):
    """One entry of a custom bone map: a target bone driven by an SMPL joint."""

    bone: bpy.props.StringProperty(name="Bone", description="The target rig's bone")
    joint: bpy.props.EnumProperty(name="Joint", items=JOINT_ITEMS, description="SMPL joint")


class RAM_OT_retarget(bpy.types.Operator):
    """Bake a track's motion onto your armature as a new action (rest-pose aware)"""

    bl_idname = "ram.retarget"
    bl_label = "Retarget Track"
    bl_options = {"REGISTER", "UNDO"}

    source: bpy.props.StringProperty(name="Source", description="The track's armature")
    target: bpy.props.StringProperty(name="Target", description="Your armature")
    preset: bpy.props.EnumProperty(name="Preset", items=PRESET_ITEMS, default="AUTO")
    map_file: bpy.props.StringProperty(
        name="Map File", description="A saved bone map (wins over the preset)", subtype="FILE_PATH"
    )
    dry_run: bpy.props.BoolProperty(
        name="Dry Run", description="Only report the map: what is mapped and what is not"
    )

    def execute(self, context):
        settings = context.scene.ram
        source = _object(self.source, settings.retarget_source)
        target = _object(self.target, settings.retarget_target)
        try:
            report = retarget_track(source, target, self.preset, self.map_file, self.dry_run)
        except (RetargetError, RamError, OSError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        unmapped = ", ".join(report.unmapped_joints) or "none"
        if self.dry_run:
            self.report(
                {"INFO"},
                f"{report.preset}: {len(report.mapped)} bones mapped; SMPL joints unmapped: "
                f"{unmapped}; {len(report.unmapped_bones)} target bones unmapped: "
                + ", ".join(report.unmapped_bones[:40]),
            )
        else:
            self.report(
                {"INFO"},
                f"{source.name} baked onto {target.name} as {report.action.name} "
                f"({report.preset}, frames {report.frames[0]}-{report.frames[1]}, "
                f"root scaled {report.scale:.2f}); SMPL joints unmapped: {unmapped}",
            )
        return {"FINISHED"}


class RAM_OT_bone_map_fill(bpy.types.Operator):
    """Fill the target's custom bone map from a preset, to edit it"""

    bl_idname = "ram.bone_map_fill"
    bl_label = "Fill Map from Preset"
    bl_options = {"REGISTER", "UNDO"}

    target: bpy.props.StringProperty(name="Target")
    preset: bpy.props.EnumProperty(name="Preset", items=PRESET_ITEMS[:-1], default="AUTO")

    def execute(self, context):
        target = _object(self.target, context.scene.ram.retarget_target)
        try:
            if target is None or target.type != "ARMATURE":
                raise RetargetError("Choose the target armature first.")
            used, mapping = choose_map(target, self.preset)
        except RetargetError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _set_custom_map(target, mapping)
        self.report({"INFO"}, f"{len(mapping)} bones from {used}")
        return {"FINISHED"}


class RAM_OT_bone_map_save(bpy.types.Operator):
    """Save the target's custom bone map as JSON"""

    bl_idname = "ram.bone_map_save"
    bl_label = "Save Bone Map"

    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    target: bpy.props.StringProperty(name="Target")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        target = _object(self.target, context.scene.ram.retarget_target)
        if target is None or target.type != "ARMATURE" or not self.filepath:
            self.report({"ERROR"}, "Choose the target armature and a file.")
            return {"CANCELLED"}
        mapping = {item.bone: item.joint for item in target.ram_bone_map if item.bone}
        try:
            write_bone_map(bpy.path.abspath(self.filepath), mapping)
        except OSError as exc:
            self.report({"ERROR"}, f"Cannot write {self.filepath}: {exc}")
            return {"CANCELLED"}
        return {"FINISHED"}


class RAM_OT_bone_map_load(bpy.types.Operator):
    """Load a bone map (JSON) into the target's custom map"""

    bl_idname = "ram.bone_map_load"
    bl_label = "Load Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    target: bpy.props.StringProperty(name="Target")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        target = _object(self.target, context.scene.ram.retarget_target)
        try:
            if target is None or target.type != "ARMATURE":
                raise ValueError("Choose the target armature first.")
            mapping = read_bone_map(bpy.path.abspath(self.filepath))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _set_custom_map(target, mapping)
        return {"FINISHED"}


class RAM_OT_export_tracks(bpy.types.Operator):
    """Write one FBX or BVH file per track (track_NNN) through Blender's exporters"""

    bl_idname = "ram.export_tracks"
    bl_label = "Export Tracks"

    directory: bpy.props.StringProperty(subtype="DIR_PATH")
    file_format: bpy.props.EnumProperty(
        name="Format",
        items=[
            ("FBX", "FBX", "Armature, body and animation"),
            ("BVH", "BVH", "Skeleton animation"),
        ],
        default="FBX",
    )
    tracks: bpy.props.EnumProperty(
        name="Tracks",
        items=[
            ("ALL", "All", "Every track of the scene's imports"),
            ("SELECTED", "Selected", "The selected track armatures"),
        ],
        default="ALL",
    )

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        folder = Path(bpy.path.abspath(self.directory)) if self.directory else None
        if folder is None or not folder.is_dir():
            self.report({"ERROR"}, f"No folder at {self.directory!r}.")
            return {"CANCELLED"}
        armatures = [
            obj
            for obj in context.view_layer.objects
            if obj.type == "ARMATURE"
            and TRACK_ID_PROP in obj
            and (self.tracks == "ALL" or obj.select_get())
        ]
        if not armatures:
            self.report({"ERROR"}, "No track armatures to export.")
            return {"CANCELLED"}
        written = []
        try:
            for armature in sorted(armatures, key=lambda obj: int(obj[TRACK_ID_PROP])):
                written.append(export_track(armature, folder, self.file_format))
        except (RetargetError, RuntimeError, OSError) as exc:
            self.report({"ERROR"}, f"Export stopped: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {len(written)} {self.file_format} file(s) to {folder}")
        return {"FINISHED"}


def _set_custom_map(target, mapping: dict[str, str]) -> None:
    target.ram_bone_map.clear()
    for bone, joint in mapping.items():
        item = target.ram_bone_map.add()
        item.bone, item.joint = bone, joint


classes = (
    RAM_PG_bone_pair,
    RAM_OT_retarget,
    RAM_OT_bone_map_fill,
    RAM_OT_bone_map_save,
    RAM_OT_bone_map_load,
    RAM_OT_export_tracks,
)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    bpy.types.Object.ram_bone_map = bpy.props.CollectionProperty(type=RAM_PG_bone_pair)
    bpy.types.Object.ram_bone_map_index = bpy.props.IntProperty()


def unregister() -> None:
    del bpy.types.Object.ram_bone_map_index
    del bpy.types.Object.ram_bone_map
    _unregister_classes()
