"""Operators of the artist's loop: ID edits, occlusion edits and the Combiner re-run.

Their ids and arguments are an interface (scripts and studio pipelines call them). Frames
are scene frames. A track argument left at 0 (and a frame at -1) is taken from the RAM
track list: the active row, and for swap and merge the other ticked row; the frame is the
current one. A bad argument is reported and changes nothing.
"""

# Blender's class naming (RAM_OT_x) and its set-valued class attributes are its API.

import bpy

from ram_core.errors import RamError

from . import editing
from .track_edits import (
    EditError,
    delete_edit,
    merge_edit,
    occlusion_edit,
    split_edit,
    swap_edit,
)

_FROM_LIST = "0: the active track of the RAM track list"


def _track_prop(name: str, description: str = _FROM_LIST):
    return bpy.props.IntProperty(name=name, description=description, default=0, min=0)


def _frame_prop(name: str = "Frame"):
    return bpy.props.IntProperty(
        name=name, description="Scene frame (-1: the current frame)", default=-1
    )


def _chosen_tracks(context) -> tuple[int | None, list[int]]:
    """(active track, the other ticked tracks) of the first import's list."""
    try:
        collection = editing.import_for_track(context.scene)
    except EditError:
        return None, []
    state = collection.ram
    active = (
        state.tracks[state.active_track].track_id
        if 0 <= state.active_track < len(state.tracks)
        else None
    )
    ticked = [item.track_id for item in state.tracks if item.selected and item.track_id != active]
    return active, ticked


class _EditOperator:
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.mode == "OBJECT"

    def execute(self, context):
        try:
            message = self.run(context)
        except (EditError, RamError, OSError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}

    def track_or_active(self, context, value: int) -> int:
        if value:
            return value
        active, _ = _chosen_tracks(context)
        if active is None:
            raise EditError("Choose a track in the RAM track list (or pass its ID).")
        return active

    def second_track(self, context, value: int, first: int) -> int:
        if value:
            return value
        _, ticked = _chosen_tracks(context)
        others = [track for track in ticked if track != first]
        if len(others) != 1:
            raise EditError("Tick exactly one other track in the RAM track list.")
        return others[0]

    @staticmethod
    def frame_or_current(context, value: int) -> int:
        return context.scene.frame_current if value == -1 else value


class RAM_OT_swap_ids(_EditOperator, bpy.types.Operator):
    """Swap two tracks' IDs from a frame on (they were mixed up there)"""

    bl_idname = "ram.swap_ids"
    bl_label = "Swap IDs"

    track_a: _track_prop("Track A")
    track_b: _track_prop("Track B", "0: the other ticked track of the RAM track list")
    frame: _frame_prop()

    def run(self, context) -> str:
        a = self.track_or_active(context, self.track_a)
        b = self.second_track(context, self.track_b, a)
        frame = self.frame_or_current(context, self.frame)
        collection = editing.import_for_track(context.scene, a)
        editing.apply_track_edit(collection, lambda spans, _: swap_edit(spans, a, b, frame))
        return f"Tracks {a} and {b} swapped from frame {frame}"


class RAM_OT_merge_tracks(_EditOperator, bpy.types.Operator):
    """Merge a track into another (the same person, tracked twice)"""

    bl_idname = "ram.merge_tracks"
    bl_label = "Merge Tracks"

    into: _track_prop("Into")
    source: _track_prop("Source", "0: the other ticked track of the RAM track list")

    def run(self, context) -> str:
        into = self.track_or_active(context, self.into)
        source = self.second_track(context, self.source, into)
        collection = editing.import_for_track(context.scene, into)
        editing.apply_track_edit(collection, lambda spans, _: merge_edit(spans, into, source))
        return f"Track {source} merged into track {into}"


class RAM_OT_split_track(_EditOperator, bpy.types.Operator):
    """Split a track at a frame: from there on it is a new track (two people under one ID)"""

    bl_idname = "ram.split_track"
    bl_label = "Split Track"

    track: _track_prop("Track")
    frame: _frame_prop()

    def run(self, context) -> str:
        track = self.track_or_active(context, self.track)
        frame = self.frame_or_current(context, self.frame)
        collection = editing.import_for_track(context.scene, track)
        edit, _ = editing.apply_track_edit(
            collection, lambda spans, edits: split_edit(spans, edits, track, frame)
        )
        new_id = edit["new_id"]
        # The new track becomes the active row, so a script finds it there too.
        for index, item in enumerate(collection.ram.tracks):
            if item.track_id == new_id:
                collection.ram.active_track = index
        return f"Track {track} split at frame {frame}: the new track is {new_id}"


class RAM_OT_delete_track(_EditOperator, bpy.types.Operator):
    """Delete a track (a false detection): its armature and body go"""

    bl_idname = "ram.delete_track"
    bl_label = "Delete Track"

    track: _track_prop("Track")

    def run(self, context) -> str:
        track = self.track_or_active(context, self.track)
        collection = editing.import_for_track(context.scene, track)
        editing.apply_track_edit(collection, lambda spans, _: delete_edit(spans, track))
        return f"Track {track} deleted"


class RAM_OT_mark_occluded(_EditOperator, bpy.types.Operator):
    """Mark a frame range of a track as occluded (or as trusted); re-run the Combiner after"""

    bl_idname = "ram.mark_occluded"
    bl_label = "Mark Occluded"

    track: _track_prop("Track")
    frame_start: _frame_prop("Start")
    frame_end: _frame_prop("End")
    occluded: bpy.props.BoolProperty(
        name="Occluded",
        description="Occluded (the prediction takes over); off: trusted (the video wins)",
        default=True,
    )

    def run(self, context) -> str:
        track = self.track_or_active(context, self.track)
        start = self.frame_or_current(context, self.frame_start)
        end = self.frame_or_current(context, self.frame_end)
        collection = editing.import_for_track(context.scene, track)
        editing.apply_track_edit(
            collection, lambda spans, _: occlusion_edit(spans, track, start, end, self.occluded)
        )
        state = "occluded" if self.occluded else "trusted"
        return f"Track {track} frames {start}..{end} marked {state}; re-run the Combiner"


class RAM_OT_rerun_combiner(_EditOperator, bpy.types.Operator):
    """Re-run the Predictor and Combiner with your edits and update the keys in place"""

    bl_idname = "ram.rerun_combiner"
    bl_label = "Re-run Combiner"

    track: bpy.props.IntProperty(
        name="Track", description="The track to re-run (0: every track)", default=0, min=0
    )

    def run(self, context) -> str:
        collection = editing.import_for_track(context.scene, self.track or None)
        report = editing.rerun_combiner(collection, self.track)
        changed = ", ".join(str(t) for t in report.rekeyed) or "none"
        return f"Combiner re-run; tracks re-keyed: {changed}"


@bpy.app.handlers.persistent
def _after_undo(*_args) -> None:
    # Undo and redo restore the scene's log; the file follows it.
    editing.sync_log_files()


classes = (
    RAM_OT_swap_ids,
    RAM_OT_merge_tracks,
    RAM_OT_split_track,
    RAM_OT_delete_track,
    RAM_OT_mark_occluded,
    RAM_OT_rerun_combiner,
)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    bpy.app.handlers.undo_post.append(_after_undo)
    bpy.app.handlers.redo_post.append(_after_undo)


def unregister() -> None:
    for handlers in (bpy.app.handlers.undo_post, bpy.app.handlers.redo_post):
        if _after_undo in handlers:
            handlers.remove(_after_undo)
    _unregister_classes()
