"""The scene's RAM settings: ``Scene.ram`` (saved in the .blend)."""

# Blender's class naming (RAM_OT_x) and its set-valued class attributes are its API.

import bpy


class RAM_PG_settings(bpy.types.PropertyGroup):
    video_filepath: bpy.props.StringProperty(
        name="Video",
        description="The video to recover motion from",
        subtype="FILE_PATH",
    )
    use_frame_range: bpy.props.BoolProperty(
        name="Frame Range",
        description="Run the pipeline on part of the video only",
        default=False,
    )
    frame_first: bpy.props.IntProperty(
        name="First",
        description="First video frame to process (0 is the video's first frame)",
        default=0,
        min=0,
    )
    frame_stop: bpy.props.IntProperty(
        name="Stop Before",
        description="Video frame to stop before",
        default=100,
        min=1,
    )


classes = (RAM_PG_settings,)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    bpy.types.Scene.ram = bpy.props.PointerProperty(type=RAM_PG_settings)


def unregister() -> None:
    del bpy.types.Scene.ram
    _unregister_classes()
