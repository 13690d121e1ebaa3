"""Add-on preferences: where the pipeline runs and with what."""

# Blender's class naming (RAM_OT_x) and its set-valued class attributes are its API.

import bpy

from .jobs import find_pipeline_python
from .operators_environment import draw_install
from .operators_weights import draw_models
from .preference_values import extension_env_folder, preferences

_BACKEND_ITEMS = (
    ("auto", "Auto", "Full where its weights are present, else lite"),
    ("full", "Full", "SAM2 + T-HMR on downloaded weights"),
    ("lite", "Lite", "Offline models shipped with the pipeline (CPU friendly)"),
)
_DEVICE_ITEMS = (
    ("auto", "Auto", "The GPU when there is one, else the CPU"),
    ("cpu", "CPU", "Always the CPU"),
    ("cuda", "CUDA", "An NVIDIA GPU"),
)


class RAM_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    pipeline_python: bpy.props.StringProperty(
        name="Pipeline Python",
        description="Python interpreter that has ram_core installed (empty: find one)",
        subtype="FILE_PATH",
    )
    weights_dir: bpy.props.StringProperty(
        name="Weights Folder",
        description="Where the full backend's model weights are kept "
        "(empty: the weights manager's default, ~/.cache/ram/weights on Linux)",
        subtype="DIR_PATH",
    )
    smpl_model: bpy.props.StringProperty(
        name="SMPL Model",
        description="Your licensed SMPL model file, .pkl from smpl.is.tue.mpg.de (optional: "
        "imports use its exact skeleton and body; the built-in ones otherwise)",
        subtype="FILE_PATH",
    )
    backend: bpy.props.EnumProperty(name="Backend", items=_BACKEND_ITEMS, default="auto")
    device: bpy.props.EnumProperty(name="Device", items=_DEVICE_ITEMS, default="auto")

    def draw(self, context):
        draw_preferences(self, self.layout, context)


def draw_preferences(prefs, layout, context) -> None:
    """The preferences' layout (a plain function, so tests can draw it)."""
    row = layout.row(align=True)
    row.prop(prefs, "pipeline_python")
    row.operator(RAM_OT_detect_pipeline_python.bl_idname, text="", icon="VIEWZOOM")
    draw_install(layout)
    layout.prop(prefs, "weights_dir")
    draw_models(layout, context)
    layout.prop(prefs, "smpl_model")
    row = layout.row()
    row.prop(prefs, "backend")
    row.prop(prefs, "device")


class RAM_OT_detect_pipeline_python(bpy.types.Operator):
    """Find a Python that has ram_core installed and remember it"""

    bl_idname = "ram.detect_pipeline_python"
    bl_label = "Find Pipeline Python"
    bl_options = {"INTERNAL"}

    def execute(self, context):
        found = find_pipeline_python(extension_env_folder())
        if not found:
            self.report({"ERROR"}, "No Python with ram_core found; set the path by hand")
            return {"CANCELLED"}
        preferences(context).pipeline_python = found
        self.report({"INFO"}, f"Pipeline Python: {found}")
        return {"FINISHED"}


classes = (RAM_OT_detect_pipeline_python, RAM_AddonPreferences)
register, unregister = bpy.utils.register_classes_factory(classes)
