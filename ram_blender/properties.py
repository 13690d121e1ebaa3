"""The add-on's saved settings: ``Scene.ram`` and, on each import's collection,
``Collection.ram`` (its track list and the edit log the scene shows)."""

# Blender's class naming (RAM_OT_x) and its set-valued class attributes are its API.

import bpy


def _redraw_previews(_self, context) -> None:
    for window in context.window_manager.windows if context.window_manager else ():
        for area in window.screen.areas:
            if area.type in ("SEQUENCE_EDITOR", "VIEW_3D"):
                area.tag_redraw()


def _is_track_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE" and "ram_track_id" in obj


def _is_other_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE" and "ram_track_id" not in obj


def _activate_track_armature(self, context) -> None:
    """Choosing a row makes its armature the selected, active object."""
    if not 0 <= self.active_track < len(self.tracks):
        return
    armature = self.tracks[self.active_track].armature
    view_layer = context.view_layer
    if armature is None or view_layer is None or armature.name not in view_layer.objects:
        return
    if context.mode != "OBJECT":
        return
    for obj in view_layer.objects.selected:
        obj.select_set(False)
    armature.select_set(True)
    view_layer.objects.active = armature


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
    retarget_source: bpy.props.PointerProperty(
        name="Track",
        description="The track armature to retarget",
        type=bpy.types.Object,
        poll=_is_track_armature,
    )
    retarget_target: bpy.props.PointerProperty(
        name="Rig",
        description="Your armature to bake the track onto",
        type=bpy.types.Object,
        poll=_is_other_armature,
    )


class RAM_PG_track(bpy.types.PropertyGroup):
    """One row of an import's track list."""

    track_id: bpy.props.IntProperty(name="ID")
    armature: bpy.props.PointerProperty(name="Armature", type=bpy.types.Object)
    color: bpy.props.FloatVectorProperty(name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0)
    frame_first: bpy.props.IntProperty(name="First Frame")
    frame_last: bpy.props.IntProperty(name="Last Frame")
    occluded_share: bpy.props.FloatProperty(
        name="Occluded",
        description="Share of the track's frames marked occluded",
        subtype="FACTOR",
        min=0.0,
        max=1.0,
    )
    show_mask: bpy.props.BoolProperty(
        name="Show Mask",
        description="Show this track's mask over the video in the Sequencer",
        default=True,
        update=_redraw_previews,
    )
    needs_combine: bpy.props.BoolProperty(
        name="Needs Combiner",
        description="Edited since the Combiner last ran on it: re-run the Combiner",
        default=False,
    )
    selected: bpy.props.BoolProperty(
        name="Selected",
        description="Include this track in the next edit (swap and merge take two)",
        default=False,
    )


class RAM_PG_import(bpy.types.PropertyGroup):
    """An import's state, saved with the collection: undo and reload restore it too."""

    tracks: bpy.props.CollectionProperty(type=RAM_PG_track)
    active_track: bpy.props.IntProperty(name="Track", update=_activate_track_armature)
    show_masks: bpy.props.BoolProperty(
        name="Show Masks",
        description="Show the tracks' masks and IDs over the video in the Sequencer",
        default=True,
        update=_redraw_previews,
    )
    # The edit log (JSON list) the scene shows; edits.json is kept equal to it.
    edits_json: bpy.props.StringProperty(default="[]", options={"HIDDEN"})


classes = (RAM_PG_settings, RAM_PG_track, RAM_PG_import)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    bpy.types.Scene.ram = bpy.props.PointerProperty(type=RAM_PG_settings)
    bpy.types.Collection.ram = bpy.props.PointerProperty(type=RAM_PG_import)


def unregister() -> None:
    del bpy.types.Collection.ram
    del bpy.types.Scene.ram
    _unregister_classes()
