"""Lite segmenter: BlazePose (MediaPipe Pose's landmark model) run inside each prompt's box.

The model is single-person, so every prompt gets its own region of interest: a square of
``roi_scale`` times the box's longer side (after a box shorter than ``crop_min_height_per_width``
times its width is stretched, so a partly hidden person's crop still shows where the rest of
them would be), warped to the model's 256 x 256 input (small people are upscaled by the same
warp). The people of a frame go through the model together (``ram_core.segment.blazepose``:
LiteRT, one interpreter, no per-track state). One ``Observation`` comes back per prompt at
most: the thresholded mask restricted to the region (only the connected component holding the
pose), its box, the mean mask probability inside it, a visibility logit, a colour descriptor
of the masked pixels, and the 33 landmarks in full-frame pixels.

World landmark axes, checked on the rendered fixture ``tests/fixtures/people_frame.png``:
``world_m`` is metres, hip-centred, with x to the image right, y down and z away from the
camera; left / right are the person's own sides (landmark 11 is the person's left shoulder).
Against the ground-truth camera-frame joints of the rendered scenes, the world shoulder
vector and hips-to-head vector are in camera-aligned axes (median cosine ~0.97).

Exclusive mode (default): people already segmented in the frame are painted grey before a
person behind them is looked for, nearest first (lowest box bottom), and leftover masks
under ``min_mask_box_fraction`` of the prompt box are dropped, so a mostly hidden person's
crop cannot return the person in front of them a second time. People whose regions do not
overlap a nearer person's go through the model in one batch.

The region from the box, rather than from the previous frame's landmarks (MediaPipe's tracking
mode), was chosen on the tuning scenes (camera_pan, crossing, hidden_person; ground-truth full
boxes of people at least 80% visible): 2D error of the limb joints, median over person-frames,
1.57% of the box height from the box against 1.55% from the landmarks, 90th percentile 2.6%
against 3.0%, every person found by both; MediaPipe 0.10.14's own graph (static / tracking
mode) gave 1.65% / 1.61%, 98.6% / 98.8% found. The box needs no state per person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ram_core.segment.blazepose import (
    DEFAULT_MAX_BATCH,
    NUM_LANDMARKS,
    PoseEstimate,
    PoseLandmarkModel,
    PoseRoi,
    roi_from_box,
)
from ram_core.types import Frame, Observation, PoseLandmarks, Prompt

# Landmarks of the trunk and limbs (shoulders to ankles) that pick the mask component.
_BODY_LANDMARKS = np.arange(11, 29)
# Appearance layout: for the upper and the lower body, a joint hue x saturation histogram
# of the chromatic pixels, then a value histogram of all pixels (grey clothing has no hue).
_HUE_BINS, _SAT_BINS, _VALUE_BINS = 12, 3, 8
_SAT_MIN = 40  # OpenCV HSV saturation (0..255) below which hue is noise
_BLOCK_SIZES = (_HUE_BINS * _SAT_BINS, _VALUE_BINS) * 2
APPEARANCE_DIM = sum(_BLOCK_SIZES)
_BLOCK_STARTS = np.cumsum((0, *_BLOCK_SIZES[:-1]))
_HUE_SAT_SIZE = _HUE_BINS * _SAT_BINS
_HUE_STEP = 180 // _HUE_BINS
_SAT_STEP = (256 - _SAT_MIN) // _SAT_BINS
_VALUE_STEP = 256 // _VALUE_BINS
# Colour that replaces pixels of no concern (people already segmented in this frame, or
# outside a person's mask): a neutral mid grey.
NEUTRAL_GREY_RGB = (127, 127, 127)
# The landmark models by the config's name, as the weights registry names them.
POSE_MODELS = {"full": "blazepose_landmark_full", "lite": "blazepose_landmark_lite"}


@dataclass(frozen=True)
class LiteSegmenterConfig:
    """Region, threshold and painting settings of the BlazePose segmenter."""

    # The region's side over the box's longer side (MediaPipe enlarges its own by 1.25).
    roi_scale: float = 1.25
    # The model sees the box grown by this fraction of its size on each side; the rest of
    # the region is black, as MediaPipe letterboxes a crop (neighbours stay out of view).
    context_margin: float = 0.2
    # A box shorter than context_widen_below_px and narrower than this many times its
    # height is first widened to that, where the wider view covers no other prompt's box
    # (``prompt_contexts``). A small walker's predicted box, learnt from views with the
    # legs together, is narrower than they are a few frames on; a view cut to it hid
    # their arms and legs, and the model found nobody. On 39 scenes only the four
    # small_people changed: 93.2 / 87.6 / 90.7 / 85.3 -> 95.5 / 94.6 / 97.7 / 94.1 MOTA,
    # no ID switch. Widened beside other people it merged their masks (three ID switches
    # there), and for people of any size it cost hidden_person 7.8 and a long occlusion
    # 10.5.
    context_min_width_per_height: float = 0.4
    context_widen_below_px: float = 80.0
    crop_min_height_per_width: float = 2.0  # a standing person's box is ~2.2 times as high
    mask_threshold: float = 0.5
    # Mean landmark visibility at which object_score is 0 (the logit's zero point).
    visibility_zero: float = 0.5
    # The model's pose flag below which the region holds nobody (MediaPipe's default 0.5).
    min_pose_score: float = 0.5
    # Paint out people already segmented in this frame before looking for the next one.
    exclusive: bool = True
    # Masks smaller than this share of the prompt box are leftovers, not a person.
    min_mask_box_fraction: float = 0.05
    # Which BlazePose landmark model: "full" or "lite" (POSE_MODELS).
    model: str = "full"
    # Threads of the model's interpreter; 0 takes up to 4 of this machine's cores.
    num_threads: int = 0
    # Crops per model call at most: the interpreter's memory grows with its batch.
    max_batch: int = DEFAULT_MAX_BATCH

    def __post_init__(self) -> None:
        if self.context_margin < 0:
            raise ValueError("context_margin must be >= 0")
        if self.context_min_width_per_height < 0 or self.context_widen_below_px < 0:
            raise ValueError("context_min_width_per_height and context_widen_below_px must be >= 0")
        if not 0.5 <= self.roi_scale <= 4.0:
            raise ValueError(f"roi_scale must be in [0.5, 4], got {self.roi_scale}")
        if self.crop_min_height_per_width < 0:
            raise ValueError("crop_min_height_per_width must be >= 0")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError("mask_threshold must be in (0, 1)")
        if not 0.0 < self.visibility_zero < 1.0:
            raise ValueError("visibility_zero must be in (0, 1)")
        if not 0.0 <= self.min_pose_score < 1.0:
            raise ValueError("min_pose_score must be in [0, 1)")
        if not 0.0 <= self.min_mask_box_fraction < 1.0:
            raise ValueError("min_mask_box_fraction must be in [0, 1)")
        if self.model not in POSE_MODELS:
            raise ValueError(f"model must be one of {sorted(POSE_MODELS)}, got {self.model!r}")
        if self.num_threads < 0:
            raise ValueError("num_threads must be >= 0")
        if self.max_batch < 1:
            raise ValueError("max_batch must be >= 1")


# ---------------------------------------------------------------- pure helpers


def visibility_logit(visibility: np.ndarray, zero_at: float = 0.5) -> float:
    """Logit of the mean visibility, shifted so that mean == zero_at gives 0."""
    mean = float(np.clip(np.mean(visibility), 1e-4, 1 - 1e-4))
    return float(np.log(mean / (1 - mean)) - np.log(zero_at / (1 - zero_at)))


def pose_component(mask: np.ndarray, points_px: np.ndarray, visibility: np.ndarray) -> np.ndarray:
    """The connected component of a bool mask (h, w) that holds the most body landmarks.

    points_px: (33, 2) in mask pixels. Falls back to the largest component when no visible
    landmark lands on the mask.
    """
    import cv2

    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 2:  # background plus at most one component
        return mask.copy()
    h, w = mask.shape
    body = points_px[_BODY_LANDMARKS]
    seen = visibility[_BODY_LANDMARKS] > 0.5
    cols = np.clip(np.round(body[:, 0]).astype(int), 0, w - 1)
    rows = np.clip(np.round(body[:, 1]).astype(int), 0, h - 1)
    inside = seen & (body[:, 0] >= 0) & (body[:, 0] < w) & (body[:, 1] >= 0) & (body[:, 1] < h)
    votes = np.bincount(labels[rows[inside], cols[inside]], minlength=count)
    votes[0] = 0
    areas = np.bincount(labels.ravel(), minlength=count)
    areas[0] = 0
    # Votes first, area breaks ties (and decides when no landmark is on the mask).
    best = int(np.lexsort((areas, votes))[-1])
    return labels == best


# Bones of MediaPipe's 33-landmark body (arms, legs, feet, shoulders, hips).
_LIMBS = (
    (11, 13), (13, 15), (12, 14), (14, 16), (11, 12), (23, 24),
    (23, 25), (25, 27), (27, 29), (29, 31), (27, 31),
    (24, 26), (26, 28), (28, 30), (30, 32), (28, 32),
)  # fmt: skip
_TORSO = (11, 12, 24, 23)


def body_region(
    shape: tuple[int, int], points_px: np.ndarray, visibility: np.ndarray, min_visibility: float
) -> np.ndarray:
    """(h, w) bool: the area the pose's own body can cover — thick limbs, torso, head.

    MediaPipe's mask is of the *person class*: two people who touch in the crop come out as
    one blob. Keeping the part near this pose's skeleton gives a per-person mask.
    """
    import cv2

    region = np.zeros(shape, dtype=np.uint8)
    seen = visibility > min_visibility
    body = points_px[11:33][seen[11:33]]
    if body.shape[0] < 2:
        return np.ones(shape, dtype=bool)
    extent = float(np.ptp(body[:, 1])) or float(np.ptp(body[:, 0])) or 1.0
    thickness = max(3, round(0.14 * extent))
    points = np.clip(np.round(points_px), -(2**15), 2**15).astype(np.int32)
    if seen[list(_TORSO)].all():
        cv2.fillPoly(region, [points[list(_TORSO)]], 1)
    for a, b in _LIMBS:
        if seen[a] and seen[b]:
            cv2.line(region, tuple(points[a]), tuple(points[b]), 1, thickness)
    head = [i for i in range(11) if seen[i]]
    if head:
        centre = points_px[head].mean(axis=0)
        radius = max(thickness, round(0.09 * extent))
        cv2.circle(region, tuple(np.round(centre).astype(int)), radius, 1, -1)
    return region.astype(bool)


def appearance_descriptor(rgb: np.ndarray, mask: np.ndarray, split_row: float) -> np.ndarray:
    """Colour statistics of the masked pixels, upper / lower body apart. -> (D,) float32.

    rgb: (h, w, 3) uint8; mask: (h, w) bool; split_row: image row between the two halves
    (the hips). Each block (hue x saturation, value; per half) sums to 1, or is all zero
    when the half has no pixels.
    """
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    pixels = hsv[mask].astype(np.int64)
    lower = np.nonzero(mask)[0] >= split_row
    hue, sat, value = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    # The bins' edges are whole numbers (hue 0-180 in 12, saturation 40-256 in 3, value
    # 0-256 in 8), so integer division bins exactly as a histogram over those ranges.
    chroma = sat >= _SAT_MIN
    hue_sat_bin = np.minimum(hue // _HUE_STEP, _HUE_BINS - 1) * _SAT_BINS + np.minimum(
        (sat - _SAT_MIN) // _SAT_STEP, _SAT_BINS - 1
    )
    hue_sat = np.bincount(
        hue_sat_bin[chroma] + lower[chroma] * _HUE_SAT_SIZE, minlength=2 * _HUE_SAT_SIZE
    )
    values = np.bincount(
        np.minimum(value // _VALUE_STEP, _VALUE_BINS - 1) + lower * _VALUE_BINS,
        minlength=2 * _VALUE_BINS,
    )
    blocks = []
    for half in (0, 1):
        for block in (
            hue_sat[half * _HUE_SAT_SIZE : (half + 1) * _HUE_SAT_SIZE],
            values[half * _VALUE_BINS : (half + 1) * _VALUE_BINS],
        ):
            block = block.astype(np.float64)
            total = block.sum()
            blocks.append(block / total if total > 0 else block)
    return np.concatenate(blocks).astype(np.float32)


def appearance_similarity(memory: np.ndarray, appearance: np.ndarray) -> float:
    """Mean Bhattacharyya coefficient over the blocks both descriptors fill. -> [0, 1].

    Each block is renormalised first, so an EMA of descriptors works as a memory. Grey
    clothing leaves a hue block empty; such blocks are skipped rather than counted as 0.
    """
    memory = np.asarray(memory, dtype=np.float64).ravel()
    appearance = np.asarray(appearance, dtype=np.float64).ravel()
    if memory.shape != (APPEARANCE_DIM,) or appearance.shape != (APPEARANCE_DIM,):
        raise ValueError(f"appearance descriptors must have shape ({APPEARANCE_DIM},)")
    a = np.maximum(memory, 0.0)
    b = np.maximum(appearance, 0.0)
    a_sums = np.add.reduceat(a, _BLOCK_STARTS)
    b_sums = np.add.reduceat(b, _BLOCK_STARTS)
    filled = (a_sums > 0) & (b_sums > 0)
    if not filled.any():
        return 0.0
    a_share = a / np.repeat(np.where(a_sums > 0, a_sums, 1.0), _BLOCK_SIZES)
    b_share = b / np.repeat(np.where(b_sums > 0, b_sums, 1.0), _BLOCK_SIZES)
    coefficients = np.add.reduceat(np.sqrt(a_share * b_share), _BLOCK_STARTS)[filled]
    return float(np.clip(np.mean(coefficients), 0.0, 1.0))


# ---------------------------------------------------------------- the model side


def stretched_box(box_xyxy: np.ndarray, min_height_per_width: float) -> np.ndarray:
    """A box shorter than ``min_height_per_width`` times its width, stretched to that height
    about its centre (a partly hidden person's box shows only the upper body)."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    wanted_h = min_height_per_width * (x1 - x0)
    if y1 - y0 < wanted_h:
        centre = (y0 + y1) / 2
        y0, y1 = centre - wanted_h / 2, centre + wanted_h / 2
    return np.array([x0, y0, x1, y1])


def box_roi(box_xyxy: np.ndarray, config: LiteSegmenterConfig) -> PoseRoi:
    """The prompt box's region: stretched to a standing person's height, then squared."""
    return roi_from_box(stretched_box(box_xyxy, config.crop_min_height_per_width), config.roi_scale)


def context_box(
    box_xyxy: np.ndarray, config: LiteSegmenterConfig, widen: bool = True
) -> np.ndarray:
    """What of the region the model may see: the stretched box — widened about its centre
    to ``context_min_width_per_height`` of its height if it is shorter than
    ``context_widen_below_px`` and ``widen`` — grown by the margin."""
    x0, y0, x1, y1 = stretched_box(box_xyxy, config.crop_min_height_per_width)
    height = y1 - y0
    wanted_w = config.context_min_width_per_height * height
    if widen and height < config.context_widen_below_px and x1 - x0 < wanted_w:
        centre = (x0 + x1) / 2
        x0, x1 = centre - wanted_w / 2, centre + wanted_w / 2
    dx, dy = config.context_margin * (x1 - x0), config.context_margin * (y1 - y0)
    return np.array([x0 - dx, y0 - dy, x1 + dx, y1 + dy])


def prompt_contexts(
    boxes_xyxy: Sequence[np.ndarray], config: LiteSegmenterConfig
) -> list[np.ndarray]:
    """Each prompt box's ``context_box``, widened only where the wider view covers no
    other prompt's box: beside someone, it showed the model both, and their masks merged."""
    boxes = [np.asarray(b, dtype=np.float64) for b in boxes_xyxy]
    contexts = []
    for k, box in enumerate(boxes):
        view = context_box(box, config)
        if any(_overlap(view, other) for j, other in enumerate(boxes) if j != k):
            view = context_box(box, config, widen=False)
        contexts.append(view)
    return contexts


def overlap_waves(bounds: Sequence[tuple[int, int, int, int] | None]) -> list[int]:
    """For regions listed nearest first, the batch each can run in: 0 when it overlaps no
    nearer region, else one more than the latest nearer region it overlaps."""
    waves: list[int] = []
    for index, box in enumerate(bounds):
        wave = 0
        if box is not None:
            for nearer in range(index):
                other = bounds[nearer]
                if other is not None and _overlap(box, other):
                    wave = max(wave, waves[nearer] + 1)
        waves.append(wave)
    return waves


def _clip_box(box: np.ndarray, bounds: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = bounds
    return (
        max(x0, int(np.floor(box[0]))),
        max(y0, int(np.floor(box[1]))),
        min(x1, int(np.ceil(box[2]))),
        min(y1, int(np.ceil(box[3]))),
    )


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def default_model_path(model: str = "full") -> Path:
    """The landmark model ``model`` ("full" or "lite") in the weights folder;
    MissingModelError (exit 3) naming the command that fetches it when absent."""
    from ram_core.models import weights

    name = POSE_MODELS[model]
    if weights.get_model(name).archive_member:
        return weights.extract_member(name)
    return weights.require(name)


class BlazePoseSegmenter:
    """``Segmenter`` over BlazePose's landmark model (masks, landmarks, world landmarks).

    Holds one LiteRT interpreter: use it as a context manager or call ``close()``.
    """

    def __init__(
        self, config: LiteSegmenterConfig | None = None, model_path: str | Path | None = None
    ) -> None:
        self.config = config or LiteSegmenterConfig()
        self._model: PoseLandmarkModel | None = PoseLandmarkModel(
            model_path or default_model_path(self.config.model),
            self.config.num_threads or None,
            self.config.max_batch,
        )

    def forget(self, track_id: int) -> None:
        """Nothing is kept per track: every frame's region comes from its prompt box."""
        del track_id

    def close(self) -> None:
        self._model = None

    def __enter__(self) -> BlazePoseSegmenter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def appearance_similarity(self, memory: np.ndarray, appearance: np.ndarray) -> float:
        return appearance_similarity(memory, appearance)

    def segment(self, frame: Frame, prompts: Sequence[Prompt]) -> list[list[Observation]]:
        if self._model is None:
            raise RuntimeError("BlazePoseSegmenter is closed")
        rgb = np.asarray(frame.rgb)
        height, width = rgb.shape[:2]
        results: list[list[Observation]] = [[] for _ in prompts]
        # Nearest people first (lowest box bottom on a ground plane seen from above the
        # feet): later prompts see the people already found painted out.
        order = [
            int(i) for i in np.argsort([-float(p.box_xyxy[3]) for p in prompts], kind="stable")
        ]
        rois = [box_roi(prompts[i].box_xyxy, self.config) for i in order]
        contexts = prompt_contexts([prompts[i].box_xyxy for i in order], self.config)
        bounds = [roi.bounds(width, height) for roi in rois]
        # What the model sees of each region: people whose views do not overlap run at once.
        seen = [
            None if b is None else _clip_box(c, b) for b, c in zip(bounds, contexts, strict=True)
        ]
        waves = overlap_waves(seen) if self.config.exclusive else [0] * len(order)
        taken = np.zeros((height, width), dtype=bool)
        for wave in range(max(waves, default=-1) + 1):
            members = [k for k, w in enumerate(waves) if w == wave and bounds[k] is not None]
            if not members:
                continue
            source = rgb
            if taken.any():
                source = rgb.copy()
                source[taken] = NEUTRAL_GREY_RGB
            estimates = self._model.estimate(
                source, [rois[k] for k in members], [contexts[k] for k in members]
            )
            for k, estimate in zip(members, estimates, strict=True):
                index = order[k]
                if estimate is None or estimate.pose_score < self.config.min_pose_score:
                    continue
                found = self._observation(source, estimate, prompts[index], taken)
                if found is not None:
                    results[index] = [found]
                    if self.config.exclusive:
                        taken |= found.mask
        return results

    def _observation(
        self, rgb: np.ndarray, estimate: PoseEstimate, prompt: Prompt, taken: np.ndarray
    ) -> Observation | None:
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = estimate.bounds
        probability = estimate.probability
        crop_taken = taken[y0:y1, x0:x1]
        points_crop = estimate.points_px[:NUM_LANDMARKS] - np.array([x0, y0], dtype=np.float64)
        visibility = estimate.visibility
        crop_mask = (probability > self.config.mask_threshold) & ~crop_taken
        crop_mask &= body_region(crop_mask.shape, points_crop, visibility, 0.3)
        if not crop_mask.any():
            return None
        crop_mask = pose_component(crop_mask, points_crop, visibility)
        px1, py1, px2, py2 = (float(v) for v in prompt.box_xyxy)
        prompt_area = max(px2 - px1, 1.0) * max(py2 - py1, 1.0)
        if crop_mask.sum() < self.config.min_mask_box_fraction * prompt_area:
            return None
        rows = np.flatnonzero(crop_mask.any(axis=1))
        cols = np.flatnonzero(crop_mask.any(axis=0))
        box = np.array(
            [x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1], dtype=np.float64
        )
        hips_row = float(np.mean(points_crop[[23, 24], 1]))
        if not rows[0] < hips_row < rows[-1]:
            hips_row = float(rows[0] + rows[-1]) / 2
        full_mask = np.zeros((height, width), dtype=bool)
        full_mask[y0:y1, x0:x1] = crop_mask
        return Observation(
            mask=full_mask,
            box_xyxy=box,
            quality=float(probability[crop_mask].mean()),
            object_score=visibility_logit(visibility, self.config.visibility_zero),
            appearance=appearance_descriptor(rgb[y0:y1, x0:x1], crop_mask, hips_row),
            landmarks=PoseLandmarks(
                image_px=points_crop + np.array([x0, y0], dtype=np.float64),
                visibility=visibility.astype(np.float64),
                world_m=estimate.world_m.astype(np.float64),
            ),
        )
