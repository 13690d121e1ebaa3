"""The source video as a movie strip in the Sequencer, frame for frame with the armatures.

Blender 5.x calls the Sequencer's items ``strips``, 4.2 ``sequences``; this is the one place
that knows. Video frame 0 sits on scene frame ``FRAME_OFFSET``, as the camera background's
clip and the armatures' keys do.
"""

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


def add_video_strip(scene: bpy.types.Scene, video: Path | None, result_path: Path):
    """A movie strip of ``video`` on a free channel from scene frame ``FRAME_OFFSET``, tagged
    with the result it belongs to. None when there is no video file to show."""
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
    return strip


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
