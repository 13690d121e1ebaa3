"""Mask overlays for the Sequencer preview: one frame's labels as a coloured RGBA image.

No bpy here (``overlay_draw.py`` puts the image on the screen). Nothing is prepared at
import: a frame is decoded when it is shown, and a few recent frames are kept. The stored
label images carry the pipeline's IDs; the edit log maps them to today's IDs through a
lookup table, so the overlay follows an ID edit at once without touching any file.

Image rows run top to bottom as in the video; the Sequencer preview's view space has its
origin at the centre of the frame with y up, one unit per pixel of the render size.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ram_core.io.edits import label_mapping
from ram_core.io.palette import track_color
from ram_core.io.result import read_mask

# Overlay opacity where a mask is, 0..255.
DEFAULT_ALPHA = 110
# Labels are placed from a subsampled image: every STRIDE-th pixel is plenty for a centroid.
ANCHOR_STRIDE = 8


@dataclass(frozen=True)
class TrackLabel:
    """Where to write a track's ID: above its mask, in image pixels (x right, y down)."""

    track_id: int
    x: float
    y: float


class MaskFrames:
    """Recently shown frames' raw label images (the pipeline's IDs), at most ``capacity``.

    A missing mask file (a frame the run did not cover) reads as None.
    """

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._frames: OrderedDict[tuple[str, int], np.ndarray | None] = OrderedDict()

    def raw_labels(self, result_path: str | Path, frame: int) -> np.ndarray | None:
        key = (str(result_path), int(frame))
        if key in self._frames:
            self._frames.move_to_end(key)
            return self._frames[key]
        try:
            labels = read_mask(result_path, frame, apply_edits=False)
        except (OSError, ValueError):
            labels = None
        self._frames[key] = labels
        while len(self._frames) > self.capacity:
            self._frames.popitem(last=False)
        return labels

    def clear(self) -> None:
        self._frames.clear()


def present_labels(raw_labels: np.ndarray) -> list[int]:
    """The track IDs drawn in a raw label image (no sort of the whole frame)."""
    counts = np.bincount(raw_labels[::2, ::2].ravel().astype(np.intp, copy=False))
    present = set((np.flatnonzero(counts[1:]) + 1).tolist())
    # A sliver thinner than the subsampling step still counts: check the exact maximum too.
    present.add(int(raw_labels.max()))
    present.discard(0)
    return sorted(present)


def shown_tracks(
    raw_labels: np.ndarray, frame: int, edits: list[dict[str, Any]], visible: set[int] | None
) -> dict[int, int]:
    """{raw label: today's track ID} of the labels drawn in a frame whose track is shown
    (not deleted by the log, and in ``visible``; None: all shown)."""
    raw_ids = present_labels(raw_labels)
    mapping = label_mapping(edits, frame, raw_ids)
    return {
        raw: track
        for raw in raw_ids
        if (track := mapping.get(raw, raw)) != 0 and (visible is None or track in visible)
    }


def colour_lookup(shown: dict[int, int], alpha: int = DEFAULT_ALPHA) -> np.ndarray:
    """(max raw label + 1, 4) uint8 RGBA per raw label: the colour of the track it is today
    where shown, transparent elsewhere (background, deleted and hidden tracks)."""
    lookup = np.zeros((max([0, *shown]) + 1, 4), dtype=np.uint8)
    for raw, track in shown.items():
        red, green, blue = track_color(track)
        lookup[raw] = (round(red * 255), round(green * 255), round(blue * 255), alpha)
    return lookup


def _coloured(labels: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 of ``lookup`` gathered at ``labels``: one 4-byte word per pixel is
    several times faster to gather than four bytes."""
    words = lookup.view(np.uint32).ravel().take(labels, mode="clip")
    return words.view(np.uint8).reshape(*labels.shape, 4)


def overlay_rgba(
    raw_labels: np.ndarray,
    frame: int,
    edits: list[dict[str, Any]],
    visible: set[int] | None = None,
    alpha: int = DEFAULT_ALPHA,
) -> np.ndarray:
    """(H, W, 4) uint8: each visible track's mask in its colour, the rest transparent.

    ``raw_labels``: the stored label image of video frame ``frame``; ``edits``: the log the
    scene reflects.
    """
    lookup = colour_lookup(shown_tracks(raw_labels, frame, edits, visible), alpha)
    return _coloured(raw_labels, lookup)


def track_labels(
    raw_labels: np.ndarray,
    frame: int,
    edits: list[dict[str, Any]],
    visible: set[int] | None = None,
) -> list[TrackLabel]:
    """Where each visible track's ID goes: centred over its mask, just above its top."""
    small = raw_labels[::ANCHOR_STRIDE, ::ANCHOR_STRIDE].astype(np.intp, copy=False)
    labels = []
    rows, cols = np.nonzero(small)
    values = small[rows, cols]
    for raw, track in shown_tracks(raw_labels, frame, edits, visible).items():
        mine = values == raw
        if not np.any(mine):
            continue
        x = float(cols[mine].mean()) * ANCHOR_STRIDE
        y = float(rows[mine].min()) * ANCHOR_STRIDE
        labels.append(TrackLabel(track, x, y))
    return labels


def track_at_pixel(
    raw_labels: np.ndarray, frame: int, edits: list[dict[str, Any]], x: float, y: float
) -> int | None:
    """The track (today's ID) whose mask covers image pixel (x right, y down), or None."""
    height, width = raw_labels.shape
    column, row = int(np.floor(x)), int(np.floor(y))
    if not (0 <= column < width and 0 <= row < height):
        return None
    raw = int(raw_labels[row, column])
    if raw == 0:
        return None
    track = label_mapping(edits, frame, [raw]).get(raw, raw)
    return track or None


def view_to_pixel(
    view_x: float, view_y: float, image_size: tuple[int, int], extent: tuple[float, float]
) -> tuple[float, float]:
    """Sequencer preview view coordinates -> image pixels (origin top left, y down).

    The preview shows the frame over ``extent`` (width, height) view units centred on the
    origin, y up; the mask image is ``image_size`` (width, height) pixels.
    """
    width, height = image_size
    return (
        (view_x + extent[0] / 2.0) * width / extent[0],
        (extent[1] / 2.0 - view_y) * height / extent[1],
    )


def pixel_to_view(
    x: float, y: float, image_size: tuple[int, int], extent: tuple[float, float]
) -> tuple[float, float]:
    """Image pixels (origin top left, y down) -> Sequencer preview view coordinates."""
    width, height = image_size
    return x * extent[0] / width - extent[0] / 2.0, extent[1] / 2.0 - y * extent[1] / height


def display_stride(image_size: tuple[int, int], max_side: int = 1280) -> int:
    """Every how many pixels the preview texture samples the mask: a 1080p frame is shown at
    960x540, plenty for a preview region and a quarter of the upload."""
    return max(1, -(-max(image_size) // max_side))


def texture_pixels(
    raw_labels: np.ndarray,
    frame: int,
    edits: list[dict[str, Any]],
    visible: set[int] | None = None,
    stride: int = 1,
    alpha: int = DEFAULT_ALPHA,
) -> np.ndarray:
    """The overlay as a GPU texture wants it: (h, w, 4) float32 in [0, 1], bottom row first,
    sampled every ``stride`` pixels."""
    small = raw_labels[::-stride, ::stride]
    lookup = colour_lookup(shown_tracks(raw_labels, frame, edits, visible), alpha)
    # Gather bytes, then scale: much faster than gathering float rows.
    return np.multiply(_coloured(small, lookup), np.float32(1.0 / 255.0), dtype=np.float32)
