"""Sidebar panels (tab "RAM") in the 3D View and the Sequencer."""

# Blender's class naming (RAM_OT_x) and its set-valued class attributes are its API.

import bpy

from .importer import TRACK_ID_PROP, imported_collections
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
        box = layout.box()
        box.label(text=collection.name, icon="OUTLINER_COLLECTION")
        for obj in collection.objects:
            if TRACK_ID_PROP in obj:
                row = box.row()
                row.prop(obj, "color", text="")
                row.label(text=obj.name)


class VIEW3D_PT_ram_import(bpy.types.Panel):
    bl_label = "Motion from Video"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "RAM"

    def draw(self, context):
        draw_import_panel(self.layout, context)


class SEQUENCER_PT_ram_import(bpy.types.Panel):
    bl_label = "Motion from Video"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "RAM"

    def draw(self, context):
        draw_import_panel(self.layout, context)


classes = (VIEW3D_PT_ram_import, SEQUENCER_PT_ram_import)
register, unregister = bpy.utils.register_classes_factory(classes)
