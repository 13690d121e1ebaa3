"""The artist's edit log (``edits.json`` in a result folder) and how it applies to tracks.

numpy + stdlib only: Blender imports this module.

The log is ``{"format": "ram-edits", "version": 1, "edits": [...]}``, append-only, applied
in order on load. Edits, each a JSON object:

- ``{"op": "swap", "track_a": A, "track_b": B, "from_frame": F}``: A and B exchange IDs on
  every frame >= F (a swap with a track that has no rows there is a plain rename).
- ``{"op": "merge", "into": A, "from": B}``: B's rows become A's; on frames where both have
  a row, A's row is kept.
- ``{"op": "split", "track": A, "from_frame": F, "new_id": C}``: A's rows on frames >= F
  become track C. C must not be a track at that point of the log.
- ``{"op": "delete", "track": A}``: A's rows are dropped.
- ``{"op": "occlusion", "track": A, "start": F0, "end": F1, "occluded": bool}``: frames
  F0..F1 (inclusive) of A are marked occluded (``occluded`` True, ``reliability`` 0) or
  forced reliable (``occluded`` False, ``reliability`` 1). The Combiner's ``gate`` and the
  final pose change only when the Combiner is re-run.

Edits that name a track with no rows (other than a split's ``new_id`` clash) change
nothing, so a log stays loadable whatever order tracks disappear in.

The same log remaps the mask label images (``remap_labels``), frame by frame: a swap from
frame F swaps the two labels on frames >= F, a merge relabels the source everywhere, a split
relabels the track on frames >= F, a delete clears the track's pixels to background, and an
occlusion edit leaves masks as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ram_core.io.atomic import atomic_file

EDITS_FORMAT_NAME = "ram-edits"
EDITS_FORMAT_VERSION = 1
EDITS_FILE_NAME = "edits.json"

# Mask label images are uint16 with 0 as background, so track IDs live in 1..65535.
MIN_TRACK_ID = 1
MAX_TRACK_ID = 65535

# op -> {field: kind}; kinds: "track" (an ID), "frame" (>= 0), "bool".
EDIT_FIELDS: dict[str, dict[str, str]] = {
    "swap": {"track_a": "track", "track_b": "track", "from_frame": "frame"},
    "merge": {"into": "track", "from": "track"},
    "split": {"track": "track", "from_frame": "frame", "new_id": "track"},
    "delete": {"track": "track"},
    "occlusion": {"track": "track", "start": "frame", "end": "frame", "occluded": "bool"},
}


def empty_edits_document() -> dict[str, Any]:
    """The content of a fresh ``edits.json``."""
    return {"format": EDITS_FORMAT_NAME, "version": EDITS_FORMAT_VERSION, "edits": []}


def validate_edit(edit: Any) -> dict[str, Any]:
    """Check one edit; returns a clean copy (plain ints and bools). Raises ValueError."""
    if not isinstance(edit, dict):
        raise ValueError(f"An edit must be a JSON object, got {type(edit).__name__}.")
    op = edit.get("op")
    if op not in EDIT_FIELDS:
        raise ValueError(f"Unknown edit op {op!r}; known ops are {', '.join(sorted(EDIT_FIELDS))}.")
    fields = EDIT_FIELDS[op]
    missing = [name for name in fields if name not in edit]
    if missing:
        raise ValueError(f"A {op!r} edit needs {', '.join(missing)}: {edit!r}.")
    unknown = sorted(set(edit) - set(fields) - {"op"})
    if unknown:
        raise ValueError(f"A {op!r} edit has unknown field(s) {', '.join(unknown)}: {edit!r}.")
    clean: dict[str, Any] = {"op": op}
    for name, kind in fields.items():
        clean[name] = _checked_field(op, name, kind, edit[name])
    _check_relations(clean)
    return clean


def read_edits(path: str | Path) -> list[dict[str, Any]]:
    """The edits of a result folder (or of an ``edits.json`` path), validated, in order.

    A result folder without ``edits.json`` has no edits. Raises ValueError for a log that is
    not valid JSON, another format, a newer version, or holds an invalid edit.
    """
    edits_path = _edits_file(path)
    if not edits_path.exists():
        if not edits_path.parent.is_dir():
            raise FileNotFoundError(f"No result folder at {edits_path.parent}.")
        return []
    try:
        document = json.loads(edits_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{edits_path} is not valid JSON ({exc}).") from exc
    return _edits_from_document(document, edits_path)


def append_edit(result_path: str | Path, edit: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate ``edit`` and append it to the folder's log; returns the whole log.

    The log is rewritten through a temporary file and ``os.replace``, so a reader sees the old
    log or the new one, never a partial file. Only ``edits.json`` is touched. Not safe for two
    writers at once (one artist, one Blender session, is the use).
    """
    folder = Path(result_path)
    if not folder.is_dir():
        raise FileNotFoundError(f"No result folder at {folder}.")
    clean = validate_edit(edit)
    edits = [*read_edits(folder), clean]
    document = {**empty_edits_document(), "edits": edits}
    write_json_atomically(folder / EDITS_FILE_NAME, document)
    return edits


def write_json_atomically(path: Path, document: Any) -> None:
    """Write ``document`` as JSON to ``path`` via a synced temporary file beside it."""
    with atomic_file(path, "w", encoding="utf-8") as stream:
        json.dump(document, stream, indent=1, allow_nan=False)
        stream.write("\n")


def apply_edits(
    tracks: dict[str, np.ndarray], edits: list[dict[str, Any]]
) -> dict[str, np.ndarray]:
    """Apply ``edits`` in order to a tracks table; returns new arrays (input untouched).

    ``tracks``: name -> (N, ...) arrays with at least ``track_id`` and ``frame``; an
    occlusion edit also needs ``occluded`` and ``reliability``. The result is sorted by
    track then frame. Raises ValueError for an invalid edit or a split onto a track that
    exists.
    """
    if "track_id" not in tracks or "frame" not in tracks:
        raise ValueError("A tracks table needs 'track_id' and 'frame' arrays.")
    rows = len(tracks["track_id"])
    for name, array in tracks.items():
        if len(array) != rows:
            raise ValueError(f"Array {name!r} has {len(array)} rows, 'track_id' has {rows}.")
    table = {name: np.array(array, copy=True) for name, array in tracks.items()}
    for position, edit in enumerate(edits):
        clean = validate_edit(edit)
        try:
            table = _APPLY[clean["op"]](table, clean)
        except ValueError as exc:
            raise ValueError(f"Edit {position} ({clean!r}) cannot be applied: {exc}") from exc
    order = np.lexsort((table["frame"], table["track_id"]))
    return {name: array[order] for name, array in table.items()}


def remap_labels(labels: np.ndarray, frame: int, edits: list[dict[str, Any]]) -> np.ndarray:
    """Frame ``frame``'s label image (H, W) with the edits applied: a new uint16 array.

    Labels are track IDs (0 = background); ``frame`` is the result's (video) frame number,
    as in the tracks table and the edits. Labels no edit touches are kept.
    """
    labels = np.asarray(labels)
    if not edits:
        return labels.astype(np.uint16)
    # bincount, not unique: no sort of a 1080p frame just to learn which few IDs it holds.
    counts = np.bincount(labels.ravel().astype(np.intp, copy=False))
    present = (np.flatnonzero(counts[1:]) + 1).tolist()
    mapping = label_mapping(edits, frame, present)
    if all(source == target for source, target in mapping.items()):
        return labels.astype(np.uint16)
    lookup = np.arange(len(counts), dtype=np.uint16)
    for source, target in mapping.items():
        lookup[source] = target
    return lookup.take(labels)


def label_mapping(edits: list[dict[str, Any]], frame: int, labels: list[int]) -> dict[int, int]:
    """Where each of ``labels`` (track IDs drawn in frame ``frame``) ends up after the edits:
    {original: final}, 0 for a deleted track."""
    current = {int(label): int(label) for label in labels}
    for edit in edits:
        clean = validate_edit(edit)
        op = clean["op"]
        if op == "swap" and frame >= clean["from_frame"]:
            a, b = clean["track_a"], clean["track_b"]
            current = {k: (b if v == a else a if v == b else v) for k, v in current.items()}
        elif op == "merge":
            current = {k: (clean["into"] if v == clean["from"] else v) for k, v in current.items()}
        elif op == "split" and frame >= clean["from_frame"]:
            track, new_id = clean["track"], clean["new_id"]
            current = {k: (new_id if v == track else v) for k, v in current.items()}
        elif op == "delete":
            current = {k: (0 if v == clean["track"] else v) for k, v in current.items()}
    return current


def edited_tracks(edits: list[dict[str, Any]]) -> set[int]:
    """Every track ID the edits name: sources, targets and new IDs alike."""
    return {
        int(edit[name])
        for edit in edits
        for name, kind in EDIT_FIELDS[edit["op"]].items()
        if kind == "track"
    }


def edits_digest(edits: list[dict[str, Any]]) -> str:
    """SHA-256 of a list of edits in canonical JSON: says which log a derived file was made
    from (``combined.npz`` records the digest of the edits it applied)."""
    import hashlib

    canonical = json.dumps([validate_edit(e) for e in edits], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _checked_field(op: str, name: str, kind: str, value: Any) -> int | bool:
    if kind == "bool":
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"{op!r} edit: {name} must be true or false, got {value!r}.")
        return bool(value)
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{op!r} edit: {name} must be a whole number, got {value!r}.")
    number = int(value)
    if kind == "track" and not MIN_TRACK_ID <= number <= MAX_TRACK_ID:
        raise ValueError(
            f"{op!r} edit: {name} {number} is not a track ID ({MIN_TRACK_ID}..{MAX_TRACK_ID})."
        )
    if kind == "frame" and number < 0:
        raise ValueError(f"{op!r} edit: {name} {number} is negative.")
    return number


def _check_relations(edit: dict[str, Any]) -> None:
    op = edit["op"]
    if op == "swap" and edit["track_a"] == edit["track_b"]:
        raise ValueError(f"A swap needs two different tracks: {edit!r}.")
    if op == "merge" and edit["into"] == edit["from"]:
        raise ValueError(f"A merge needs two different tracks: {edit!r}.")
    if op == "split" and edit["track"] == edit["new_id"]:
        raise ValueError(f"A split needs a new ID different from the track's: {edit!r}.")
    if op == "occlusion" and edit["start"] > edit["end"]:
        raise ValueError(f"An occlusion range needs start <= end: {edit!r}.")


def _edits_file(path: str | Path) -> Path:
    path = Path(path)
    return path if path.name == EDITS_FILE_NAME else path / EDITS_FILE_NAME


def _edits_from_document(document: Any, edits_path: Path) -> list[dict[str, Any]]:
    if not isinstance(document, dict) or document.get("format") != EDITS_FORMAT_NAME:
        raise ValueError(f"{edits_path} is not a {EDITS_FORMAT_NAME!r} edit log.")
    version = document.get("version")
    if version != EDITS_FORMAT_VERSION:
        if isinstance(version, int) and version > EDITS_FORMAT_VERSION:
            raise ValueError(
                f"{edits_path} was written by a newer ram-core ({EDITS_FORMAT_NAME} version "
                f"{version}); this reader knows version {EDITS_FORMAT_VERSION} — update the "
                "add-on."
            )
        raise ValueError(f"{edits_path} has an unknown {EDITS_FORMAT_NAME} version {version!r}.")
    edits = document.get("edits")
    if not isinstance(edits, list):
        raise ValueError(f"{edits_path} has no 'edits' list.")
    clean = []
    for position, edit in enumerate(edits):
        try:
            clean.append(validate_edit(edit))
        except ValueError as exc:
            raise ValueError(f"{edits_path}, edit {position}: {exc}") from exc
    return clean


def _swap(table: dict[str, np.ndarray], edit: dict[str, Any]) -> dict[str, np.ndarray]:
    track_id = table["track_id"]
    later = table["frame"] >= edit["from_frame"]
    is_a = later & (track_id == edit["track_a"])
    is_b = later & (track_id == edit["track_b"])
    relabelled = track_id.copy()
    relabelled[is_a] = edit["track_b"]
    relabelled[is_b] = edit["track_a"]
    return {**table, "track_id": relabelled}


def _merge(table: dict[str, np.ndarray], edit: dict[str, Any]) -> dict[str, np.ndarray]:
    track_id = table["track_id"]
    into_frames = table["frame"][track_id == edit["into"]]
    from_rows = track_id == edit["from"]
    clash = from_rows & np.isin(table["frame"], into_frames)
    keep = ~clash
    kept = {name: array[keep] for name, array in table.items()}
    relabelled = kept["track_id"].copy()
    relabelled[relabelled == edit["from"]] = edit["into"]
    return {**kept, "track_id": relabelled}


def _split(table: dict[str, np.ndarray], edit: dict[str, Any]) -> dict[str, np.ndarray]:
    track_id = table["track_id"]
    if np.any(track_id == edit["new_id"]):
        raise ValueError(f"track {edit['new_id']} already exists; pick an unused new_id")
    moving = (track_id == edit["track"]) & (table["frame"] >= edit["from_frame"])
    relabelled = track_id.copy()
    relabelled[moving] = edit["new_id"]
    return {**table, "track_id": relabelled}


def _delete(table: dict[str, np.ndarray], edit: dict[str, Any]) -> dict[str, np.ndarray]:
    keep = table["track_id"] != edit["track"]
    return {name: array[keep] for name, array in table.items()}


def _occlusion(table: dict[str, np.ndarray], edit: dict[str, Any]) -> dict[str, np.ndarray]:
    for name in ("occluded", "reliability"):
        if name not in table:
            raise ValueError(f"the tracks table has no {name!r} array")
    frame = table["frame"]
    rows = (table["track_id"] == edit["track"]) & (frame >= edit["start"]) & (frame <= edit["end"])
    occluded = table["occluded"].copy()
    reliability = table["reliability"].copy()
    occluded[rows] = edit["occluded"]
    reliability[rows] = 0.0 if edit["occluded"] else 1.0
    return {**table, "occluded": occluded, "reliability": reliability}


_APPLY = {
    "swap": _swap,
    "merge": _merge,
    "split": _split,
    "delete": _delete,
    "occlusion": _occlusion,
}
