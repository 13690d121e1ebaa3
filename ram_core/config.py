"""The run's configuration: one frozen dataclass per stage, read from an optional YAML file.

A YAML config has one mapping per section, each key a field of that section's dataclass:

    pipeline: {detect_every: 5, focal_px: 900}
    segfollow: {alpha: 0.75, tau_kf: 15}
    detector: {score_threshold: 0.3}
    segmenter: {crop_margin: 0.2}
    sam2: {model: small, image_size: 1024, memory: ema}      # full backend
    full_detector: {score_threshold: 0.7}                   # full backend
    thmr: {memory_length: 16, memory_top_k: 4}              # full backend
    predictor: {...}
    combiner: {...}
    feet: {...}
    camera_motion: {...}

Unknown sections or keys are refused (a typo must not be ignored silently). The effective
configuration is written into the result's manifest.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ram_core.detect.keypoint_rcnn import FullDetectorConfig
from ram_core.detect.lite import DetectorConfig
from ram_core.errors import BadInputError
from ram_core.io.sections import section_from_mapping
from ram_core.motion.combiner import CombinerConfig
from ram_core.motion.feet import FootConfig
from ram_core.motion.predictor import PredictorConfig
from ram_core.reconstruct.thmr import THmrConfig
from ram_core.segment.lite import LiteSegmenterConfig
from ram_core.segment.sam2_video import Sam2SegmenterConfig
from ram_core.track.segfollow import SegFollowConfig
from ram_core.video.camera_motion import CameraMotionConfig


@dataclass(frozen=True)
class PipelineConfig:
    """How the stages are driven."""

    detect_every: int = 5
    """Run the person detector every K frames; SegFollow carries people in between."""
    search_every: int = 2
    """On the frames between, while someone is hidden, detect every this many frames in
    windows around where they may come back (the tracker's ``search_regions``; 0: never;
    the lite backend only, which has a second detector for it). On the tuning scenes it
    found people coming out from behind a pillar or a person up to K - 1 frames sooner:
    hidden_pillar 93.1% -> 96.1% MOTA, long_occlusion 93.9% -> 95.7%, for 10% more time
    on the real clip; every frame cost 29% more for little more
    (``benchmarks/results/search.md``)."""
    search_min_window_px: float = 128.0
    """A search window is at least this many pixels a side: the detector needs some
    surroundings to see a person."""
    search_full_frame_share: float = 0.5
    """Windows covering this share of the frame or more are one detection of the frame."""
    search_max_side_px: int = 512
    """The search's detector shrinks what it sees so that the long side is at most this
    (YOLOv4-tiny's ``yolo_max_side_px``): its buffers grow with its input, and a window that
    big holds big people. Against 1024 on the tuning scenes and seed 163: no scene lower, a
    long_occlusion 93.4% -> 95.3% MOTA, 5% faster."""
    dropout_max_frames: int = 2
    """A person the segmenter loses for at most this many frames between two clear views
    at least 0.9 as tall as they have been (the tallest of the 12 frames before), with no
    one else's box over a quarter of theirs, was in view: those rows are not counted as
    hidden (their boxes lie on the line between the two views; their poses are filled as
    for hidden frames). BlazePose finds nobody in about one crop in eight of people 40 px
    tall. 0: every lost frame counts as hidden."""
    dropout_any_height_below_px: float = 80.0
    """For people never this tall, the two views around a dropout need not be as tall as
    they have been, only clear: BlazePose's masks of a 39 px walker in plain view were
    20-39 px high from frame to frame, so most of their dropouts counted as hidden. On 39
    scenes: small_people +2.8, +1.4, +1.1 and +0.9 MOTA, people 40-80 px tall 90.8% ->
    91.9% found, under 40 px 57% -> 66%; for people of any size a long occlusion lost 0.9
    (0: every person needs the tall views)."""
    focal_px: float | None = None
    """Focal length in pixels; None assumes the image diagonal (see CameraIntrinsics)."""
    preview: bool = True
    """Write preview.mp4 and preview.png (masks, IDs, skeletons) into the result."""

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every}")
        if self.search_max_side_px < 32:
            raise ValueError(f"search_max_side_px must be >= 32, got {self.search_max_side_px}")
        if self.dropout_any_height_below_px < 0:
            raise ValueError(
                f"dropout_any_height_below_px must be >= 0, got {self.dropout_any_height_below_px}"
            )
        if self.dropout_max_frames < 0:
            raise ValueError(f"dropout_max_frames must be >= 0, got {self.dropout_max_frames}")
        if self.search_every < 0 or self.search_min_window_px < 0:
            raise ValueError("search_every and search_min_window_px must be >= 0")
        if not 0.0 < self.search_full_frame_share <= 1.0:
            raise ValueError(
                f"search_full_frame_share must be in (0, 1], got {self.search_full_frame_share}"
            )
        if self.focal_px is not None and self.focal_px <= 0:
            raise ValueError(f"focal_px must be positive, got {self.focal_px}")


@dataclass(frozen=True)
class RunConfig:
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    segfollow: SegFollowConfig = field(default_factory=SegFollowConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    segmenter: LiteSegmenterConfig = field(default_factory=LiteSegmenterConfig)
    sam2: Sam2SegmenterConfig = field(default_factory=Sam2SegmenterConfig)
    full_detector: FullDetectorConfig = field(default_factory=FullDetectorConfig)
    thmr: THmrConfig = field(default_factory=THmrConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    combiner: CombinerConfig = field(default_factory=CombinerConfig)
    feet: FootConfig = field(default_factory=FootConfig)
    camera_motion: CameraMotionConfig = field(default_factory=CameraMotionConfig)


def config_from_dict(document: Any) -> RunConfig:
    """Builds a RunConfig; ValueError with a clear message on anything unknown or invalid."""
    if document is None:
        return RunConfig()
    if not isinstance(document, dict):
        raise ValueError("a config file must be a mapping of sections")
    sections = {f.name: f for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(document) - set(sections))
    if unknown:
        raise ValueError(
            f"unknown section(s) {', '.join(map(str, unknown))}; known: {', '.join(sections)}"
        )
    hints = typing.get_type_hints(RunConfig)
    return RunConfig(**{n: section_from_mapping(hints[n], document.get(n), n) for n in sections})


def load_config(path: str | Path | None) -> RunConfig:
    """Reads a YAML config; BadInputError (exit 2) when it is missing or invalid."""
    if path is None:
        return RunConfig()
    import yaml

    config_path = Path(path)
    if not config_path.is_file():
        raise BadInputError(f"config file not found: {config_path}")
    try:
        document = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        return config_from_dict(document)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadInputError(f"config file {config_path} is not valid YAML: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"config file {config_path}: {exc}") from None


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """Plain data for the manifest (tuples become lists)."""
    return dataclasses.asdict(config)
