"""BlazePose's landmark model (MediaPipe Pose, full) run by us on LiteRT, one pass per person.

MediaPipe's own Python package runs this model inside its graph runtime, which has no wheels
for Python 3.13 and keeps one native graph per tracked person. Here the model file
(``pose_landmark_full.tflite``, Apache-2.0, from the mediapipe 0.10.14 wheel: see
``ram_core.models.pose_models``) runs on LiteRT's interpreter (``ai-edge-litert``, wheels for
Python 3.11-3.13), one interpreter for everyone, batched over the people of a frame. One pass
gives the 33 image landmarks, the 33 metric world landmarks and the person's mask.

The region of interest (ROI) is a square, possibly turned, around the person: from the
tracker's box for a person seen for the first time, else from the person's own landmarks of
the previous frame (the two extra alignment landmarks 33, hips centre, and 34, a point on the
circle around the body), as MediaPipe's tracking mode does. Where it has no person, the
model's pose flag is low and the person is reported as not found.

Model outputs, checked against MediaPipe 0.10.14's graph on the same crops (tests): landmarks
(39 x 5: x and y in input pixels, z, visibility and presence logits), a pose flag (a
probability), segmentation logits (256 x 256), heatmaps (64 x 64 x 39, used to refine x and y
as MediaPipe does) and world landmarks (39 x 3, metres, hip-centred, turned with the ROI).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INPUT_SIZE = 256
HEATMAP_SIZE = 64
NUM_MODEL_LANDMARKS = 39  # 33 body landmarks + 2 ROI alignment points + 4 auxiliary
NUM_LANDMARKS = 33
HIPS_CENTRE, BODY_CIRCLE = 33, 34
# MediaPipe's pose ROI: the square around the alignment circle is enlarged by this factor.
ROI_SCALE = 1.25
# MediaPipe's heatmap refinement: a 7 x 7 window, refined where its peak is this confident.
REFINE_KERNEL = 7
REFINE_MIN_CONFIDENCE = 0.5
# Crops per interpreter call. Measured on the real street clip (2 cores), see
# benchmarks/results/real_clip.md: the peak memory no longer follows the largest crowd.
DEFAULT_MAX_BATCH = 4


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


@dataclass(frozen=True)
class PoseRoi:
    """A square region of the frame in pixels: centre (x, y), side, and rotation (radians).

    rotation turns the crop's axes: the crop's x axis runs along (cos r, sin r) in the
    image, its y axis (down) along (-sin r, cos r). 0 is an upright crop.
    """

    centre_x: float
    centre_y: float
    side: float
    rotation: float = 0.0

    def crop_to_image(self) -> np.ndarray:
        """(2, 3) affine map from input pixels (0..INPUT_SIZE) to frame pixels."""
        scale = self.side / INPUT_SIZE
        cos, sin = np.cos(self.rotation), np.sin(self.rotation)
        linear = scale * np.array([[cos, -sin], [sin, cos]])
        half = INPUT_SIZE / 2.0
        offset = np.array([self.centre_x, self.centre_y]) - linear @ np.array([half, half])
        return np.column_stack([linear, offset])

    def image_to_crop(self) -> np.ndarray:
        """(2, 3) affine map from frame pixels to input pixels (the inverse of a scaled
        rotation is its transpose over the scale)."""
        forward = self.crop_to_image()
        inverse = forward[:, :2].T / (self.side / INPUT_SIZE) ** 2
        return np.column_stack([inverse, -inverse @ forward[:, 2]])

    def bounds(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """Integer (x0, y0, x1, y1) around the turned square, clipped to the frame."""
        corners = np.array([[0, 0], [INPUT_SIZE, 0], [0, INPUT_SIZE], [INPUT_SIZE, INPUT_SIZE]])
        mapped = apply_affine(self.crop_to_image(), corners.astype(np.float64))
        x0 = max(0, int(np.floor(mapped[:, 0].min())))
        y0 = max(0, int(np.floor(mapped[:, 1].min())))
        x1 = min(width, int(np.ceil(mapped[:, 0].max())))
        y1 = min(height, int(np.ceil(mapped[:, 1].max())))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return x0, y0, x1, y1


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """points (N, 2) through a (2, 3) affine map."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def roi_from_box(box_xyxy: np.ndarray, scale: float) -> PoseRoi:
    """An upright square on the box centre, ``scale`` times the box's longer side."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    side = max(x1 - x0, y1 - y0, 1.0) * scale
    return PoseRoi((x0 + x1) / 2.0, (y0 + y1) / 2.0, side, 0.0)


def roi_from_landmarks(points_px: np.ndarray) -> PoseRoi:
    """MediaPipe's tracking ROI from a pose's 39 landmarks (N >= 35, 2) in frame pixels.

    Centred on the hips centre, turned so that the hips-to-circle direction is up, side
    ``2 * ROI_SCALE`` times the circle's radius.
    """
    centre = points_px[HIPS_CENTRE]
    up = points_px[BODY_CIRCLE] - centre
    radius = float(np.hypot(*up))
    rotation = float(np.arctan2(up[0], -up[1])) if radius > 0 else 0.0
    return PoseRoi(float(centre[0]), float(centre[1]), max(2.0 * ROI_SCALE * radius, 1.0), rotation)


def refine_from_heatmap(points_input: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """MediaPipe's refinement of landmark x, y (N, 2, input pixels) from heatmaps (h, w, N).

    Where the heatmap's sigmoid peaks at REFINE_MIN_CONFIDENCE or more in a REFINE_KERNEL
    window around a landmark, the landmark moves to the confidence-weighted mean there.
    """
    hm_h, hm_w, count = heatmap.shape
    count = min(count, len(points_input))
    refined = points_input.copy()
    offset = REFINE_KERNEL // 2
    # Every landmark's window at once: cells off the heatmap count as confidence 0.
    cols = np.floor(points_input[:count, 0] / INPUT_SIZE * hm_w).astype(np.int64)
    rows = np.floor(points_input[:count, 1] / INPUT_SIZE * hm_h).astype(np.int64)
    inside = (cols >= 0) & (cols < hm_w) & (rows >= 0) & (rows < hm_h)
    span = np.arange(-offset, offset + 1)
    window_rows = rows[:, None, None] + span[None, :, None]  # (N, K, 1)
    window_cols = cols[:, None, None] + span[None, None, :]  # (N, 1, K)
    valid = (window_rows >= 0) & (window_rows < hm_h) & (window_cols >= 0) & (window_cols < hm_w)
    logits = heatmap[
        np.clip(window_rows, 0, hm_h - 1), np.clip(window_cols, 0, hm_w - 1),
        np.arange(count)[:, None, None],
    ]  # fmt: skip
    window = np.where(valid, _sigmoid(logits), 0.0)  # (N, K, K)
    total = window.sum(axis=(1, 2))
    refine = inside & (window.max(axis=(1, 2)) >= REFINE_MIN_CONFIDENCE) & (total > 0)
    safe = np.where(total > 0, total, 1.0)
    mean_col = (window * window_cols).sum(axis=(1, 2)) / safe
    mean_row = (window * window_rows).sum(axis=(1, 2)) / safe
    refined[:count, 0] = np.where(refine, mean_col / hm_w * INPUT_SIZE, refined[:count, 0])
    refined[:count, 1] = np.where(refine, mean_row / hm_h * INPUT_SIZE, refined[:count, 1])
    return refined


@dataclass(frozen=True)
class PoseEstimate:
    """One person's pass through the model, in frame pixels.

    points_px: (39, 2) landmarks including the alignment points. visibility: (33,) in [0, 1].
    world_m: (33, 3) metres, hip-centred, x right, y down, z away from the camera.
    pose_score: the model's probability that a person fills the ROI.
    probability: the mask probability over ``bounds`` (rows, cols of that box).
    bounds: (x0, y0, x1, y1) of ``probability`` in the frame.
    """

    roi: PoseRoi
    points_px: np.ndarray
    visibility: np.ndarray
    world_m: np.ndarray
    pose_score: float
    probability: np.ndarray
    bounds: tuple[int, int, int, int]


def default_num_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class PoseLandmarkModel:
    """The landmark model on a LiteRT interpreter; ``estimate`` runs a batch of ROIs."""

    def __init__(
        self,
        model_path: str | Path,
        num_threads: int | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.max_batch = max_batch

        # LiteRT logs "Created TensorFlow Lite XNNPACK delegate" on the stderr descriptor;
        # `ram-core run` hides it unless --verbose (ram_core.io.quiet).
        self._interpreter = Interpreter(
            model_path=str(model_path), num_threads=num_threads or default_num_threads()
        )
        self._interpreter.allocate_tensors()
        self._batch = 1
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self._interpreter.get_output_details()}
        names = sorted(outputs, key=lambda n: (len(n), n))  # Identity, Identity_1, ...
        if len(names) != 5:
            raise ValueError(
                f"{model_path} is not BlazePose's landmark model ({len(names)} outputs)"
            )
        self._landmarks, self._flag, self._segmentation, self._heatmap, self._world = (
            outputs[n] for n in names
        )

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input, [batch, INPUT_SIZE, INPUT_SIZE, 3])
            self._interpreter.allocate_tensors()
            self._batch = batch

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """The model's outputs for a batch of crops, at most ``max_batch`` per call: the
        interpreter's memory grows with its batch, so a crowd must not set the peak."""
        parts = []
        for start in range(0, len(batch), self.max_batch):
            chunk = batch[start : start + self.max_batch]
            self._resize(len(chunk))
            interpreter = self._interpreter
            interpreter.set_tensor(self._input, chunk)
            interpreter.invoke()
            parts.append(
                (
                    interpreter.get_tensor(self._landmarks).reshape(len(chunk), -1, 5),
                    interpreter.get_tensor(self._flag).reshape(len(chunk)),
                    interpreter.get_tensor(self._segmentation)[..., 0],
                    interpreter.get_tensor(self._heatmap),
                    interpreter.get_tensor(self._world).reshape(len(chunk), -1, 3),
                )
            )
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(outputs) for outputs in zip(*parts, strict=True))

    def estimate(
        self,
        rgb: np.ndarray,
        rois: Sequence[PoseRoi],
        keep_boxes: Sequence[np.ndarray | None] | None = None,
    ) -> list[PoseEstimate | None]:
        """One estimate per ROI of the frame (H, W, 3 uint8 RGB); None off the frame.

        keep_boxes: per ROI, a box (x0, y0, x1, y1) in frame pixels outside which the
        model's input is black, as it is outside the frame (None: the whole ROI).
        """
        import cv2

        height, width = rgb.shape[:2]
        keep_boxes = list(keep_boxes) if keep_boxes is not None else [None] * len(rois)
        if len(keep_boxes) != len(rois):
            raise ValueError("one keep box (or None) per ROI")
        kept = [(i, roi, roi.bounds(width, height)) for i, roi in enumerate(rois)]
        kept = [(i, roi, b) for i, roi, b in kept if b is not None]
        results: list[PoseEstimate | None] = [None] * len(rois)
        if not kept:
            return results
        crops = np.zeros((len(kept), INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
        for slot, (index, roi, _) in enumerate(kept):
            to_crop = roi.image_to_crop()
            crop = cv2.warpAffine(
                rgb,
                to_crop,
                (INPUT_SIZE, INPUT_SIZE),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(0, 0, 0),
            )
            keep = keep_boxes[index]
            if keep is None:
                crops[slot] = crop
                continue
            x0, y0, x1, y1 = (float(v) for v in keep)
            corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
            inside = np.zeros((INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)
            polygon = np.round(apply_affine(to_crop, corners)).astype(np.int32)
            cv2.fillConvexPoly(inside, polygon, 255)
            # A masked copy into the zeroed slot: a third of the time of boolean indexing.
            cv2.bitwise_and(crop, crop, dst=crops[slot], mask=inside)
        batch = np.empty(crops.shape, dtype=np.float32)
        np.multiply(crops, 1.0 / 255.0, out=batch, casting="unsafe")
        landmarks, flags, segmentation, heatmaps, world = self._run(batch)
        for slot, (index, roi, bounds) in enumerate(kept):
            points_input = refine_from_heatmap(
                landmarks[slot, :, :2].astype(np.float64), heatmaps[slot]
            )
            to_image = roi.crop_to_image()
            cos, sin = np.cos(roi.rotation), np.sin(roi.rotation)
            world_m = world[slot, :NUM_LANDMARKS].astype(np.float64)
            world_m[:, :2] = world_m[:, :2] @ np.array([[cos, sin], [-sin, cos]])
            x0, y0, x1, y1 = bounds
            # The mask's logits, turned back from the crop into the frame box.
            into_box = to_image.copy()
            into_box[:, 2] -= (x0, y0)
            logits = cv2.warpAffine(
                segmentation[slot],
                into_box,
                (x1 - x0, y1 - y0),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=-60.0,
            )
            results[index] = PoseEstimate(
                roi=roi,
                points_px=apply_affine(to_image, points_input),
                visibility=_sigmoid(landmarks[slot, :NUM_LANDMARKS, 3].astype(np.float64)),
                world_m=world_m,
                pose_score=float(flags[slot]),
                probability=_sigmoid(logits),
                bounds=bounds,
            )
        return results
