"""``ram-core combine``: re-run the Predictor and Combiner on a result with its edits.

The pipeline's own ``tracks.npz`` is never rewritten; the edited, re-combined table goes to
``combined.npz`` beside it (see ``ram_core.io.result.write_combined``), which ``load_result``
then reads as the top layer. numpy only, so the add-on runs it inside Blender too.

The settings are the ones the run recorded in its manifest (``config.predictor``,
``config.combiner`` and ``config.feet``), so a re-run continues the run it belongs to; a
caller may pass others. The feet are planted in the world frame the manifest holds (the
edits never move it); a result written before it had one is re-run without.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ram_core.io.result import RamResult, ResultFormatError, load_result, write_combined
from ram_core.io.sections import section_from_mapping
from ram_core.motion.combiner import CombinerConfig
from ram_core.motion.feet import FootConfig, plant_feet
from ram_core.motion.fusion import fuse_tracks
from ram_core.motion.predictor import PredictorConfig
from ram_core.motion.world import camera_to_world_rows, world_from_manifest


def recorded_motion_config(manifest: dict[str, Any]) -> tuple[PredictorConfig, CombinerConfig]:
    """The Predictor and Combiner settings a result was made with (defaults where the
    manifest records none). Raises ResultFormatError for settings this version cannot use."""
    config = manifest.get("config") or {}
    if not isinstance(config, dict):
        raise ResultFormatError("The manifest's config is not a mapping of sections.")
    recorded = config.get("predictor")
    if isinstance(recorded, dict) and "relax_frames" not in recorded:
        # Made before the Predictor relaxed hidden people: a re-run continues that run.
        recorded = {**recorded, "relax_frames": 0.0}
    try:
        predictor = section_from_mapping(PredictorConfig, recorded, "predictor")
        combiner = section_from_mapping(CombinerConfig, config.get("combiner"), "combiner")
    except (TypeError, ValueError) as exc:
        raise ResultFormatError(f"The manifest's motion settings cannot be used: {exc}") from exc
    return predictor, combiner


def recorded_foot_config(manifest: dict[str, Any]) -> FootConfig:
    """The foot clean-up a result was made with; off for a result from before it existed
    (a re-run continues that run). Raises ResultFormatError for settings this version
    cannot use."""
    config = manifest.get("config") or {}
    if not isinstance(config, dict):
        raise ResultFormatError("The manifest's config is not a mapping of sections.")
    if "feet" not in config:
        return FootConfig(enabled=False)
    try:
        return section_from_mapping(FootConfig, config["feet"], "feet")
    except (TypeError, ValueError) as exc:
        raise ResultFormatError(f"The manifest's foot settings cannot be used: {exc}") from exc


def motion_config_record(
    predictor: PredictorConfig, combiner: CombinerConfig, feet: FootConfig | None = None
) -> str:
    """The settings as canonical JSON, recorded in ``combined.npz`` beside a re-run."""
    record = {"predictor": dataclasses.asdict(predictor), "combiner": dataclasses.asdict(combiner)}
    if feet is not None:
        record["feet"] = dataclasses.asdict(feet)
    return json.dumps(record, sort_keys=True)


def refuse_tracks(
    tracks: dict[str, np.ndarray],
    manifest: dict[str, Any],
    predictor: PredictorConfig,
    combiner: CombinerConfig,
    feet: FootConfig,
    track_ids: Iterable[int] | None = None,
    camera_track: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Predictor + Combiner, then the feet planted: what the pipeline's end does, on an
    edited table. ``track_ids``: these tracks only, the others' rows copied unchanged.
    ``camera_track``: a turning camera's placement per frame (``RamResult.camera_track``)."""
    wanted = None if track_ids is None else sorted({int(i) for i in track_ids})
    fused = fuse_tracks(tracks, predictor, combiner, track_ids=wanted)
    camera = manifest.get("camera") or {}
    fps = (manifest.get("source_video") or {}).get("fps")
    if "fx" not in camera or not fps:
        # Not a pipeline's manifest (those record both): no camera to plant feet through.
        return fused
    focal_px, fps = float(camera["fx"]), float(fps)
    camera_to_world = world_from_manifest(manifest.get("world"))
    if camera_to_world is None:
        # A result from before the world frame (and the foot clean-up): as it was made.
        return fused
    camera_to_world = camera_to_world_rows(camera_to_world, camera_track, fused["frame"])
    return plant_feet(fused, camera_to_world, focal_px, fps, feet, track_ids=wanted)


def tracks_to_refuse(
    result: RamResult,
    predictor: PredictorConfig,
    combiner: CombinerConfig,
    feet: FootConfig | None = None,
) -> set[int]:
    """The tracks of a loaded result (edits applied) whose final pose a re-run with these
    settings would change: those edited since the last run (``unfused_tracks``), or every
    track when the last run used other settings. Re-running only these gives what a re-run
    of every track gives."""
    feet = feet or recorded_foot_config(result.manifest)
    record = motion_config_record(predictor, combiner, feet)
    if "combined" in result.layers:
        made_with = result.combined_motion_config
    else:
        # The pipeline's own output was made with the settings its manifest records.
        made_with = motion_config_record(
            *recorded_motion_config(result.manifest), recorded_foot_config(result.manifest)
        )
    if made_with != record:
        return set(result.track_ids().tolist())
    return set(result.unfused_tracks)


def recombine_result(
    path: str | Path,
    predictor_config: PredictorConfig | None = None,
    combiner_config: CombinerConfig | None = None,
    foot_config: FootConfig | None = None,
) -> Path:
    """Applies ``edits.json`` and re-runs Predictor + Combiner and the foot clean-up;
    returns combined.npz's path.

    A setting left None is the one recorded in the result's manifest.
    """
    result = load_result(path, apply_edits=True, use_combined=False)
    recorded_predictor, recorded_combiner = recorded_motion_config(result.manifest)
    predictor = predictor_config or recorded_predictor
    combiner = combiner_config or recorded_combiner
    feet = foot_config or recorded_foot_config(result.manifest)
    fused = refuse_tracks(
        result.tracks, result.manifest, predictor, combiner, feet, camera_track=result.camera_track
    )
    record = motion_config_record(predictor, combiner, feet)
    return write_combined(result.path, fused, result.edits, motion_config=record)
