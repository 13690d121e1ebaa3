"""The backends: which detector, segmenter and reconstructor a run uses, and why.

``lite`` runs OpenCV and LiteRT on models that ship in packages (BlazePose's landmark model
is taken from MediaPipe's wheel or npm package by ``ram-core weights download``, which the
setup runs; ``segmenter.model`` picks full or lite); ``full`` is
SAM2 steered by SegFollow with a torch person detector, and needs its weights (see
``ram-core weights``); ``auto`` takes full when its weights are present, else lite, and
says which and why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ram_core.config import RunConfig
from ram_core.errors import BadInputError, MissingModelError
from ram_core.io.progress import Progress
from ram_core.io.protocol import BACKENDS, DEVICES
from ram_core.types import Detector, Frame, Reconstructor, Segmenter

# The weights manager's entry holding HMR2.0's checkpoint, which T-HMR loads.
THMR_WEIGHTS = "hmr2_data"


@dataclass
class Backend:
    name: str
    detector: Detector
    segmenter: Segmenter
    reconstructor: Reconstructor
    description: dict[str, str]
    reason: str
    search_detector: Detector | None = None
    """A second detector of the same kind for the searches around hidden people
    (``PipelineConfig.search_every``): the first may be busy with a whole frame on the
    read-ahead thread. None: the backend does not search (the full backend)."""

    def close(self) -> None:
        for part in (self.detector, self.search_detector, self.segmenter, self.reconstructor):
            close = getattr(part, "close", None)
            if close is not None:
                close()


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` must exist."""
    if device == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if device == "cuda":
            raise BadInputError(
                "--device cuda needs the full backend's PyTorch (tools/setup.sh --full)"
            ) from None
        return "cpu"
    has_cuda = bool(torch.cuda.is_available())
    if device == "cuda" and not has_cuda:
        raise BadInputError("--device cuda: PyTorch sees no CUDA device on this machine")
    return "cuda" if has_cuda else "cpu"


def full_backend_gaps(config: RunConfig) -> list[str]:
    """Why the full backend cannot run here (empty when it can): packages, then weights.

    Its reconstruction is T-HMR on HMR2.0's weights (``hmr2_data``), or, with
    ``thmr.reconstructor: blazepose_ik``, BlazePose in each mask (the lite models).
    """
    import importlib.util

    from ram_core.detect.keypoint_rcnn import WEIGHTS_NAME
    from ram_core.models import weights
    from ram_core.segment.lite import POSE_MODELS
    from ram_core.segment.sam2_video import SAM2_MODELS

    missing_packages = [
        name for name in ("torch", "torchvision", "sam2") if importlib.util.find_spec(name) is None
    ]
    if missing_packages:
        return [
            f"{', '.join(missing_packages)} not installed (tools/setup.sh --full, or the "
            "add-on's Install Pipeline Environment)"
        ]
    reconstruction = (
        THMR_WEIGHTS if config.thmr.reconstructor == "thmr" else POSE_MODELS[config.segmenter.model]
    )
    return [
        f"{name} weights missing (ram-core weights download {name})"
        for name in (SAM2_MODELS[config.sam2.model], WEIGHTS_NAME, reconstruction)
        if not weights.is_present(name)
    ]


def resolve_backend(
    name: str, device: str, config: RunConfig, progress: Progress | None = None
) -> Backend:
    """Builds the stages of a backend; ``auto`` takes full where it can run, else lite.

    ``progress`` shows work done once while building (unpacking HMR2.0's checkpoint)."""
    if name not in BACKENDS:
        raise BadInputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise BadInputError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if name in ("full", "auto"):
        gaps = full_backend_gaps(config)
        if not gaps:
            reason = "full requested" if name == "full" else "auto: full backend weights present"
            return _full_backend(resolve_device(device), config, reason, progress)
        if name == "full":
            raise MissingModelError(
                "the full backend cannot run: " + "; ".join(gaps) + "; or run with --backend lite"
            )
        reason = "auto: using lite because " + "; ".join(gaps)
    else:
        reason = "lite requested"
    if device == "cuda":
        reason += "; the lite backend runs on the CPU"
    return _lite_backend(config, reason)


def _full_backend(
    device: str, config: RunConfig, reason: str, progress: Progress | None = None
) -> Backend:
    from ram_core.detect.keypoint_rcnn import WEIGHTS_NAME, KeypointRcnnDetector
    from ram_core.models import weights
    from ram_core.segment.sam2_video import SAM2_MODELS, Sam2Segmenter

    sam2_name = SAM2_MODELS[config.sam2.model]
    detector = KeypointRcnnDetector(
        weights.require(WEIGHTS_NAME), config.full_detector, device=device
    )
    try:
        segmenter = Sam2Segmenter(config.sam2, device=device, checkpoint=weights.require(sam2_name))
        reconstructor, reconstruct_description = _full_reconstructor(device, config, progress)
    except BaseException:
        detector.close()
        raise
    return Backend(
        name="full",
        detector=detector,
        segmenter=segmenter,
        reconstructor=reconstructor,
        description={
            "device": device,
            "detect": f"torchvision Keypoint R-CNN ResNet-50 FPN ({WEIGHTS_NAME})",
            "segment": f"SAM 2.1 ({sam2_name}, {config.sam2.memory} memory) steered by SegFollow",
            "reconstruct": reconstruct_description,
            "body": "built-in SMPL-24 skeleton (rest joints from Anny, Apache-2.0)",
        },
        reason=reason,
    )


def _full_reconstructor(
    device: str, config: RunConfig, progress: Progress | None
) -> tuple[Reconstructor, str]:
    """T-HMR on HMR2.0's checkpoint, or BlazePose in each mask when the config says so."""
    if config.thmr.reconstructor == "blazepose_ik":
        from ram_core.reconstruct.crop_pose import CropPoseReconstructor

        return (
            CropPoseReconstructor(crop=config.segmenter),
            "BlazePose in each SAM2 mask -> SMPL-24 by inverse kinematics",
        )
    from ram_core.models import weights
    from ram_core.reconstruct.thmr import THmrReconstructor

    checkpoint = weights.extract_member(THMR_WEIGHTS, progress=progress)
    thmr = config.thmr
    memory = f"Memory Cache of {thmr.memory_length} frames, top {thmr.memory_top_k}, MemFormer " + (
        "trained" if thmr.memformer_weights else "untrained (HMR2.0's output unchanged)"
    )
    architecture = "HMR2.0 ViT-H/16" if thmr.architecture == "hmr2" else "tiny test network"
    return (
        THmrReconstructor.from_checkpoint(checkpoint, thmr, device),
        f"T-HMR: {architecture} + SMPL head on {THMR_WEIGHTS}, {memory}",
    )


def _lite_backend(config: RunConfig, reason: str) -> Backend:
    import numpy as np

    from ram_core.detect.lite import make_lite_detector
    from ram_core.reconstruct.lite import LiteReconstructor
    from ram_core.segment.lite import BlazePoseSegmenter

    segmenter = BlazePoseSegmenter(config.segmenter)
    detector = make_lite_detector(config.detector)
    search_detector = None
    if config.pipeline.search_every:
        side = config.pipeline.search_max_side_px
        search_detector = make_lite_detector(replace(config.detector, yolo_max_side_px=side))
        # Once on a blank square as large as it will ever see: its network takes the memory
        # it will need now, not at the first search, so a run's peak does not depend on
        # when (or whether) somebody first hides. (On a thread of its own beside the first
        # frame's detection it saved 0.1-0.2 s of a 100-frame run, for 40 MB more peak.)
        search_detector.detect(Frame(index=-1, rgb=np.zeros((side, side, 3), dtype=np.uint8)))
    return Backend(
        name="lite",
        detector=detector,
        search_detector=search_detector,
        segmenter=segmenter,
        reconstructor=LiteReconstructor(),
        description={
            "detect": type(detector).__name__,
            "segment": "BlazePose landmark model (MediaPipe Pose 0.10.14's, on LiteRT) "
            "in the track's box",
            "reconstruct": "BlazePose world landmarks -> SMPL-24 by inverse kinematics",
            "body": "built-in SMPL-24 skeleton (rest joints from Anny, Apache-2.0)",
        },
        reason=reason,
    )
