"""Video files stored turned with a rotation tag, as phones write them: frames written
sideways with OpenCV, then the track header's display matrix set (what a player and FFmpeg
read as the turn that stands them upright)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

# Clockwise display turn -> the (a, b, c, d) of the 16.16 display matrix FFmpeg reads.
_MATRICES = {90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}
# How to store an upright frame so that the turn shows it upright again.
_STORE = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


def write_video(path: Path, frames_rgb: Sequence[np.ndarray], fps: float = 24.0) -> Path:
    height, width = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames_rgb:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_turned_video(
    path: Path, upright_rgb: Sequence[np.ndarray], rotation_deg: int, fps: float = 24.0
) -> Path:
    """An MP4 whose stored frames are the upright ones turned back by ``rotation_deg``,
    tagged to be shown turned ``rotation_deg`` clockwise (upright)."""
    stored = [cv2.rotate(frame, _STORE[rotation_deg]) for frame in upright_rgb]
    write_video(path, stored, fps)
    data = bytearray(path.read_bytes())
    start = _box(data, 0, len(data), ("moov", "trak", "tkhd"))
    version = data[start + 8]
    # size, type, version+flags, times and ids, reserved, layer, group, volume, reserved
    matrix = start + 8 + 4 + (32 if version == 1 else 20) + 8 + 8
    a, b, c, d = _MATRICES[rotation_deg]
    one = 1 << 16
    data[matrix : matrix + 36] = struct.pack(
        ">9i", a * one, b * one, 0, c * one, d * one, 0, 0, 0, 1 << 30
    )
    path.write_bytes(bytes(data))
    return path


def _box(data: bytearray, start: int, end: int, path: tuple[str, ...]) -> int:
    """Offset of the box at ``path`` (nested types) inside data[start:end]."""
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[offset + 8 : offset + 16])[0], 16
        size = size or end - offset
        if kind.decode("latin-1") == path[0]:
            if len(path) == 1:
                return offset
            return _box(data, offset + header, offset + size, path[1:])
        offset += size
    raise ValueError(f"no {path[0]} box")
