"""One colour per track, shared by the preview, the mask overlays and the Blender import."""

from __future__ import annotations

import colorsys

_GOLDEN_RATIO = 0.618033988749895


def track_color(track_id: int) -> tuple[float, float, float]:
    """A distinct, saturated RGB colour in [0, 1] for a track id (stable across runs).

    Hues step by the golden ratio so neighbouring ids are far apart on the colour wheel.
    """
    hue = (0.02 + track_id * _GOLDEN_RATIO) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.85, 0.95)


def track_color_bgr8(track_id: int) -> tuple[int, int, int]:
    """The same colour as OpenCV's 8-bit BGR."""
    r, g, b = track_color(track_id)
    return (round(b * 255), round(g * 255), round(r * 255))
