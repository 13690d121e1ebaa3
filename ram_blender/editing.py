"""The artist's loop on an imported result: ID edits, occlusion edits, the Combiner re-run.

Plain functions the operators call. Every edit is checked against the result first (a bad
argument raises ``EditError`` and changes nothing), then appended to the result's
``edits.json`` (the pipeline's files are never rewritten), then the scene is brought in line
*in place* by ``sync_import``: keys are rewritten only on the tracks whose values changed,
an armature is added for a split and removed for a merge or delete, so what the artist
added (materials, constraints, other objects, children) stays.

The scene keeps the log it shows on the import's collection (``collection.ram.edits_json``),
so Ctrl-Z, which restores the scene, also restores the log there; ``sync_log_files`` (run
after undo and redo) writes that log back to ``edits.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

from ram_core.io.edits import (
    EDITS_FILE_NAME,
    apply_edits,
    edited_tracks,
    empty_edits_document,
    read_edits,
    write_json_atomically,
)
from ram_core.io.result import RamResult, load_result, write_combined
from ram_core.motion.recombine import (
    motion_config_record,
    recorded_foot_config,
    recorded_motion_config,
    refuse_tracks,
    tracks_to_refuse,
)

from .importer import (
    RESULT_PATH_PROP,
    TRACK_ID_PROP,
    add_split_track,
    imported_collections,
    refresh_track_list,
    remove_track_object,
    track_body,
    write_track_keys,
)
from .results import plan_import
from .track_edits import EditError, TrackSpan, track_spans

EditMaker = Callable[[dict[int, TrackSpan], list[dict[str, Any]]], dict[str, Any]]


@dataclass(frozen=True)
class SyncReport:
    """What ``sync_import`` changed: track IDs re-keyed, added and removed."""

    rekeyed: tuple[int, ...]
    added: tuple[int, ...]
    removed: tuple[int, ...]


def result_path_of(collection: bpy.types.Collection) -> Path:
    return Path(collection[RESULT_PATH_PROP])


def scene_edits(collection: bpy.types.Collection) -> list[dict[str, Any]]:
    """The edit log the scene shows for this import."""
    return json.loads(collection.ram.edits_json or "[]")


def import_for_track(scene: bpy.types.Scene, track: int | None = None):
    """The import in ``scene`` an edit applies to: the one holding ``track`` when given
    (the first import otherwise). Raises EditError when the scene has none."""
    collections = imported_collections(scene)
    if not collections:
        raise EditError("The scene has no imported RAM result to edit.")
    if track is not None:
        for collection in collections:
            if any(item.track_id == track for item in collection.ram.tracks):
                return collection
    return collections[0]


def current_result(collection: bpy.types.Collection) -> RamResult:
    """The result as the scene shows it. Raises EditError when ``edits.json`` no longer
    holds the log the scene shows (changed outside this scene)."""
    path = result_path_of(collection)
    shown = scene_edits(collection)
    try:
        on_disk = read_edits(path)
    except (OSError, ValueError) as exc:
        raise EditError(f"The edit log of {path} cannot be read: {exc}") from exc
    if on_disk != shown:
        raise EditError(
            f"{path / EDITS_FILE_NAME} holds {len(on_disk)} edit(s) but this scene shows "
            f"{len(shown)}: it was changed outside this scene. Re-import the result to "
            "continue from the file's edits."
        )
    return load_result(path)


def apply_track_edit(collection: bpy.types.Collection, make_edit: EditMaker) -> tuple:
    """Make one edit: check it, append it to ``edits.json``, update the scene in place.

    ``make_edit(spans, edits)`` returns the edit or raises EditError. Returns (edit,
    SyncReport). On any failure the file and the scene are as they were.
    """
    result = current_result(collection)
    edit = make_edit(track_spans(result.tracks), result.edits)
    try:
        tracks = apply_edits(result.tracks, [edit])
    except ValueError as exc:
        raise EditError(str(exc)) from exc
    log = [*result.edits, edit]
    present = set(np.unique(tracks["track_id"]).tolist())
    edited = RamResult(
        path=result.path,
        manifest=result.manifest,
        tracks=tracks,
        edits=log,
        edits_applied=True,
        layers=result.layers,
        unfused_tracks=frozenset((result.unfused_tracks | edited_tracks([edit])) & present),
        camera_track=result.camera_track,
    )
    _write_log(result.path, log)
    try:
        report = sync_import(collection, edited)
    except BaseException:
        _write_log(result.path, result.edits)
        raise
    return edit, report


def rerun_combiner(collection: bpy.types.Collection, track: int = 0) -> SyncReport:
    """Re-run the Predictor and Combiner on the stored reconstruction with the scene's edits,
    with the settings the run recorded, and re-key in place.

    ``track`` 0: every track, giving what ``ram-core combine`` gives; the tracks no edit
    touched since the last run with these settings already hold exactly that and are
    skipped (``recombine.tracks_to_refuse``). Otherwise that track only; the others keep
    what they show (and stay marked as needing the Combiner where they do). Writes
    ``combined.npz`` (what the scene now shows) when anything was re-run.
    """
    current = current_result(collection)
    if track and track not in set(current.track_ids().tolist()):
        known = ", ".join(str(t) for t in current.track_ids().tolist()) or "none"
        raise EditError(f"There is no track {track} (tracks: {known}).")
    predictor, combiner = recorded_motion_config(current.manifest, current.path)
    feet = recorded_foot_config(current.manifest)
    stale = tracks_to_refuse(current, predictor, combiner, feet)
    wanted = {track} if track else stale
    if not wanted:
        return SyncReport((), (), ())
    fused = refuse_tracks(
        current.tracks, current.manifest, predictor, combiner, feet, wanted, current.camera_track
    )
    unfused = frozenset(stale - wanted)
    record = motion_config_record(predictor, combiner, feet)
    write_combined(current.path, fused, current.edits, unfused, motion_config=record)
    combined = RamResult(
        path=current.path,
        manifest=current.manifest,
        tracks=fused,
        edits=current.edits,
        edits_applied=True,
        layers=("pipeline", "edits", "combined"),
        unfused_tracks=unfused,
        combined_motion_config=record,
        camera_track=current.camera_track,
    )
    return sync_import(collection, combined)


def sync_import(collection: bpy.types.Collection, result: RamResult) -> SyncReport:
    """Bring an import's armatures, keys and track list in line with ``result``, in place."""
    # The objects keep the world placement the import gave them.
    plan = plan_import(result, with_world=False)
    armatures = track_armatures(collection)
    before = {track_id: obj.get("ram_motion_digest") for track_id, obj in armatures.items()}
    added = []
    for track in plan.tracks:
        obj = armatures.get(track.track_id)
        if obj is None:
            source = armatures.get(_split_source(track.track_id, plan.edits))
            if source is None:
                source = next(iter(armatures.values()), None)
            if source is None:
                raise EditError(f"No armature is left to make track {track.track_id} from.")
            obj = add_split_track(plan, track, source, _home_collection(source, collection))
            armatures[track.track_id] = obj
            added.append(track.track_id)
        else:
            write_track_keys(obj, track, plan.solved_rest_pelvis)
    kept = {track.track_id for track in plan.tracks}
    removed = sorted(set(armatures) - kept)
    for track_id in removed:
        heir = armatures.get(_merged_into(track_id, plan.edits))
        remove_track(armatures.pop(track_id), heir)
    rekeyed = tuple(
        track_id
        for track_id, obj in armatures.items()
        if track_id in before and before[track_id] != obj.get("ram_motion_digest")
    )
    collection.ram.edits_json = json.dumps(list(plan.edits))
    refresh_track_list(
        collection, plan.tracks_table, list(armatures.values()), result.unfused_tracks
    )
    return SyncReport(rekeyed, tuple(added), tuple(removed))


def track_armatures(collection: bpy.types.Collection) -> dict[int, bpy.types.Object]:
    """{track ID: armature} of an import, wherever the artist moved the armatures since."""
    path = collection[RESULT_PATH_PROP]
    return {
        int(obj[TRACK_ID_PROP]): obj
        for obj in bpy.data.objects
        if obj.type == "ARMATURE" and obj.get(RESULT_PATH_PROP) == path and TRACK_ID_PROP in obj
    }


def remove_track(armature: bpy.types.Object, heir: bpy.types.Object | None) -> None:
    """Remove a track's armature and body. The artist's objects parented to it move to
    ``heir`` (the track it was merged into) or stay where they are, unparented."""
    body = track_body(armature)
    for child in list(armature.children):
        if child == body:
            continue
        world = child.matrix_world.copy()
        child.parent = heir
        child.parent_type = "OBJECT"
        child.matrix_parent_inverse = heir.matrix_world.inverted() if heir else Matrix()
        child.matrix_world = world
    if body is not None:
        remove_track_object(body)
    remove_track_object(armature)


def sync_log_files() -> list[Path]:
    """Write each import's log, as the scene shows it, to its ``edits.json`` where they
    differ (after undo or redo). Returns the folders written."""
    written = []
    for collection in bpy.data.collections:
        if RESULT_PATH_PROP not in collection:
            continue
        path = result_path_of(collection)
        if not path.is_dir():
            continue
        shown = scene_edits(collection)
        try:
            on_disk = read_edits(path)
        except (OSError, ValueError):
            continue
        if on_disk != shown:
            _write_log(path, shown)
            written.append(path)
    return written


def log_out_of_sync(collection: bpy.types.Collection) -> str:
    """'' when ``edits.json`` holds the log the scene shows; else why not (for the panel)."""
    path = result_path_of(collection)
    try:
        on_disk = read_edits(path)
    except (OSError, ValueError) as exc:
        return f"edits.json cannot be read: {exc}"
    shown = scene_edits(collection)
    if on_disk == shown:
        return ""
    return f"edits.json has {len(on_disk)} edit(s), the scene {len(shown)}: re-import"


def _write_log(path: Path, edits: list[dict[str, Any]]) -> None:
    write_json_atomically(path / EDITS_FILE_NAME, {**empty_edits_document(), "edits": edits})


def _split_source(track_id: int, edits: list[dict[str, Any]]) -> int | None:
    for edit in reversed(edits):
        if edit["op"] == "split" and edit["new_id"] == track_id:
            return edit["track"]
    return None


def _merged_into(track_id: int, edits: list[dict[str, Any]]) -> int | None:
    for edit in reversed(edits):
        if edit["op"] == "merge" and edit["from"] == track_id:
            return edit["into"]
    return None


def _home_collection(obj: bpy.types.Object, fallback: bpy.types.Collection):
    return obj.users_collection[0] if obj.users_collection else fallback
