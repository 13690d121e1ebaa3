"""Streaming video input: probe a file, then decode its frames one at a time (OpenCV/FFmpeg).

Frames are never all held in memory: ``iter_frames`` yields one RGB frame at a time, so a
pipeline that consumes it stays flat in memory however long the video is.

Frame counts. The container's frame count is trusted only after it has been checked: the
probe decodes the first frame and seeks to the last one. When the last frame cannot be
decoded, the probe counts the decodable frames once (a full decode, paid only for such
files). A shortfall within ``count_tolerance`` frames is taken as an approximate count
(some containers store a duration, not a count) and the decodable count is used with a
warning; a larger shortfall means the file is truncated or damaged and is refused. The
same tolerance applies when decoding stops early during iteration.

Variable frame rate. Phones also write variable-frame-rate video. Blender's movie strip plays
such a file on a constant grid at the stream's frame rate (``ram_core.video.timing``), so
for these files our frames follow that grid too: ``fps`` is the stream's guessed rate (as
FFmpeg, and so Blender, guesses it), ``frame_count`` the strip's length, and
``VideoInfo.frame_sources`` says which decoded frame each of ours is (a frame may repeat or
be skipped). The frame times are read by demuxing with PyAV (no decoding); without PyAV a
file is taken as constant-rate, with a warning.

Orientation. Phones store most video sideways with a rotation tag (the track's display
matrix). Frames come out upright, turned as a player turns them; ``VideoInfo`` gives the
upright size and the turn (``rotation_deg``). We turn them ourselves from the tag OpenCV
reports, rather than rely on a build's automatic rotation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ram_core.errors import BadInputError
from ram_core.types import Frame, VideoInfo
from ram_core.video.timing import (
    constant_rate_frame_count,
    constant_rate_sources,
    is_variable_rate,
)

DEFAULT_FPS = 30.0

# FFmpeg only: other OpenCV backends (image sequences, camera indices) read a file name as a
# pattern or a device and would accept things that are not video files.
_BACKEND = cv2.CAP_FFMPEG
# Clockwise turn -> the OpenCV rotation that applies it.
_TURNS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def count_tolerance(expected_frames: int) -> int:
    """How many missing trailing frames still count as an approximate container count.

    2 frames or 1% of the expected count, whichever is larger.
    """
    return max(2, int(0.01 * expected_frames))


def sane_fps(raw_fps: float, path: str | Path) -> float:
    """The container's frame rate, or ``DEFAULT_FPS`` with a warning when it is unusable."""
    fps = float(raw_fps)
    if math.isfinite(fps) and fps > 0.0:
        return fps
    warnings.warn(
        f"{path}: the video states no usable frame rate ({raw_fps!r}); assuming {DEFAULT_FPS} fps.",
        RuntimeWarning,
        stacklevel=2,
    )
    return DEFAULT_FPS


def probe_video(path: str | Path) -> VideoInfo:
    """Open ``path``, check it decodes, and report its size, frame rate and frame count.

    Raises BadInputError (one sentence naming the file) for a missing path, a folder, an
    empty, unreadable or truncated file, and a video without frames.
    """
    video_path = _checked_file(path)
    cap = _open(video_path)
    try:
        ok, first_bgr = cap.read()
        if not ok or first_bgr is None:
            raise BadInputError(f"Video file {video_path} holds no decodable frames.")
        rotation = _rotation_deg(cap)
        height, width = _upright(first_bgr, rotation).shape[:2]
        fps = sane_fps(cap.get(cv2.CAP_PROP_FPS), video_path)
        reported = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        frame_count = _verified_frame_count(cap, video_path, reported)
    finally:
        cap.release()
    sources = None
    timing = _frame_times(video_path)
    if timing is not None and is_variable_rate(*timing):
        times, fps = timing
        decoded = times[:frame_count]
        count = constant_rate_frame_count(decoded, fps)
        sources = tuple(int(i) for i in constant_rate_sources(decoded, fps, count))
        frame_count = count
    return VideoInfo(
        path=str(video_path),
        fps=fps,
        width=int(width),
        height=int(height),
        frame_count=frame_count,
        rotation_deg=rotation,
        frame_sources=sources,
    )


def _frame_times(video_path: Path) -> tuple[np.ndarray, float] | None:
    """The video stream's frame times (seconds from the first, sorted) and its guessed frame
    rate, from the container's packets (nothing is decoded); None when PyAV is missing, the
    file gives no usable times, or its header shows a constant rate.

    The header check keeps the common case cheap: reading every packet means reading the
    whole file, once more per probe (``ram-core batch`` probes each finished clip before it
    skips it). A stream whose average rate (frames over duration) is its guessed rate plays
    one frame per grid step; a variable-rate phone clip averages below or above it."""
    try:
        import av
    except ImportError:
        warnings.warn(
            f"{video_path}: PyAV is not installed, so a variable frame rate cannot be "
            "detected; the file is read as constant-rate (tools/setup.sh installs it).",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    try:
        with av.open(str(video_path)) as container:
            stream = container.streams.video[0]
            rate = stream.guessed_rate or stream.average_rate
            average = stream.average_rate
            if rate and average and abs(float(average) - float(rate)) <= 1e-3 * float(rate):
                return None
            base = stream.time_base
            pts = [p.pts for p in container.demux(stream) if p.pts is not None]
    except (av.error.FFmpegError, IndexError, OSError):
        return None  # OpenCV decoded it: read it as it decodes
    if rate is None or base is None or len(pts) < 2 or not float(rate) > 0:
        return None
    ticks = np.sort(np.asarray(pts, dtype=np.int64))
    return (ticks - ticks[0]) * float(base), float(rate)


def iter_frames(path: str | Path, start: int = 0, end: int | None = None) -> Iterator[Frame]:
    """Decode frames ``start`` (inclusive) to ``end`` (exclusive, default: the last frame).

    The file and the range are checked now, before the first frame is asked for; the
    returned generator then decodes one frame at a time (``Frame.rgb``: (H, W, 3) uint8 RGB)
    and raises BadInputError if decoding stops more than ``count_tolerance`` frames early.
    """
    return stream_frames(probe_video(path), start, end)


def stream_frames(info: VideoInfo, start: int = 0, end: int | None = None) -> Iterator[Frame]:
    """``iter_frames`` for a video already probed (saves a second probe).

    The range is checked now; the returned generator decodes lazily.
    """
    first, stop = frame_range(info, start, end)
    return _decode(info, first, stop)


def frame_range(info: VideoInfo, start: int = 0, end: int | None = None) -> tuple[int, int]:
    """Check a ``[start, end)`` request against the video; returns it with ``end`` filled in."""
    stop = info.frame_count if end is None else end
    for name, value in (("start", start), ("end", stop)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise BadInputError(f"{name} frame must be a whole number, got {value!r}.")
    start, stop = int(start), int(stop)
    if not 0 <= start < info.frame_count:
        raise BadInputError(
            f"Start frame {start} is outside {info.path}, which has frames 0 to "
            f"{info.frame_count - 1}."
        )
    if stop > info.frame_count:
        raise BadInputError(
            f"End frame {stop} is past the end of {info.path}, which has {info.frame_count} frames."
        )
    if start >= stop:
        raise BadInputError(
            f"Start frame {start} must come before end frame {stop} (end is exclusive) "
            f"for {info.path}."
        )
    return start, stop


def _checked_file(path: str | Path) -> Path:
    video_path = Path(path)
    if not video_path.exists():
        raise BadInputError(f"Video file {video_path} does not exist.")
    if video_path.is_dir():
        raise BadInputError(f"{video_path} is a folder, not a video file.")
    if video_path.stat().st_size == 0:
        raise BadInputError(f"Video file {video_path} is empty (0 bytes).")
    return video_path


def _rotation_deg(cap: cv2.VideoCapture) -> int:
    """The clockwise turn (0, 90, 180, 270) the file's rotation tag asks for."""
    raw = cap.get(cv2.CAP_PROP_ORIENTATION_META)
    if not math.isfinite(raw):
        return 0
    turn = round(raw) % 360
    return turn if turn in _TURNS else 0


def _upright(bgr: np.ndarray, rotation: int) -> np.ndarray:
    return cv2.rotate(bgr, _TURNS[rotation]) if rotation else bgr


def _open(video_path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(video_path), _BACKEND)
    # Frames as stored; ``_upright`` turns them (one behaviour whatever the build does).
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    if not cap.isOpened():
        cap.release()
        raise BadInputError(
            f"{video_path} cannot be read as a video: it is not a video file, it is damaged "
            "or holds no frames, or its format is one OpenCV's FFmpeg cannot decode."
        )
    return cap


def _verified_frame_count(cap: cv2.VideoCapture, video_path: Path, reported: float) -> int:
    """The number of decodable frames; ``cap`` has just decoded frame 0."""
    if not math.isfinite(reported) or reported < 1:
        # Streams without a stored count: counting is the only way to know.
        return _count_decodable(video_path)
    expected = round(reported)
    if expected == 1:
        return 1
    cap.set(cv2.CAP_PROP_POS_FRAMES, expected - 1)
    if cap.grab() and round(cap.get(cv2.CAP_PROP_POS_FRAMES)) == expected:
        return expected
    decodable = _count_decodable(video_path)
    if expected - decodable > count_tolerance(expected):
        raise BadInputError(
            f"Video file {video_path} is truncated or damaged: its container says "
            f"{expected} frames but only {decodable} can be decoded."
        )
    if decodable != expected:
        warnings.warn(
            f"{video_path}: the container says {expected} frames but {decodable} decode; "
            f"using {decodable} (the stored count is approximate).",
            RuntimeWarning,
            stacklevel=3,
        )
    return decodable


def _count_decodable(video_path: Path) -> int:
    cap = _open(video_path)
    try:
        count = 0
        while cap.grab():
            count += 1
    finally:
        cap.release()
    if count == 0:
        raise BadInputError(f"Video file {video_path} holds no decodable frames.")
    return count


def _seek(cap: cv2.VideoCapture, video_path: Path, start: int) -> cv2.VideoCapture:
    """Put ``cap`` before frame ``start``; falls back to decoding forward if seeking is off."""
    if start == 0:
        return cap
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    if round(cap.get(cv2.CAP_PROP_POS_FRAMES)) == start:
        return cap
    cap.release()
    cap = _open(video_path)
    for index in range(start):
        if not cap.grab():
            cap.release()
            raise BadInputError(
                f"Video file {video_path} is truncated or damaged: decoding stopped at frame "
                f"{index} while seeking to frame {start}."
            )
    return cap


def _decode(info: VideoInfo, start: int, end: int) -> Iterator[Frame]:
    video_path = Path(info.path)
    sources = info.frame_sources
    # Decoded frames are read in order; on a variable-rate grid one may be shown twice
    # (kept) or not at all (read past).
    first_source = start if sources is None else sources[start]
    cap = _seek(_open(video_path), video_path, first_source)
    decoded, bgr = first_source - 1, None
    try:
        for index in range(start, end):
            wanted = index if sources is None else sources[index]
            ok = True
            while ok and decoded < wanted:
                ok, bgr = cap.read()
                decoded += 1
            if not ok or bgr is None:
                missing = info.frame_count - index
                if missing > count_tolerance(info.frame_count):
                    raise BadInputError(
                        f"Video file {video_path} is truncated or damaged: decoding stopped at "
                        f"frame {index} of {info.frame_count}."
                    )
                warnings.warn(
                    f"{video_path}: decoding stopped at frame {index}, {missing} frame(s) short "
                    "of the probed count; ending the stream there.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return
            upright = _upright(bgr, info.rotation_deg)
            if upright.shape[:2] != (info.height, info.width):
                raise BadInputError(
                    f"Video file {video_path} changes size at frame {index} "
                    f"({upright.shape[1]}x{upright.shape[0]} instead of "
                    f"{info.width}x{info.height})."
                )
            yield Frame(index=index, rgb=cv2.cvtColor(upright, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
