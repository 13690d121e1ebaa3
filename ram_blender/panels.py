"""Sidebar panels (tab "RAM") in the 3D View and the Sequencer."""

# Blender's class naming (RAM_OT_x) and its set-valued class attributes are its API.

import bpy

from .editing import log_out_of_sync
from .importer import imported_collections
from .preference_values import preferences
from .video_import import RUNNING_IMPORT


def draw_import_panel(layout, context) -> None:
    settings = context.scene.ram
    layout.prop(settings, "video_filepath", text="")
    prefs = preferences(context)
    row = layout.row()
    row.prop(prefs, "backend", text="")
    row.prop(prefs, "device", text="")
    layout.prop(settings, "use_frame_range")
    if settings.use_frame_range:
        row = layout.row(align=True)
        row.prop(settings, "frame_first")
        row.prop(settings, "frame_stop")
    running = RUNNING_IMPORT.current
    if running is None:
        layout.operator("ram.import_video", icon="ARMATURE_DATA")
        layout.operator("ram.import_result", icon="FILE_FOLDER")
        if RUNNING_IMPORT.last_message:
            layout.label(text=RUNNING_IMPORT.last_message)
    else:
        layout.progress(factor=running.job.fraction, type="BAR", text=running.status_line())
        layout.operator("ram.cancel_import", icon="CANCEL")
    for collection in imported_collections(context.scene):
        draw_track_list(layout.box(), collection)


def draw_retarget_panel(layout, context) -> None:
    settings = context.scene.ram
    layout.prop(settings, "retarget_source")
    layout.prop(settings, "retarget_target")
    row = layout.row(align=True)
    row.operator("ram.retarget", icon="ARMATURE_DATA")
    dry = row.operator("ram.retarget", text="Dry Run", icon="VIEWZOOM")
    dry.dry_run = True
    target = settings.retarget_target
    if target is not None:
        box = layout.box()
        box.label(text="Custom bone map (preset Custom)")
        box.template_list(
            "RAM_UL_bone_map",
            target.name,
            target,
            "ram_bone_map",
            target,
            "ram_bone_map_index",
            rows=3,
        )
        row = box.row(align=True)
        row.operator("ram.bone_map_fill", icon="IMPORT")
        row.operator("ram.bone_map_load", text="", icon="FILEBROWSER")
        row.operator("ram.bone_map_save", text="", icon="FILE_TICK")
    row = layout.row(align=True)
    row.operator("ram.export_tracks", text="Export FBX", icon="EXPORT").file_format = "FBX"
    row.operator("ram.export_tracks", text="Export BVH", icon="EXPORT").file_format = "BVH"


class RAM_UL_bone_map(bpy.types.UIList):
    """One row per mapped bone: the target bone and the SMPL joint that drives it."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname):
        row = layout.row(align=True)
        row.prop(item, "bone", text="", emboss=False)
        row.prop(item, "joint", text="")


class RAM_UL_tracks(bpy.types.UIList):
    """One row per track: colour, ID, frame range, share occluded, mask toggle."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname):
        row = layout.row(align=True)
        row.prop(
            item,
            "selected",
            text="",
            emboss=False,
            icon="CHECKBOX_HLT" if item.selected else "CHECKBOX_DEHLT",
        )
        swatch = row.row()
        swatch.ui_units_x = 1.2
        swatch.prop(item, "color", text="")
        row.label(text=f"ID {item.track_id}")
        row.label(text=f"{item.frame_first}–{item.frame_last}")
        row.label(text=f"{item.occluded_share:.0%} occl.")
        if item.needs_combine:
            row.label(text="", icon="FILE_REFRESH")
        row.prop(
            item,
            "show_mask",
            text="",
            emboss=False,
            icon="HIDE_OFF" if item.show_mask else "HIDE_ON",
        )


def draw_track_list(layout, collection) -> None:
    state = collection.ram
    header = layout.row()
    header.label(text=collection.name, icon="OUTLINER_COLLECTION")
    header.prop(state, "show_masks", text="", icon="OVERLAY")
    layout.template_list(
        "RAM_UL_tracks", collection.name, state, "tracks", state, "active_track", rows=4
    )
    problem = log_out_of_sync(collection)
    if problem:
        layout.label(text=problem, icon="ERROR")
    grid = layout.grid_flow(columns=2, align=True)
    grid.operator("ram.swap_ids", icon="UV_SYNC_SELECT")
    grid.operator("ram.merge_tracks", icon="AUTOMERGE_ON")
    grid.operator("ram.split_track", icon="MOD_EDGESPLIT")
    grid.operator("ram.delete_track", icon="TRASH")
    row = layout.row(align=True)
    occluded = row.operator("ram.mark_occluded", text="Occluded", icon="HIDE_ON")
    occluded.occluded = True
    trusted = row.operator("ram.mark_occluded", text="Trusted", icon="HIDE_OFF")
    trusted.occluded = False
    layout.operator("ram.rerun_combiner", icon="FILE_REFRESH")


class VIEW3D_PT_ram_import(bpy.types.Panel):
    bl_label = "Motion from Video"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "RAM"

    def draw(self, context):
        draw_import_panel(self.layout, context)


class VIEW3D_PT_ram_retarget(bpy.types.Panel):
    bl_label = "Retarget and Export"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "RAM"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        draw_retarget_panel(self.layout, context)


class SEQUENCER_PT_ram_import(bpy.types.Panel):
    bl_label = "Motion from Video"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "RAM"

    def draw(self, context):
        draw_import_panel(self.layout, context)


classes = (
    RAM_UL_tracks,
    RAM_UL_bone_map,
    VIEW3D_PT_ram_import,
    VIEW3D_PT_ram_retarget,
    SEQUENCER_PT_ram_import,
)
register, unregister = bpy.utils.register_classes_factory(classes)
