"""``ram-core combine``: re-run the Predictor and Combiner on a result with its edits.

The pipeline's own ``tracks.npz`` is never rewritten; the edited, re-combined table goes to
``combined.npz`` beside it (see ``ram_core.io.result.write_combined``), which ``load_result``
then reads as the top layer. numpy only, so the add-on runs it inside Blender too.

The settings are the ones the run recorded in its manifest (``config.predictor`` and
``config.combiner``), so a re-run continues the run it belongs to; a caller may pass others.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ram_core.io.result import RamResult, ResultFormatError, load_result, write_combined
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


def motion_config_record(predictor: PredictorConfig, combiner: CombinerConfig) -> str:
    """The settings as canonical JSON, recorded in ``combined.npz`` beside a re-run."""
    return json.dumps(
        {"predictor": dataclasses.asdict(predictor), "combiner": dataclasses.asdict(combiner)},
        sort_keys=True,
    )


def tracks_to_refuse(
    result: RamResult, predictor: PredictorConfig, combiner: CombinerConfig
) -> set[int]:
    """The tracks of a loaded result (edits applied) whose final pose a re-run with these
    settings would change: those edited since the last run (``unfused_tracks``), or every
    track when the last run used other settings. Re-running only these gives what a re-run
    of every track gives."""
    record = motion_config_record(predictor, combiner)
    if "combined" in result.layers:
        made_with = result.combined_motion_config
    else:
        # The pipeline's own output was made with the settings its manifest records.
        made_with = motion_config_record(*recorded_motion_config(result.manifest))
    if made_with != record:
        return set(result.track_ids().tolist())
    return set(result.unfused_tracks)


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
    predictor = predictor_config or recorded_predictor
    combiner = combiner_config or recorded_combiner
    fused = fuse_tracks(result.tracks, predictor, combiner)
    record = motion_config_record(predictor, combiner)
    return write_combined(result.path, fused, result.edits, motion_config=record)
