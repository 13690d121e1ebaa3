"""Box geometry: formats, IoU, non-maximum suppression. Boxes are float pixels."""

from __future__ import annotations

import itertools

import numpy as np


def xyxy_to_xyah(box_xyxy: np.ndarray) -> np.ndarray:
    """(..., 4) corners -> (..., 4) centre x, centre y, aspect w/h, height."""
    b = np.asarray(box_xyxy, dtype=np.float64)
    w = b[..., 2] - b[..., 0]
    h = np.maximum(b[..., 3] - b[..., 1], 1e-6)
    return np.stack([(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2, w / h, h], axis=-1)


def xyah_to_xyxy(box_xyah: np.ndarray) -> np.ndarray:
    """(..., 4) centre x, centre y, aspect w/h, height -> (..., 4) corners."""
    b = np.asarray(box_xyah, dtype=np.float64)
    w = b[..., 2] * b[..., 3]
    h = b[..., 3]
    return np.stack(
        [b[..., 0] - w / 2, b[..., 1] - h / 2, b[..., 0] + w / 2, b[..., 1] + h / 2], axis=-1
    )


def box_area(box_xyxy: np.ndarray) -> np.ndarray:
    b = np.asarray(box_xyxy, dtype=np.float64)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def intersection_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """The area every pair shares: (A, 4), (B, 4) -> (A, B)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of every pair: (A, 4), (B, 4) -> (A, B)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    inter = intersection_matrix(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def mutual_best_matches(overlaps: np.ndarray, min_overlap: float) -> dict[int, int]:
    """Row -> column of the pairs of an (R, C) score matrix that are each other's best, at
    ``min_overlap`` or more."""
    matches: dict[int, int] = {}
    if overlaps.size == 0:
        return matches
    best_of_row = np.argmax(overlaps, axis=1)
    best_of_column = np.argmax(overlaps, axis=0)
    for row, column in enumerate(best_of_row):
        if overlaps[row, column] >= min_overlap and best_of_column[column] == row:
            matches[row] = int(column)
    return matches


def union_box(box_a: np.ndarray, box_b: np.ndarray) -> np.ndarray:
    """The smallest box (4,) holding both boxes."""
    a = np.asarray(box_a, dtype=np.float64)
    b = np.asarray(box_b, dtype=np.float64)
    return np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])


def iou(box_a: np.ndarray, box_b: np.ndarray) -> float:
    return float(iou_matrix(box_a, box_b)[0, 0])


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """Tight box (4,) of a bool mask (H, W) in pixel-corner coordinates; None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


def clip_box(box_xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    b = np.asarray(box_xyxy, dtype=np.float64).copy()
    b[..., [0, 2]] = np.clip(b[..., [0, 2]], 0, width)
    b[..., [1, 3]] = np.clip(b[..., [1, 3]], 0, height)
    return b


def whole_views(
    frames: np.ndarray, sizes: np.ndarray, seen: np.ndarray, whole_share: float, window: int
) -> np.ndarray:
    """(N,) bool: one track's seen rows whose size (a box's area, or height: ``sizes``, (N,))
    is at least ``whole_share`` of the largest seen in the ``window`` frames before it
    (itself included)."""
    frames = np.asarray(frames, dtype=np.float64)
    seen = np.asarray(seen, dtype=bool)
    sizes = np.where(seen, np.asarray(sizes, dtype=np.float64), 0.0)
    first_recent = np.searchsorted(frames, frames - window)
    whole = np.zeros_like(seen)
    for i in np.flatnonzero(seen):
        whole[i] = sizes[i] >= whole_share * sizes[first_recent[i] : i + 1].max()
    return whole


def bridge_gaps(
    frames: np.ndarray,
    boxes_xyxy: np.ndarray,
    seen: np.ndarray,
    whole_share: float = 0.6,
    window: int = 12,
    view_boxes_xyxy: np.ndarray | None = None,
) -> np.ndarray:
    """One track's boxes with every row between two whole views of the person moved onto
    the straight path between those views' boxes, at each frame's time.

    frames: (N,) increasing; boxes_xyxy: (N, 4); seen: (N,) bool. A whole view is a seen
    row whose box has at least ``whole_share`` of the largest seen box of the ``window``
    frames before it: the sliver of someone going behind a screen is no anchor, its box is
    a fraction of the body, and it is replaced too, so that the box is the whole person's
    wherever they are partly or wholly hidden. Rows before the first or after the last
    whole view keep their boxes. Offline, the box where a hidden person came back is known,
    and the line to it is nearer the truth than the motion model's guess, whose velocity
    was learnt while the person was going behind something.
    """
    frames = np.asarray(frames, dtype=np.float64)
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    out = boxes.copy()
    views = boxes if view_boxes_xyxy is None else np.asarray(view_boxes_xyxy, dtype=np.float64)
    anchors = np.flatnonzero(whole_views(frames, box_area(views), seen, whole_share, window))
    for before, after in itertools.pairwise(anchors):
        if after - before < 2:
            continue
        inside = np.arange(before + 1, after)
        share = (frames[inside] - frames[before]) / (frames[after] - frames[before])
        out[inside] = boxes[before] + share[:, None] * (boxes[after] - boxes[before])
    return out


def short_dropouts(
    frames: np.ndarray,
    boxes_xyxy: np.ndarray,
    clear: np.ndarray,
    seen: np.ndarray,
    max_frames: int,
    as_tall: float = 0.9,
    window: int = 12,
) -> np.ndarray:
    """(N,) bool: one track's unseen rows in a run of at most ``max_frames`` consecutive
    frames between two clear views each at least ``as_tall`` as high as the tallest seen in
    the ``window`` frames before it.

    frames: (N,) increasing; boxes_xyxy: (N, 4); clear: (N,) seen and not counted as hidden;
    seen: (N,) the segmenter found the person. A person the pose model loses for a frame
    or two, whole before and after, was not hidden; someone going behind a pillar or a
    wall is seen cut first. Height, not area: a small walker's mask is a third narrower
    when the legs pass each other, and no shorter.
    """
    frames = np.asarray(frames, dtype=np.int64)
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    seen = np.asarray(seen, dtype=bool)
    dropped = np.zeros(len(frames), dtype=bool)
    if max_frames < 1:
        return dropped
    heights = boxes[:, 3] - boxes[:, 1]
    whole = whole_views(frames, heights, seen, as_tall, window) & np.asarray(clear, dtype=bool)
    for before, after in itertools.pairwise(np.flatnonzero(seen)):
        gap = after - before - 1
        if not 0 < gap <= max_frames or frames[after] - frames[before] != gap + 1:
            continue
        if whole[before] and whole[after]:
            dropped[before + 1 : after] = True
    return dropped
