"""The full backend's person detector: torchvision's Keypoint R-CNN (ResNet-50 FPN, COCO).

It finds people with 17 COCO body keypoints each, which become SAM2 point prompts
(``keypoint_prompts``). It implements the ``Detector`` protocol of ``ram_core.types``.

The weights are the published COCO state dict (``keypointrcnn_resnet50_fpn_coco``) that
``ram-core weights download`` fetches; the path is handed in, torchvision's own downloader
never runs. The network is built the way torchvision builds it for those weights: a ResNet-50
whose batch norms are frozen (``FrozenBatchNorm2d``, eps 0 for the COCO_V1 file), not the
trainable ``BatchNorm2d`` that ``keypointrcnn_resnet50_fpn(weights=None)`` picks. Frozen batch
norm also drops the ``num_batches_tracked`` counters a trainable model's state dict carries,
so both layouts of the same architecture load strictly.

Resizing is torchvision's own (``GeneralizedRCNNTransform``): the shorter side goes to
``min_side`` unless the longer one would pass ``max_side``; boxes and keypoints come back in
full-frame pixels. The defaults, 640 / 1066, keep the 800:1333 ratio the model was trained
with at 0.64 times the pixels: a 640x360 frame (seen at 1066x600) took 1.3 s against 2.1 s at
800 / 1333 on two idle CPU cores, 2.5 s against 3.7 s on one (random weights, no box above
the threshold, so backbone, RPN and box head only). A 1080p frame becomes 1066x600, where a
person 100 px tall is still ~55 px, above the FPN's smallest (32 px) anchors.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ram_core.detect.boxes import clip_box
from ram_core.errors import BadInputError, MissingModelError
from ram_core.models.weights import key_mismatch_parts
from ram_core.types import Detection, Frame

log = logging.getLogger(__name__)

WEIGHTS_NAME = "keypointrcnn_resnet50_fpn_coco"
NUM_KEYPOINTS = 17
# COCO_V1's categories are (background, person): the person label is 1.
PERSON_LABEL = 1
# COCO keypoint order (torchvision's ``keypoint_names``).
COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
# The keypoints that become SAM2 prompts: shoulders, hips, knees (see keypoint_prompts).
PROMPT_KEYPOINTS = tuple(
    COCO_KEYPOINTS.index(name)
    for name in (
        "left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_knee", "right_knee",
    )
)  # fmt: skip
# torchvision loads COCO_V1 with its frozen batch norms' eps overwritten to 0.
_FROZEN_BN_EPS = 0.0


@dataclass(frozen=True)
class FullDetectorConfig:
    """Settings of the Keypoint R-CNN detector.

    score_threshold: a box's person score (softmax over background / person) must reach this.
        0.7 rather than the lite detector's 0.5: a false person costs a SAM2 track (a forward
        per frame and a memory bank), a missed one only waits for the next detection round.
    Which keypoints become SAM2 clicks is SegFollow's ``prompt_keypoint_min_score``.
    min_side / max_side: torchvision's resize (``min_size`` / ``max_size``): shorter side to
        ``min_side``, longer side at most ``max_side``.
    max_detections: at most this many people per frame (the keypoint head runs per person).
    half_precision: on CUDA, run under float16 autocast (ignored on the CPU).
    """

    score_threshold: float = 0.7
    min_side: int = 640
    max_side: int = 1066
    max_detections: int = 50
    half_precision: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.min_side < 32:
            raise ValueError(f"min_side must be >= 32, got {self.min_side}")
        if self.max_side < self.min_side:
            raise ValueError(f"max_side ({self.max_side}) must be >= min_side ({self.min_side})")
        if self.max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {self.max_detections}")


# ---------------------------------------------------------------- pure post-processing


def sigmoid(values: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, without overflow for large negative logits."""
    values = np.asarray(values, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -values))


def detections_from_outputs(
    boxes_xyxy: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    keypoints_xy: np.ndarray,
    keypoint_logits: np.ndarray,
    frame_width: int,
    frame_height: int,
    score_threshold: float,
) -> list[Detection]:
    """Keypoint R-CNN outputs of one frame (already in full-frame pixels) -> Detections.

    boxes_xyxy: (N, 4); labels: (N,); scores: (N,); keypoints_xy: (N, 17, 2) or (N, 17, 3)
    (torchvision's third column is a constant visibility of 1 and is dropped);
    keypoint_logits: (N, 17), torchvision's ``keypoints_scores``.

    Keeps people (``PERSON_LABEL``) scoring at least ``score_threshold``, highest score
    first, boxes clipped to the frame. The keypoint score is the sigmoid of the heatmap
    logit at the keypoint: a monotone map to [0, 1] so thresholds read like the box
    scores. It is not a calibrated probability: the heatmaps are trained with a softmax
    over positions, not a per-pixel sigmoid.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    count = boxes.shape[0]
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    keypoints_xy = np.asarray(keypoints_xy, dtype=np.float64)
    keypoint_logits = np.asarray(keypoint_logits, dtype=np.float64)
    if (
        labels.shape != (count,)
        or scores.shape != (count,)
        or keypoints_xy.shape[:2] != (count, NUM_KEYPOINTS)
        or keypoints_xy.shape[2] not in (2, 3)
        or keypoint_logits.shape != (count, NUM_KEYPOINTS)
    ):
        raise ValueError(
            f"inconsistent detector outputs for {count} boxes: labels {labels.shape}, scores "
            f"{scores.shape}, keypoints {keypoints_xy.shape}, keypoint scores "
            f"{keypoint_logits.shape}"
        )
    boxes = clip_box(boxes, frame_width, frame_height)
    keypoint_scores = sigmoid(keypoint_logits)
    kept = np.flatnonzero((labels == PERSON_LABEL) & (scores >= score_threshold))
    kept = kept[np.argsort(-scores[kept], kind="stable")]
    return [
        Detection(
            box_xyxy=boxes[i],
            score=float(scores[i]),
            keypoints=np.concatenate([keypoints_xy[i, :, :2], keypoint_scores[i, :, None]], 1),
        )
        for i in kept
    ]


def keypoint_prompts(keypoints: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """SAM2 point prompts from one person's COCO keypoints (17, 3) (x, y, score).

    Returns points_xy (N, 2) float64 pixels and labels (N,) int32, all 1 (on the person);
    N = 0 when no prompt keypoint reaches ``min_score`` (the box prompt alone remains).

    Only shoulders, hips and knees are used: they sit inside the body's silhouette and span
    it from the top of the trunk to the legs, so a few points pin down the whole person.
    Face, wrist and ankle keypoints sit on thin or outlying parts where a few pixels of
    error land on the background or on a neighbour, and a positive point there pulls it
    into the mask. SAM was trained with a box and a handful of clicks per object; six
    points at most keep the prompt in that regime.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints must have shape ({NUM_KEYPOINTS}, 3), got {keypoints.shape}")
    chosen = keypoints[list(PROMPT_KEYPOINTS)]
    confident = chosen[(chosen[:, 2] >= min_score) & np.all(np.isfinite(chosen), axis=1)]
    points_xy = confident[:, :2].copy()
    return points_xy, np.ones(len(points_xy), dtype=np.int32)


# ---------------------------------------------------------------- torch side


def resolve_device(device: str):
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` -> a torch.device; BadInputError when absent."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BadInputError(
                f"device {device!r} was asked for, but torch sees no CUDA device here "
                f"(torch {torch.__version__}); use --device cpu or auto"
            )
        try:
            resolved = torch.device(device)
        except RuntimeError as exc:
            raise BadInputError(f"bad device {device!r}: {exc}") from None
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise BadInputError(
                f"device {device!r} was asked for, but torch sees "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
        return resolved
    raise BadInputError(f"unknown device {device!r}; choose cpu, cuda, cuda:N or auto")


def build_keypoint_rcnn(config: FullDetectorConfig):
    """Keypoint R-CNN ResNet-50 FPN (2 classes, 17 keypoints), randomly initialised, eval mode.

    Built from torchvision's public parts so the batch norms are frozen as in the published
    COCO model; ``keypointrcnn_resnet50_fpn(weights=None)`` would give trainable ones.
    """
    from torchvision.models.detection import KeypointRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops.misc import FrozenBatchNorm2d

    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None)
    model = KeypointRCNN(
        backbone,
        num_classes=2,
        num_keypoints=NUM_KEYPOINTS,
        min_size=config.min_side,
        max_size=config.max_side,
        # Filtering inside the model spares the keypoint head the boxes we would drop.
        box_score_thresh=config.score_threshold,
        box_detections_per_img=config.max_detections,
    )
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.eps = _FROZEN_BN_EPS
    return model.eval()


def _download_hint() -> str:
    return f"ram-core weights download {WEIGHTS_NAME}"


def load_state_dict_file(weights_path: Path) -> dict:
    """The state dict in a torch file; MissingModelError naming the file when unusable."""
    import torch

    if not weights_path.is_file():
        raise MissingModelError(
            f"Keypoint R-CNN weights not found: {weights_path}; fetch them with: {_download_hint()}"
        )
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise MissingModelError(
            f"cannot read the Keypoint R-CNN weights file {weights_path}: {exc}"
        ) from None
    except Exception as exc:  # any failure to unpickle means the file is unusable
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise MissingModelError(
            f"Keypoint R-CNN weights file {weights_path} is corrupt or not a torch state dict "
            f"({reason}); delete it and run: {_download_hint()}"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise MissingModelError(
            f"Keypoint R-CNN weights file {weights_path} holds no state dict of tensors; "
            f"delete it and run: {_download_hint()}"
        )
    return state


def _summarise_mismatch(model, state: dict) -> str:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state) - {k for k in expected if "num_batches" in k})
    unexpected = sorted(set(state) - set(expected) - {k for k in state if "num_batches" in k})
    wrong_shape = sorted(
        k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape)
    )
    parts = key_mismatch_parts(
        (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
    )
    return "; ".join(parts) or "tensors do not fit"


class KeypointRcnnDetector:
    """``Detector`` over torchvision's Keypoint R-CNN ResNet-50 FPN with COCO weights."""

    def __init__(
        self,
        weights_path: Path | str,
        config: FullDetectorConfig | None = None,
        device: str = "cpu",
    ) -> None:
        import torch

        self.config = config or FullDetectorConfig()
        self.device = resolve_device(device)
        self.weights_path = Path(weights_path)
        state = load_state_dict_file(self.weights_path)
        model = build_keypoint_rcnn(self.config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError:
            raise MissingModelError(
                f"{self.weights_path} is not a Keypoint R-CNN ResNet-50 FPN (COCO, 17 keypoints) "
                f"state dict: {_summarise_mismatch(model, state)}; delete it and run: "
                f"{_download_hint()}"
            ) from None
        self._model = model.to(self.device)
        self._torch = torch
        # Autocast rather than model.half(): torchvision's autocast rules run RoI align and
        # NMS in float32, where an all-half model would run them in float16.
        self._autocast = self.config.half_precision and self.device.type == "cuda"

    def _forward(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        """The model's raw outputs for one (H, W, 3) uint8 RGB frame, as numpy arrays."""
        torch = self._torch
        # uint8 crosses to the device (a quarter of the bytes), the float conversion runs there.
        image = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1)
        image = image.float().div_(255.0)
        autocast = (
            torch.autocast(device_type="cuda", dtype=torch.float16)
            if self._autocast
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            (output,) = self._model([image])
        # Autocast may leave float16 outputs: numpy gets float32 (labels stay integers).
        return {
            key: (value.float() if value.is_floating_point() else value).cpu().numpy()
            for key, value in output.items()
        }

    def detect(self, frame: Frame) -> list[Detection]:
        if self._model is None:
            raise RuntimeError("KeypointRcnnDetector is closed")
        rgb = np.asarray(frame.rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"frame.rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        height, width = rgb.shape[:2]
        raw = self._forward(rgb)
        return detections_from_outputs(
            raw["boxes"],
            raw["labels"],
            raw["scores"],
            raw["keypoints"],
            raw["keypoints_scores"],
            width,
            height,
            self.config.score_threshold,
        )

    def close(self) -> None:
        """Frees the network (and its GPU memory)."""
        if self._model is None:
            return
        self._model = None
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()

    def __enter__(self) -> KeypointRcnnDetector:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
