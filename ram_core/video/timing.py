"""Frame times of variable-frame-rate video, and the constant-rate frames Blender shows.

Phones write variable-frame-rate video: the gap between frames changes with the light and
the load. Blender's movie strip does not count decoded frames; it plays the file on a
constant grid at the stream's frame rate (FFmpeg's guessed rate) and at strip frame n shows
the newest frame whose presentation time is at or before n / rate; its length is the
stream's span (first frame to the end of the last) times that rate. Measured with bpy 4.2
and 5.2 on a clip of 40 frames whose middle ten are 1/15 s apart in a 30 fps stream: a
50-frame strip, frames 10 to 19 each shown twice (``tests/blender/test_video_import.py``).
Our frame indices follow the same grid, so a track's frame n is the strip's frame n.

Pure numpy: the times come from ``ram_core.video.reader``.
"""

from __future__ import annotations

import numpy as np

# Frame gaps that differ by less than this are the same gap (timestamps are rounded to the
# container's time base, and ms-resolution times to a millisecond).
SAME_GAP_S = 1.5e-3


def is_variable_rate(times_s: np.ndarray, rate: float) -> bool:
    """Whether frames at ``times_s`` (sorted, seconds) leave the constant ``rate`` grid."""
    times_s = np.asarray(times_s, dtype=np.float64)
    if times_s.size < 2 or not rate > 0:
        return False
    gaps = np.diff(times_s)
    return bool(np.any(np.abs(gaps - 1.0 / rate) > SAME_GAP_S))


def constant_rate_frame_count(times_s: np.ndarray, rate: float) -> int:
    """How many frames Blender's strip has: the span, first frame to the end of the last
    (one typical gap after it), times ``rate``."""
    times_s = np.asarray(times_s, dtype=np.float64)
    if times_s.size == 0:
        return 0
    last_gap = float(np.median(np.diff(times_s))) if times_s.size > 1 else 1.0 / rate
    span = float(times_s[-1] - times_s[0]) + last_gap
    return max(1, round(span * rate))


def constant_rate_sources(times_s: np.ndarray, rate: float, count: int) -> np.ndarray:
    """For each of ``count`` frames on the ``rate`` grid, the index of the decoded frame
    shown: the newest one whose time (from the first frame's) is at or before the grid
    time. (count,) int64, non-decreasing; frames may repeat or be skipped."""
    times_s = np.asarray(times_s, dtype=np.float64)
    if times_s.size == 0 or count < 1:
        return np.zeros(0, dtype=np.int64)
    grid = np.arange(count) / rate
    # Half the gap tolerance: a frame stamped a rounding error after its grid time is on it.
    shown = np.searchsorted(times_s - times_s[0], grid + 0.5 * SAME_GAP_S, side="right") - 1
    return np.clip(shown, 0, times_s.size - 1).astype(np.int64)
