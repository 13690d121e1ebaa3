"""The source video as a movie strip in the Sequencer, frame for frame with the armatures.

Blender 5.x calls the Sequencer's items ``strips``, 4.2 ``sequences``; this is the one place
that knows. Video frame 0 sits on scene frame ``FRAME_OFFSET``, as the camera background's
clip and the armatures' keys do.
"""

import math
from pathlib import Path

import bpy

from .results import FRAME_OFFSET

STRIP_RESULT_PROP = "ram_result_path"


def editor_strips(scene: bpy.types.Scene, create: bool = False):
    """The top-level strips of ``scene``'s Sequencer (None when it has none and not
    ``create``)."""
    editor = scene.sequence_editor
    if editor is None:
        if not create:
            return None
        editor = scene.sequence_editor_create()
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def all_strips(scene: bpy.types.Scene) -> list:
    """Every strip of ``scene``'s Sequencer, inside meta strips too."""
    editor = scene.sequence_editor
    if editor is None:
        return []
    return list(editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)


def add_video_strip(
    scene: bpy.types.Scene,
    video: Path | None,
    result_path: Path,
    rotation_deg: int = 0,
    upright_size: tuple[int, int] | None = None,
):
    """A movie strip of ``video`` on a free channel from scene frame ``FRAME_OFFSET``, tagged
    with the result it belongs to. None when there is no video file to show.

    A video stored turned (``rotation_deg`` clockwise, a phone's rotation tag) shows upright
    in Blender 5; older versions show it as stored, and the strip is turned back upright
    (checked by the frame's size where the turn swaps width and height)."""
    if video is None or not Path(video).is_file():
        return None
    strips = editor_strips(scene, create=True)
    channel = 1 + max((strip.channel for strip in strips), default=0)
    strip = strips.new_movie(
        name=f"RAM {Path(result_path).name}",
        filepath=str(video),
        channel=channel,
        frame_start=FRAME_OFFSET,
    )
    strip[STRIP_RESULT_PROP] = str(result_path)
    strip.color_tag = "COLOR_05"
    if rotation_deg and not shows_upright(strip, rotation_deg, upright_size):
        strip.transform.rotation = -math.radians(rotation_deg)
    return strip


def shows_upright(strip, rotation_deg: int, upright_size: tuple[int, int] | None) -> bool:
    """Whether this Blender shows a movie strip of a video stored turned upright."""
    if rotation_deg % 180 and upright_size is not None and len(strip.elements):
        element = strip.elements[0]
        return (element.orig_width, element.orig_height) == tuple(upright_size)
    # A half turn keeps the size: Blender 5 applies rotation tags, 4.2 does not.
    return bpy.app.version >= (5, 0, 0)


def video_strips(scene: bpy.types.Scene, result_path: Path) -> list:
    """The strips an import of ``result_path`` put in ``scene``."""
    return [strip for strip in all_strips(scene) if _shows(strip, result_path)]


def remove_video_strips(scene: bpy.types.Scene, result_path: Path, keep=None) -> None:
    """Remove the strips of ``result_path``'s imports from ``scene``, except ``keep``."""
    strips = editor_strips(scene)
    if strips is None:
        return
    for strip in list(strips):
        if _shows(strip, result_path) and (keep is None or strip.name != keep.name):
            strips.remove(strip)


def _shows(strip, result_path: Path) -> bool:
    """Whether ``strip`` is the video an import of ``result_path`` added."""
    tagged = strip.get(STRIP_RESULT_PROP)
    return tagged is not None and Path(tagged) == Path(result_path)
