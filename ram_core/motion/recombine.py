"""``ram-core combine``: re-run the Predictor and Combiner on a result with its edits.

The pipeline's own ``tracks.npz`` is never rewritten; the edited, re-combined table goes to
``combined.npz`` beside it (see ``ram_core.io.result.write_combined``), which ``load_result``
then reads as the top layer. numpy only, so the add-on runs it inside Blender too.

The settings are the ones the run recorded in its manifest (``config.predictor`` and
``config.combiner``), so a re-run continues the run it belongs to; a caller may pass others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ram_core.io.result import ResultFormatError, load_result, write_combined
from ram_core.io.sections import section_from_mapping
from ram_core.motion.combiner import CombinerConfig
from ram_core.motion.fusion import fuse_tracks
from ram_core.motion.predictor import PredictorConfig


def recorded_motion_config(manifest: dict[str, Any]) -> tuple[PredictorConfig, CombinerConfig]:
    """The Predictor and Combiner settings a result was made with (defaults where the
    manifest records none). Raises ResultFormatError for settings this version cannot use."""
    config = manifest.get("config") or {}
    if not isinstance(config, dict):
        raise ResultFormatError("The manifest's config is not a mapping of sections.")
    try:
        predictor = section_from_mapping(PredictorConfig, config.get("predictor"), "predictor")
        combiner = section_from_mapping(CombinerConfig, config.get("combiner"), "combiner")
    except (TypeError, ValueError) as exc:
        raise ResultFormatError(f"The manifest's motion settings cannot be used: {exc}") from exc
    return predictor, combiner


def recombine_result(
    path: str | Path,
    predictor_config: PredictorConfig | None = None,
    combiner_config: CombinerConfig | None = None,
) -> Path:
    """Applies ``edits.json`` and re-runs Predictor + Combiner; returns combined.npz's path.

    A setting left None is the one recorded in the result's manifest.
    """
    result = load_result(path, apply_edits=True, use_combined=False)
    recorded_predictor, recorded_combiner = recorded_motion_config(result.manifest)
    fused = fuse_tracks(
        result.tracks,
        predictor_config or recorded_predictor,
        combiner_config or recorded_combiner,
    )
    return write_combined(result.path, fused, result.edits)
