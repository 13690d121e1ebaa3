"""Training clips cut out of our rendered benchmark scenes, for the MemFormer.

A scene folder (``tools/make_bench_scenes.py``) holds ``video.mp4`` and ``gt.npz`` with, per
frame F and person P: ``joints_cam`` (F, P, 24, 3) metres in the camera frame,
``box_full_xyxy`` (F, P, 4) pixels (the whole body, hidden parts included),
``box_visible_xyxy``, ``visible_fraction`` (F, P), ``in_frame`` (F, P) and the intrinsics
``K`` (3, 3). A clip is ``clip_len`` consecutive frames of one person, all in frame; each
frame is cut exactly as T-HMR cuts it at inference (``ram_core.reconstruct.thmr.crop_square``
and ``cut_crop``), so the MemFormer trains on the crops it will see.

numpy and OpenCV only (the video is decoded by ``ram_core.video.reader``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ram_core.reconstruct.thmr import CROP_HEIGHT, CROP_WIDTH, crop_square, cut_crop

BOX_KEYS = ("box_full_xyxy", "box_visible_xyxy")


@dataclass(frozen=True)
class ClipArrays:
    """N clips of T frames of one person each.

    crops (N, T, 256, 192, 3) uint8 RGB; joints_cam (N, T, 24, 3) float32 metres, camera
    frame (OpenCV axes); crop_boxes (N, T, 3) float32: the crop square's centre x, y and side
    in full-frame pixels; intrinsics (N, 3, 3) float32; reliable (N, T) bool: frames that
    may enter memory.
    """

    crops: np.ndarray
    joints_cam: np.ndarray
    crop_boxes: np.ndarray
    intrinsics: np.ndarray
    reliable: np.ndarray

    def __len__(self) -> int:
        return len(self.crops)


def scene_clip_crops(
    scene_dir: str | Path,
    clip_len: int,
    stride: int | None = None,
    box_padding: float = 1.2,
    min_visible: float = 0.5,
    box_key: str = "box_full_xyxy",
) -> ClipArrays:
    """Every clip of ``clip_len`` frames (starts ``stride`` apart, default ``clip_len // 2``)
    in which a person stays in frame; frames with ``visible_fraction >= min_visible`` are
    marked reliable (the rest are seen by the network but never remembered).
    """
    from ram_core.video.reader import iter_frames

    scene_dir = Path(scene_dir)
    if clip_len < 2:
        raise ValueError(f"clip_len must be >= 2 (a clip needs a past), got {clip_len}")
    stride = max(1, clip_len // 2) if stride is None else stride
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if box_key not in BOX_KEYS:
        raise ValueError(f"box_key must be one of {', '.join(BOX_KEYS)}, got {box_key!r}")
    with np.load(scene_dir / "gt.npz") as gt:
        joints_cam = gt["joints_cam"].astype(np.float32)  # (F, P, 24, 3)
        boxes = gt[box_key].astype(np.float64)  # (F, P, 4)
        visible = gt["visible_fraction"].astype(np.float32)  # (F, P)
        in_frame = gt["in_frame"].astype(bool)  # (F, P)
        intrinsics = gt["K"].astype(np.float32)  # (3, 3)
    frame_count, people = in_frame.shape
    starts = _clip_starts(in_frame & _sane_boxes(boxes), clip_len, stride)

    needed = {(f, p) for start, p in starts for f in range(start, start + clip_len)}
    crops: dict[tuple[int, int], np.ndarray] = {}
    squares: dict[tuple[int, int], np.ndarray] = {}
    decoded = 0
    for frame in iter_frames(scene_dir / "video.mp4"):
        decoded += 1
        if frame.index >= frame_count:
            break
        for p in range(people):
            if (frame.index, p) in needed:
                centre, side = crop_square(boxes[frame.index, p], box_padding)
                crops[frame.index, p] = cut_crop(frame.rgb, centre, side)
                squares[frame.index, p] = np.array([centre[0], centre[1], side])
    if decoded < frame_count:
        raise ValueError(f"{scene_dir}: video has {decoded} frames, gt.npz has {frame_count}")

    clips = [(range(start, start + clip_len), p) for start, p in starts]
    if not clips:
        return _empty(clip_len)
    return ClipArrays(
        crops=np.stack([np.stack([crops[f, p] for f in fs]) for fs, p in clips]),
        joints_cam=np.stack([joints_cam[list(fs), p] for fs, p in clips]),
        crop_boxes=np.stack([np.stack([squares[f, p] for f in fs]) for fs, p in clips]).astype(
            np.float32
        ),
        intrinsics=np.broadcast_to(intrinsics, (len(clips), 3, 3)).copy(),
        reliable=np.stack([visible[list(fs), p] >= min_visible for fs, p in clips]),
    )


def concatenate_clips(parts: list[ClipArrays]) -> ClipArrays:
    """Clips of several scenes in one set (all of the same length)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        raise ValueError("no clips to concatenate")
    lengths = {p.crops.shape[1] for p in parts}
    if len(lengths) != 1:
        raise ValueError(f"clips of different lengths: {sorted(lengths)}")
    return ClipArrays(
        crops=np.concatenate([p.crops for p in parts]),
        joints_cam=np.concatenate([p.joints_cam for p in parts]),
        crop_boxes=np.concatenate([p.crop_boxes for p in parts]),
        intrinsics=np.concatenate([p.intrinsics for p in parts]),
        reliable=np.concatenate([p.reliable for p in parts]),
    )


def _sane_boxes(boxes: np.ndarray) -> np.ndarray:
    """(F, P) bool: finite boxes with positive width and height."""
    finite = np.all(np.isfinite(boxes), axis=-1)
    with np.errstate(invalid="ignore"):
        return finite & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])


def _clip_starts(usable: np.ndarray, clip_len: int, stride: int) -> list[tuple[int, int]]:
    """(start frame, person) of each clip whose frames are all usable. usable (F, P)."""
    frame_count, people = usable.shape
    starts = []
    for p in range(people):
        # Usable frames in each window of clip_len, from a running count.
        counts = np.concatenate([[0], np.cumsum(usable[:, p])])
        start = 0
        while start + clip_len <= frame_count:
            if counts[start + clip_len] - counts[start] == clip_len:
                starts.append((start, p))
                start += stride
            else:
                start += 1
    return starts


def _empty(clip_len: int) -> ClipArrays:
    return ClipArrays(
        crops=np.zeros((0, clip_len, CROP_HEIGHT, CROP_WIDTH, 3), dtype=np.uint8),
        joints_cam=np.zeros((0, clip_len, 24, 3), dtype=np.float32),
        crop_boxes=np.zeros((0, clip_len, 3), dtype=np.float32),
        intrinsics=np.zeros((0, 3, 3), dtype=np.float32),
        reliable=np.zeros((0, clip_len), dtype=bool),
    )
