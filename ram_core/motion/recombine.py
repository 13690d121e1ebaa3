"""``ram-core combine``: re-run the Predictor and Combiner on a result with its edits.

The pipeline's own ``tracks.npz`` is never rewritten; the edited, re-combined table goes to
``combined.npz`` beside it (see ``ram_core.io.result.write_combined``), which ``load_result``
then reads as the top layer. numpy only, so the add-on runs it inside Blender too.

The settings are the ones the run recorded in its manifest (``config.predictor``,
``config.combiner`` and ``config.feet``), so a re-run continues the run it belongs to; a
caller may pass others. The feet are planted in the world frame the manifest holds (the
edits never move it); a result written before it had one is re-run without.

A run with a learned Predictor or gate keeps a copy of its exported weights in the result
folder (``LEARNED_FILES``), so the folder re-runs anywhere, Blender included: the
manifest's ``config`` names the copy relative to the folder and ``learned_models`` records
its SHA-256 (and the file it was copied from). A result without these fields was made with
the analytic parts and re-runs with them.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ram_core.io.result import RamResult, ResultFormatError, load_result, write_combined
from ram_core.io.sections import section_from_mapping
from ram_core.motion.combiner import CombinerConfig
from ram_core.motion.feet import FootConfig, plant_feet
from ram_core.motion.fusion import fuse_tracks
from ram_core.motion.learned import LearnedWeightsError, file_sha256, load_learned_weights
from ram_core.motion.predictor import PredictorConfig
from ram_core.motion.world import camera_to_world_rows, world_from_manifest

# The copies of the learned parts' weights inside a result folder, by the manifest's
# ``learned_models`` key (the part's config section).
LEARNED_FILES = {
    "predictor": "models/learned_predictor.npz",
    "combiner": "models/learned_gate.npz",
}
# Each part's (config section, choice field, weights field, model inside the file).
_LEARNED_PARTS = (
    ("predictor", "kind", "weights", "predictor"),
    ("combiner", "gate", "gate_weights", "gate"),
)


def recorded_motion_config(
    manifest: dict[str, Any], folder: str | Path | None = None
) -> tuple[PredictorConfig, CombinerConfig]:
    """The Predictor and Combiner settings a result was made with (defaults where the
    manifest records none). Raises ResultFormatError for settings this version cannot use.

    ``folder``: the result folder, needed for a result made with a learned part: its
    weights are the copy in the folder (the settings returned name it by its full path),
    checked against the SHA-256 the manifest recorded.
    """
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
    models = manifest.get("learned_models") or {}
    if not isinstance(models, dict):
        raise ResultFormatError("The manifest's learned_models is not a mapping.")
    sections = {"predictor": predictor, "combiner": combiner}
    for section, choice, weights_field, _ in _LEARNED_PARTS:
        settings = sections[section]
        if getattr(settings, choice) != "learned":
            continue
        path = _learned_copy(getattr(settings, weights_field), section, models, folder)
        sections[section] = dataclasses.replace(settings, **{weights_field: str(path)})
    return sections["predictor"], sections["combiner"]


def _learned_copy(
    recorded: str, section: str, models: dict[str, Any], folder: str | Path | None
) -> Path:
    """The weights file a result's learned part names (relative to the result folder),
    checked against the manifest's SHA-256."""
    path = Path(recorded)
    if not path.is_absolute():
        if folder is None:
            raise ResultFormatError(
                f"The result's {section} is learned and its weights ({recorded}) are inside "
                "the result folder: give the folder to read them."
            )
        path = Path(folder) / path
    if not path.is_file():
        raise ResultFormatError(
            f"The result's learned {section} weights are missing: {path} (the result folder "
            "must be copied whole)."
        )
    record = models.get(section)
    expected = record.get("sha256") if isinstance(record, dict) else None
    if expected is not None and file_sha256(path) != expected:
        raise ResultFormatError(
            f"The result's learned {section} weights {path} are not the ones it was made with "
            f"(SHA-256 differs from the manifest's {expected})."
        )
    return path


def check_learned_models(predictor: PredictorConfig, combiner: CombinerConfig) -> dict[str, Any]:
    """Load the learned parts the settings name (LearnedWeightsError, a bad-input error,
    for a missing or invalid file); section -> their weights. Run before a long job, so
    a bad file fails it at once."""
    sections = {"predictor": predictor, "combiner": combiner}
    loaded = {}
    for section, choice, weights_field, model in _LEARNED_PARTS:
        settings = sections[section]
        if getattr(settings, choice) == "learned":
            loaded[section] = load_learned_weights(getattr(settings, weights_field), model)
    return loaded


def learned_models_record(
    predictor: PredictorConfig, combiner: CombinerConfig
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """What a run with these settings records of its learned parts: (the manifest's
    ``learned_models`` section, the config sections' fields recorded instead of the given
    ones: each weights path as its copy's, relative to the result folder). Both empty when
    every part is analytic. Hashes the weight files (LearnedWeightsError when unreadable)."""
    sections = {"predictor": predictor, "combiner": combiner}
    models: dict[str, Any] = {}
    fields: dict[str, dict[str, Any]] = {}
    for section, choice, weights_field, _ in _LEARNED_PARTS:
        settings = sections[section]
        if getattr(settings, choice) != "learned":
            continue
        source = Path(getattr(settings, weights_field))
        models[section] = {
            "file": LEARNED_FILES[section],
            "sha256": file_sha256(source),
            "source": str(source.resolve()),
        }
        fields[section] = {weights_field: LEARNED_FILES[section]}
    return models, fields


def store_learned_models(
    predictor: PredictorConfig,
    combiner: CombinerConfig,
    folder: str | Path,
    loaded: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Copy the learned parts' weights into a result folder being written (``LEARNED_FILES``)
    and return what the manifest records of them (``learned_models_record``).

    ``loaded``: what ``check_learned_models`` gave at the start of the run; a file changed
    since then (or while it was copied) is refused (the result would not re-run as it was
    made).
    """
    models, fields = learned_models_record(predictor, combiner)
    for section, record in models.items():
        target = Path(folder) / record["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(record["source"], target)
        except OSError as exc:
            raise LearnedWeightsError(
                f"cannot copy {record['source']} into the result: {exc}"
            ) from exc
        copied = file_sha256(target)
        used = (loaded or {}).get(section)
        if copied != record["sha256"] or (used is not None and used.sha256 != copied):
            raise LearnedWeightsError(
                f"{record['source']} changed while the run used it; run again with a file "
                "that stays put"
            )
    return models, fields


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
    """The settings as canonical JSON, recorded in ``combined.npz`` beside a re-run.

    A learned part's weights are named by their SHA-256, wherever the file is; an analytic
    part's choice fields are left out, so its record is the one written before learned
    parts existed (an older re-run still counts as made with the same settings).
    """
    record = {
        "predictor": _section_record(predictor, "kind", "weights"),
        "combiner": _section_record(combiner, "gate", "gate_weights"),
    }
    if feet is not None:
        record["feet"] = dataclasses.asdict(feet)
    return json.dumps(record, sort_keys=True)


def _section_record(settings: Any, choice: str, weights_field: str) -> dict[str, Any]:
    record = dataclasses.asdict(settings)
    if record[choice] == "analytic":
        del record[choice], record[weights_field]
    else:
        record[weights_field] = "sha256:" + file_sha256(record[weights_field])
    return record


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
            *recorded_motion_config(result.manifest, result.path),
            recorded_foot_config(result.manifest),
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
    recorded_predictor, recorded_combiner = recorded_motion_config(result.manifest, result.path)
    predictor = predictor_config or recorded_predictor
    combiner = combiner_config or recorded_combiner
    feet = foot_config or recorded_foot_config(result.manifest)
    fused = refuse_tracks(
        result.tracks, result.manifest, predictor, combiner, feet, camera_track=result.camera_track
    )
    record = motion_config_record(predictor, combiner, feet)
    return write_combined(result.path, fused, result.edits, motion_config=record)
