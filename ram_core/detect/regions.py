"""Detection in parts of a frame: where a hidden person may come back.

Between the detector's regular frames SegFollow carries people on their masks alone, so
someone who comes out from behind a pillar or another person is found only at the next
detection, up to K - 1 frames late. Detecting the whole frame more often costs its pixels
every time; a window around each hidden person's gate costs a few percent of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ram_core.detect.boxes import box_area, iou_matrix, union_box
from ram_core.types import Detection, Detector, Frame

# A box this close to a window's side that is not the frame's side is a person the window
# cuts: their box is the window's, not theirs.
CUT_MARGIN_PX = 2.0


def merge_windows(
    regions: Sequence[np.ndarray], width: int, height: int, min_side_px: float
) -> list[np.ndarray]:
    """Integer windows (x0, y0, x1, y1) inside the frame covering ``regions``: each grown to
    at least ``min_side_px`` a side about its centre, overlapping ones joined into their
    union until none overlap."""
    windows = []
    for region in regions:
        x0, y0, x1, y1 = np.asarray(region, dtype=np.float64)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half_w = max(x1 - x0, min_side_px) / 2
        half_h = max(y1 - y0, min_side_px) / 2
        window = np.array(
            [
                max(0.0, np.floor(cx - half_w)),
                max(0.0, np.floor(cy - half_h)),
                min(float(width), np.ceil(cx + half_w)),
                min(float(height), np.ceil(cy + half_h)),
            ]
        )
        if window[2] > window[0] and window[3] > window[1]:
            windows.append(window)
    merged: list[np.ndarray] = []
    for window in windows:
        # Absorb every merged window this one overlaps; a grown union may reach ones
        # passed over, so look again from the start after each.
        i = 0
        while i < len(merged):
            if iou_matrix(merged[i], window)[0, 0] > 0:
                window = union_box(merged.pop(i), window)
                i = 0
            else:
                i += 1
        merged.append(window)
    return [w.astype(np.int64) for w in merged]


def detect_in_windows(
    detector: Detector, frame: Frame, windows: Sequence[np.ndarray], full_frame_share: float
) -> list[Detection]:
    """The detector run on each window's crop, boxes in the frame's pixels; people a window
    cuts are left out. When the windows cover ``full_frame_share`` of the frame or more, the
    whole frame is detected instead (the detector's cost grows with the pixels)."""
    height, width = frame.rgb.shape[:2]
    if sum(float(box_area(w)) for w in windows) >= full_frame_share * width * height:
        return list(detector.detect(frame))
    found: list[Detection] = []
    for x0, y0, x1, y1 in windows:
        crop = Frame(index=frame.index, rgb=np.ascontiguousarray(frame.rgb[y0:y1, x0:x1]))
        # The window's sides that lie inside the frame (left, top, right, bottom).
        inner = np.array([x0 > 0, y0 > 0, x1 < width, y1 < height], dtype=bool)
        for detection in detector.detect(crop):
            box = np.asarray(detection.box_xyxy, dtype=np.float64)
            gaps = np.array([box[0], box[1], (x1 - x0) - box[2], (y1 - y0) - box[3]])
            if np.any(inner & (gaps <= CUT_MARGIN_PX)):
                continue
            keypoints = detection.keypoints
            if keypoints is not None:
                keypoints = np.asarray(keypoints, dtype=np.float64).copy()
                keypoints[:, :2] += (x0, y0)
            found.append(
                Detection(
                    box_xyxy=box + np.array([x0, y0, x0, y0], dtype=np.float64),
                    score=detection.score,
                    keypoints=keypoints,
                )
            )
    return found
