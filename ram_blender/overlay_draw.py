"""Draw the mask overlays in the Sequencer preview, and pick a track by clicking its mask.

Thin: the pixels come from ``overlay.py``. Two draw handlers on the preview region: the
masks in view space (the preview's view units are render pixels, origin at the frame's
centre), the ID labels in region pixels. Only the frame on screen is read and uploaded; the
last texture is kept while the frame, the log and the visibility stay the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import bpy

from .importer import RESULT_PATH_PROP, imported_collections
from .overlay import (
    MaskFrames,
    display_stride,
    pixel_to_view,
    texture_pixels,
    track_at_pixel,
    track_labels,
    view_to_pixel,
)
from .results import FRAME_OFFSET

MASK_FRAMES = MaskFrames()
_handlers: list = []
# result path -> ((frame, log, visible), (texture, labels, image size)): the last drawn.
_textures: dict[str, tuple[tuple, object]] = {}


def sequencer_scene(context) -> bpy.types.Scene:
    """The scene the Sequencer shows (5.x may show another than the window's)."""
    return getattr(context, "sequencer_scene", None) or context.scene


def preview_extent(scene: bpy.types.Scene) -> tuple[float, float]:
    """The frame's size in the preview's view units."""
    render = scene.render
    scale = render.resolution_percentage / 100.0
    return render.resolution_x * scale, render.resolution_y * scale


def shown_overlays(scene: bpy.types.Scene):
    """(collection, result path, video frame, log, visible IDs) of each import whose masks
    are shown at the scene's current frame."""
    frame = scene.frame_current - FRAME_OFFSET
    for collection in imported_collections(scene):
        state = collection.ram
        if not state.show_masks or frame < 0:
            continue
        visible = frozenset(item.track_id for item in state.tracks if item.show_mask)
        edits = json.loads(state.edits_json or "[]")
        yield collection, Path(collection[RESULT_PATH_PROP]), frame, edits, visible


def pick_track(context, region_x: float, region_y: float):
    """The (collection, track ID) whose mask is under a point of the preview region."""
    scene = sequencer_scene(context)
    view_x, view_y = context.region.view2d.region_to_view(region_x, region_y)
    for collection, path, frame, edits, visible in shown_overlays(scene):
        raw = MASK_FRAMES.raw_labels(path, frame)
        if raw is None:
            continue
        size = (raw.shape[1], raw.shape[0])
        x, y = view_to_pixel(view_x, view_y, size, preview_extent(scene))
        track = track_at_pixel(raw, frame, edits, x, y)
        if track is not None and track in visible:
            return collection, track
    return None


def select_track(context, collection: bpy.types.Collection, track: int) -> bool:
    """Make ``track`` the active row of its import's list (its armature becomes active)."""
    for index, item in enumerate(collection.ram.tracks):
        if item.track_id == track:
            collection.ram.active_track = index
            return True
    return False


def _shown_frame(path: Path, frame: int, edits: list, visible: frozenset):
    """(texture, ID labels, image size) of an import's overlay at a frame, or None without a
    mask there. Made once per frame, log and visibility; both draw handlers use it, so a
    redraw that changes none of them costs nothing."""
    import gpu

    raw = MASK_FRAMES.raw_labels(path, frame)
    if raw is None:
        return None
    key = (frame, json.dumps(edits), tuple(sorted(visible)))
    cached = _textures.get(str(path))
    if cached is None or cached[0] != key:
        size = (raw.shape[1], raw.shape[0])
        pixels = texture_pixels(raw, frame, edits, set(visible), display_stride(size))
        buffer = gpu.types.Buffer("FLOAT", pixels.size, pixels.ravel())
        texture = gpu.types.GPUTexture(
            (pixels.shape[1], pixels.shape[0]), format="RGBA8", data=buffer
        )
        labels = track_labels(raw, frame, edits, set(visible))
        _textures[str(path)] = cached = (key, (texture, labels, size))
    return cached[1]


def _draw_masks() -> None:
    import gpu
    from gpu_extras.presets import draw_texture_2d

    scene = sequencer_scene(bpy.context)
    extent = preview_extent(scene)
    for _, path, frame, edits, visible in shown_overlays(scene):
        shown = _shown_frame(path, frame, edits, visible)
        if shown is None:
            continue
        gpu.state.blend_set("ALPHA")
        draw_texture_2d(shown[0], (-extent[0] / 2, -extent[1] / 2), extent[0], extent[1])
        gpu.state.blend_set("NONE")


def _draw_labels() -> None:
    import blf

    from ram_core.io.palette import track_color

    context = bpy.context
    scene = sequencer_scene(context)
    view2d = context.region.view2d
    extent = preview_extent(scene)
    font = 0
    blf.size(font, 14)
    for _, path, frame, edits, visible in shown_overlays(scene):
        shown = _shown_frame(path, frame, edits, visible)
        if shown is None:
            continue
        _, labels, size = shown
        for label in labels:
            view_x, view_y = pixel_to_view(label.x, label.y, size, extent)
            x, y = view2d.view_to_region(view_x, view_y, clip=False)
            blf.color(font, *track_color(label.track_id), 1.0)
            text = f"ID {label.track_id}"
            width, _ = blf.dimensions(font, text)
            blf.position(font, x - width / 2, y + 4, 0)
            blf.draw(font, text)


def _safely(draw):
    def run() -> None:
        try:
            draw()
        except Exception as exc:  # a draw handler must never break the editor
            print(f"RAM overlay: {exc}")

    return run


class RAM_OT_pick_track(bpy.types.Operator):
    """Select the track whose mask is under the mouse in the Sequencer preview"""

    bl_idname = "ram.pick_track"
    bl_label = "Pick Track from Mask"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        space = context.space_data
        return space is not None and space.type == "SEQUENCE_EDITOR" and context.region

    def invoke(self, context, event):
        picked = pick_track(context, event.mouse_region_x, event.mouse_region_y)
        if picked is None:
            return {"PASS_THROUGH"}
        collection, track = picked
        select_track(context, collection, track)
        self.report({"INFO"}, f"Track {track}")
        return {"FINISHED"}

    def execute(self, context):
        return {"CANCELLED"}


_keymaps: list = []


def register() -> None:
    bpy.utils.register_class(RAM_OT_pick_track)
    space = bpy.types.SpaceSequenceEditor
    _handlers.append(space.draw_handler_add(_safely(_draw_masks), (), "PREVIEW", "POST_VIEW"))
    _handlers.append(space.draw_handler_add(_safely(_draw_labels), (), "PREVIEW", "POST_PIXEL"))
    keyconfig = bpy.context.window_manager.keyconfigs.addon
    if keyconfig is not None:
        keymap = keyconfig.keymaps.new(name="SequencerPreview", space_type="SEQUENCE_EDITOR")
        item = keymap.keymap_items.new(RAM_OT_pick_track.bl_idname, "LEFTMOUSE", "PRESS")
        _keymaps.append((keymap, item))


def unregister() -> None:
    for keymap, item in _keymaps:
        keymap.keymap_items.remove(item)
    _keymaps.clear()
    while _handlers:
        bpy.types.SpaceSequenceEditor.draw_handler_remove(_handlers.pop(), "PREVIEW")
    _textures.clear()
    MASK_FRAMES.clear()
    bpy.utils.unregister_class(RAM_OT_pick_track)
