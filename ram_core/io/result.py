"""The result folder, format ``ram-motion`` version 1: the one contract between the pipeline
and everything that reads its output. This module writes it atomically and reads it.

numpy and the standard library only: Blender imports this module (it has no cv2 or scipy).

A folder ``NAME.ram/`` holds ``manifest.json``, ``tracks.npz`` (the arrays of
``TRACK_ARRAYS``, one row per (track, frame), sorted by track then frame), ``masks/``
(``{frame:06d}.png`` greyscale label images: track ID per pixel, 0 = background),
``edits.json`` (the artist's append-only edit log, see ``ram_core.io.edits``) and, once the
Combiner has been re-run, ``combined.npz``.

``load_result`` gives the layers in order: the pipeline's output (``tracks.npz``), the edits
applied, and the Combiner's re-run where there is one (``combined.npz`` records which prefix
of the edit log it was made from; edits appended after it are applied on top of it).
``read_mask`` gives a frame's label image remapped through the same edits.

Version rule: version 1 grows only by additions. An array added later (``LATER_ARRAYS``) is
filled on read from what an older result holds, and a manifest field added later has a
documented default (``solved_rest_skeleton``), so every version-1 result still loads.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ram_core.body.skeleton import builtin_rest_skeleton
from ram_core.errors import BadInputError
from ram_core.io.atomic import atomic_file, temporary_sibling
from ram_core.io.edits import (
    EDITS_FILE_NAME,
    MAX_TRACK_ID,
    MIN_TRACK_ID,
    edited_tracks,
    edits_digest,
    empty_edits_document,
    read_edits,
    remap_labels,
)
from ram_core.io.edits import apply_edits as apply_edit_log
from ram_core.io.png import decode_png, encode_label_png

FORMAT_NAME = "ram-motion"
FORMAT_VERSION = 1
MANIFEST_FILE_NAME = "manifest.json"
TRACKS_FILE_NAME = "tracks.npz"
MASKS_DIR_NAME = "masks"
# zlib level of the mask PNGs: label images are long runs, so a low level is nearly as small.
MASK_COMPRESSION_LEVEL = 3

# name -> (shape after the row axis, dtype). Every array has N rows.
TRACK_ARRAYS: dict[str, tuple[tuple[int, ...], np.dtype]] = {
    "track_id": ((), np.dtype(np.int32)),
    "frame": ((), np.dtype(np.int32)),
    "global_orient": ((3,), np.dtype(np.float32)),
    "body_pose": ((23, 3), np.dtype(np.float32)),
    "betas": ((10,), np.dtype(np.float32)),
    "transl": ((3,), np.dtype(np.float32)),
    "box_xyxy": ((4,), np.dtype(np.float32)),
    "s_mask": ((), np.dtype(np.float32)),
    "s_kf": ((), np.dtype(np.float32)),
    "s_fused": ((), np.dtype(np.float32)),
    "reliability": ((), np.dtype(np.float32)),
    "gate": ((), np.dtype(np.float32)),
    "occluded": ((), np.dtype(np.bool_)),
    # Whether the reconstruction at that row is real; where it is not, recon_* hold the
    # prediction, so the Combiner can be re-run from these arrays alone.
    "recon_valid": ((), np.dtype(np.bool_)),
    "recon_global_orient": ((3,), np.dtype(np.float32)),
    "recon_body_pose": ((23, 3), np.dtype(np.float32)),
    "recon_transl": ((3,), np.dtype(np.float32)),
    "pred_global_orient": ((3,), np.dtype(np.float32)),
    "pred_body_pose": ((23, 3), np.dtype(np.float32)),
    "pred_transl": ((3,), np.dtype(np.float32)),
    # How much the reconstructor trusted each estimate, [0, 1]; 0 where recon_valid is False.
    "recon_confidence": ((), np.dtype(np.float32)),
    # Whether each foot (left, right) is planted on the floor at that row, from the final
    # pose in the shot's world frame (ram_core.motion.feet).
    "foot_contact": ((2,), np.dtype(np.bool_)),
}

# Arrays added to version 1 after it first shipped, and how a result without them reads.
LATER_ARRAYS: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
    # Older results dropped the confidence; the Combiner used every real reconstruction at
    # full trust, which is what 1 where recon_valid says.
    "recon_confidence": lambda arrays: np.asarray(arrays["recon_valid"]).astype(np.float32),
    # Older results flagged no contacts (and pinned no feet).
    "foot_contact": lambda arrays: np.zeros((len(arrays["track_id"]), 2), dtype=np.bool_),
}

COMBINED_FILE_NAME = "combined.npz"
# Optional: the camera's placement per frame when it turned (frame (F,), camera_to_world
# (F, 4, 4), the shot's world frame as manifest.world describes it). Absent for a static
# camera, whose one camera_to_world is manifest.world's.
CAMERA_FILE_NAME = "camera.npz"
# Entries of combined.npz beside the tracks table: which edits it was made from.
_COMBINED_EDIT_COUNT = "_edit_count"
_COMBINED_EDIT_DIGEST = "_edit_digest"
# Optional: tracks whose rows in combined.npz hold edits the Combiner has not run on (a re-run
# of some tracks only); absent when there are none.
_COMBINED_UNFUSED = "_unfused_tracks"
# Optional: the Predictor and Combiner settings the re-run used (canonical JSON).
_COMBINED_MOTION_CONFIG = "_motion_config"


class ResultFormatError(BadInputError):
    """A result folder that is missing, not ``ram-motion``, of another version, or corrupt."""


def validate_camera_track(frames: Any, camera_to_world: Any) -> tuple[np.ndarray, np.ndarray]:
    """frames (F,) int32 ascending and unique, >= 0; camera_to_world (F, 4, 4) float64
    rigid transforms. Raises ValueError naming what is wrong."""
    frames = np.asarray(frames)
    matrices = np.asarray(camera_to_world)
    if frames.ndim != 1 or not np.issubdtype(frames.dtype, np.integer):
        raise ValueError("The camera track's frames must be a 1-D integer array.")
    if matrices.shape != (len(frames), 4, 4) or not np.issubdtype(matrices.dtype, np.floating):
        raise ValueError(
            f"The camera track needs ({len(frames)}, 4, 4) float matrices, got {matrices.shape}."
        )
    if len(frames) and (frames.min() < 0 or np.any(np.diff(frames) <= 0)):
        raise ValueError("The camera track's frames must be >= 0 and strictly ascending.")
    matrices = matrices.astype(np.float64)
    rotation = matrices[:, :3, :3]
    rigid = np.allclose(rotation @ np.swapaxes(rotation, 1, 2), np.eye(3), atol=1e-5)
    if (
        not np.all(np.isfinite(matrices))
        or not rigid
        or not np.allclose(matrices[:, 3], [0, 0, 0, 1])
    ):
        raise ValueError("The camera track's camera_to_world are not rigid 4x4 transforms.")
    return frames.astype(np.int32), matrices


def read_camera_track(folder: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A result's ``camera.npz`` as (frames, camera_to_world), None when it has none.
    Raises ResultFormatError for one that cannot be read."""
    path = Path(folder) / CAMERA_FILE_NAME
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return validate_camera_track(data["frame"], data["camera_to_world"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ResultFormatError(f"{path} is unreadable: {exc}") from exc


def validate_tracks(arrays: dict[str, Any]) -> dict[str, np.ndarray]:
    """Check a tracks table against ``TRACK_ARRAYS``; returns arrays in the exact dtypes.

    Arrays of ``LATER_ARRAYS`` that an older table lacks are filled in. Casting is
    value-preserving: floats from any real float or integer array; int32 from
    integers that fit; bool from bool or 0/1 integers. Rows must be sorted by track then
    frame with no repeated (track, frame), track IDs in 1..65535, frames >= 0, floats finite.
    Raises ValueError naming the offending array.
    """
    arrays = dict(arrays)
    for name, fill in LATER_ARRAYS.items():
        if name not in arrays and all(n in arrays for n in TRACK_ARRAYS if n not in LATER_ARRAYS):
            arrays[name] = fill(arrays)
    missing = [name for name in TRACK_ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"The tracks table lacks array(s): {', '.join(missing)}.")
    unknown = sorted(set(arrays) - set(TRACK_ARRAYS))
    if unknown:
        raise ValueError(f"The tracks table has unknown array(s): {', '.join(unknown)}.")
    rows = np.asarray(arrays["track_id"]).shape[:1]
    checked: dict[str, np.ndarray] = {}
    for name, (trailing, dtype) in TRACK_ARRAYS.items():
        array = np.asarray(arrays[name])
        expected_shape = rows + trailing
        if array.ndim == 0 or array.shape != expected_shape:
            raise ValueError(
                f"Array {name!r} has shape {array.shape}; expected (N, ...) = {expected_shape}."
            )
        checked[name] = _cast(name, array, dtype)
    track_id, frame = checked["track_id"], checked["frame"]
    if track_id.size and (track_id.min() < MIN_TRACK_ID or track_id.max() > MAX_TRACK_ID):
        raise ValueError(f"track_id values must be in {MIN_TRACK_ID}..{MAX_TRACK_ID}.")
    if frame.size and frame.min() < 0:
        raise ValueError("frame values must be >= 0.")
    track_step = np.diff(track_id.astype(np.int64))
    frame_step = np.diff(frame.astype(np.int64))
    in_order = (track_step > 0) | ((track_step == 0) & (frame_step > 0))
    if not np.all(in_order):
        row = int(np.argmin(in_order)) + 1
        raise ValueError(
            f"Rows must be sorted by track then frame, each (track, frame) once; row {row} "
            f"(track {track_id[row]}, frame {frame[row]}) breaks the order."
        )
    return checked


def _cast(name: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` in ``dtype`` without changing any value; ValueError otherwise."""
    kind = array.dtype.kind
    if dtype.kind == "f":
        if kind not in "fiu":
            raise ValueError(f"Array {name!r} must hold real numbers, got {array.dtype}.")
        with np.errstate(over="ignore"):
            cast = array.astype(dtype)
        if not np.all(np.isfinite(cast)):
            raise ValueError(f"Array {name!r} holds NaN or infinite values (as {dtype}).")
        return cast
    if dtype.kind == "i":
        if kind not in "iu":
            raise ValueError(f"Array {name!r} must hold integers, got {array.dtype}.")
        limits = np.iinfo(dtype)
        if array.size and (array.min() < limits.min or array.max() > limits.max):
            raise ValueError(f"Array {name!r} holds values outside {dtype}.")
        return array.astype(dtype)
    if kind == "b":
        return array.astype(dtype)
    if kind in "iu" and np.all((array == 0) | (array == 1)):
        return array.astype(dtype)
    raise ValueError(f"Array {name!r} must hold booleans, got {array.dtype}.")


def check_output_path(out_path: str | Path) -> Path:
    """Refuse an output path the writer must not replace; returns it as a Path.

    Allowed: a path that does not exist yet (its parent is created on write), or an existing
    ram-motion result folder whose edit log is empty. Refused (BadInputError): anything else
    that exists, and a result holding the artist's edits, which are never overwritten.
    """
    target = Path(out_path)
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise BadInputError(
                f"Output {target} exists and is not a ram-motion result folder; pick another "
                "-o or remove it."
            )
        if not _is_ram_motion_folder(target):
            raise BadInputError(
                f"Output folder {target} exists and is not a ram-motion result folder; pick "
                "another -o or remove it."
            )
        try:
            edits = read_edits(target)
        except (OSError, ValueError) as exc:
            raise BadInputError(
                f"Output {target} has an edit log that cannot be read ({exc}); pick another "
                "-o or remove it."
            ) from exc
        if edits:
            raise BadInputError(
                f"Output {target} holds {len(edits)} edit(s) by the artist, which are never "
                "overwritten; pick another -o or remove it."
            )
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInputError(f"Output {target} cannot be made: {ancestor} is not a folder.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadInputError(f"Output {target} cannot be made: {ancestor} is not writable.")
    return target


class ResultWriter:
    """Writes a result folder beside its target and moves it into place in one rename.

    Use as a context manager::

        with ResultWriter("out.ram") as writer:
            writer.write_mask(frame, labels)
            ...
            writer.finish(manifest, tracks)

    Until ``finish`` succeeds everything lives in ``NAME.ram.tmp-<pid>-<random>``; leaving
    the block any other way (an exception, KeyboardInterrupt, or no ``finish``) deletes it
    and leaves the target as it was.
    """

    def __init__(self, out_path: str | Path) -> None:
        self.out_path = check_output_path(out_path)
        self._temporary: Path | None = None
        self._finished = False
        self._mask_shape: tuple[int, int] | None = None

    def __enter__(self) -> ResultWriter:
        if self._temporary is not None or self._finished:
            raise RuntimeError("A ResultWriter can be entered once.")
        check_output_path(self.out_path)
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = temporary_sibling(self.out_path, "tmp")
        self._temporary.mkdir()
        try:
            (self._temporary / MASKS_DIR_NAME).mkdir()
        except BaseException:
            self._discard()
            raise
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if not self._finished:
            self._discard()

    @property
    def temporary_path(self) -> Path | None:
        """Where the folder is being written (None outside the with-block)."""
        return self._temporary

    def write_mask(self, frame_index: int, labels: np.ndarray) -> Path:
        """Write frame ``frame_index``'s label image: (H, W) track IDs, 0 = background.

        Lossless PNG, 8-bit when every ID is below 256, else 16-bit. All masks of a result
        share one size.
        """
        folder = self._open_folder()
        if isinstance(frame_index, bool) or not isinstance(frame_index, int | np.integer):
            raise ValueError(f"frame_index must be a whole number, got {frame_index!r}.")
        if frame_index < 0:
            raise ValueError(f"frame_index must be >= 0, got {frame_index}.")
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.size == 0:
            raise ValueError(f"A mask must be a non-empty (H, W) array, got {labels.shape}.")
        if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
            raise ValueError(f"Mask labels must be integer track IDs, got {labels.dtype}.")
        if labels.min() < 0 or labels.max() > MAX_TRACK_ID:
            raise ValueError(f"Mask labels must be in 0..{MAX_TRACK_ID}.")
        if self._mask_shape is None:
            self._mask_shape = labels.shape
        elif labels.shape != self._mask_shape:
            raise ValueError(
                f"Mask of frame {frame_index} is {labels.shape}; earlier masks are "
                f"{self._mask_shape}."
            )
        path = mask_path(folder, int(frame_index))
        path.write_bytes(encode_label_png(labels, compression_level=MASK_COMPRESSION_LEVEL))
        return path

    def finish(self, manifest: dict[str, Any], tracks: dict[str, Any]) -> Path:
        """Validate, write manifest, tracks and an empty edit log, then move into place.

        Returns the final path. If anything fails before the final rename, nothing appears
        at the target and the temporary folder is deleted.
        """
        folder = self._open_folder()
        try:
            checked = validate_tracks(tracks)
            own = {k: v for k, v in manifest.items() if k not in ("format", "version")}
            document = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **own}
            _write_json(folder / MANIFEST_FILE_NAME, document)
            with open(folder / TRACKS_FILE_NAME, "wb") as stream:
                np.savez_compressed(stream, **checked)
                stream.flush()
                os.fsync(stream.fileno())
            _write_json(folder / EDITS_FILE_NAME, empty_edits_document())
            # An artist may have edited the old result while the pipeline ran.
            check_output_path(self.out_path)
            self._move_into_place(folder)
        except BaseException:
            self._discard()
            raise
        self._finished = True
        self._temporary = None
        return self.out_path

    def write_camera_track(self, frames: np.ndarray, camera_to_world: np.ndarray) -> Path:
        """Write the camera's placement per frame (``camera.npz``) for a turning camera."""
        folder = self._open_folder()
        frames, camera_to_world = validate_camera_track(frames, camera_to_world)
        path = folder / CAMERA_FILE_NAME
        with open(path, "wb") as stream:
            np.savez_compressed(stream, frame=frames, camera_to_world=camera_to_world)
        return path

    def _open_folder(self) -> Path:
        if self._finished:
            raise RuntimeError("This ResultWriter has already finished.")
        if self._temporary is None:
            raise RuntimeError("Use ResultWriter inside a with-block.")
        return self._temporary

    def _move_into_place(self, folder: Path) -> None:
        target = self.out_path
        if not target.exists():
            os.rename(folder, target)
            return
        old = temporary_sibling(target, "old")
        os.rename(target, old)
        try:
            os.rename(folder, target)
        except BaseException:
            os.rename(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)

    def _discard(self) -> None:
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None


@dataclass
class RamResult:
    """A loaded result folder. ``tracks``: name -> (N, ...) arrays as in ``TRACK_ARRAYS``.

    ``layers`` says what ``tracks`` holds, in order: ``("pipeline",)``, then ``"edits"``
    when the edit log was applied, then ``"combined"`` when it starts from the Combiner's
    re-run. ``combined_stale`` is True when a ``combined.npz`` was found but not used (it
    was made from edits that are no longer the log's start).

    ``unfused_tracks``: the tracks whose final pose (``global_orient``, ``body_pose``,
    ``transl``, ``gate``, ``pred_*``) may not be the Combiner's output for their current
    inputs, because an edit since the last run (the pipeline's own, or ``combined.npz``)
    names them. Every other track's final pose already is what a re-run would give, so a
    re-run may skip it. A superset: every edit that moves rows names the tracks it moves.
    """

    path: Path
    manifest: dict[str, Any]
    tracks: dict[str, np.ndarray]
    edits: list[dict[str, Any]] = field(default_factory=list)
    edits_applied: bool = False
    layers: tuple[str, ...] = ("pipeline",)
    combined_stale: bool = False
    unfused_tracks: frozenset[int] = frozenset()
    # The settings the ``combined`` layer was made with (its canonical JSON), None for the
    # pipeline's own layer (made with the manifest's) or a re-run that did not record them.
    combined_motion_config: str | None = None
    # A turning camera's placement per frame (``camera.npz``): (frames, camera_to_world);
    # None for a static camera.
    camera_track: tuple[np.ndarray, np.ndarray] | None = None

    def track_ids(self) -> np.ndarray:
        """(K,) int32, the IDs present, ascending."""
        return np.unique(self.tracks["track_id"]).astype(np.int32)

    def track(self, track_id: int) -> dict[str, np.ndarray]:
        """The rows of one track, in frame order: name -> (T, ...). KeyError if absent."""
        ids = self.tracks["track_id"]
        first = int(np.searchsorted(ids, track_id, side="left"))
        stop = int(np.searchsorted(ids, track_id, side="right"))
        if first == stop:
            raise KeyError(f"No track {track_id} in {self.path}.")
        return {name: array[first:stop] for name, array in self.tracks.items()}

    @property
    def rest_skeleton(self) -> dict[str, Any]:
        """The rest skeleton the result was solved on (see ``solved_rest_skeleton``)."""
        return solved_rest_skeleton(self.manifest)


def load_result(path: str | Path, apply_edits: bool = True, use_combined: bool = True) -> RamResult:
    """Read a result folder (numpy only), the layers in order.

    ``apply_edits``: apply the edit log (False: the pipeline's own output, nothing else).
    ``use_combined``: start from the Combiner's re-run (``combined.npz``) where there is one
    made from a prefix of the current log, and apply the rest of the log on top of it.

    Raises ResultFormatError with one clear message for a missing folder, a folder that is
    not ram-motion, another format, a version other than 1, or corrupt content.
    """
    folder = Path(path)
    if not folder.exists():
        raise ResultFormatError(f"No result folder at {folder}.")
    if not folder.is_dir():
        raise ResultFormatError(f"{folder} is a file, not a ram-motion result folder.")
    manifest = _read_manifest(folder)
    camera_track = read_camera_track(folder)
    try:
        edits = read_edits(folder)
    except ValueError as exc:
        raise ResultFormatError(f"The edit log of {folder} cannot be used: {exc}") from exc
    combined = None
    combined_stale = False
    unfused: set[int] = set()
    motion_config = None
    if apply_edits and use_combined and (folder / COMBINED_FILE_NAME).is_file():
        combined, made_from, unfused, motion_config = _read_combined(folder / COMBINED_FILE_NAME)
        if made_from is None or not _is_log_prefix(made_from, edits):
            combined, combined_stale, unfused, motion_config = None, True, set(), None
    if combined is not None:
        # tracks.npz is not read: the re-run was made from it and the edits it records.
        tracks, pending = combined, edits[made_from[0] :]
        layers: tuple[str, ...] = ("pipeline", "edits", "combined")
    else:
        tracks, pending = _read_tracks(folder / TRACKS_FILE_NAME), edits
        layers = ("pipeline", "edits")
    if not apply_edits:
        return RamResult(
            path=folder, manifest=manifest, tracks=tracks, edits=edits, camera_track=camera_track
        )
    if pending:
        try:
            tracks = apply_edit_log(tracks, pending)
        except ValueError as exc:
            raise ResultFormatError(f"The edits of {folder} cannot be applied: {exc}") from exc
    present = set(np.unique(tracks["track_id"]).tolist())
    return RamResult(
        path=folder,
        manifest=manifest,
        tracks=tracks,
        edits=edits,
        edits_applied=True,
        layers=layers,
        combined_stale=combined_stale,
        unfused_tracks=frozenset((unfused | edited_tracks(pending)) & present),
        combined_motion_config=motion_config,
        camera_track=camera_track,
    )


def write_combined(
    path: str | Path,
    tracks: dict[str, Any],
    edits: list[dict[str, Any]],
    unfused_tracks: set[int] | frozenset[int] = frozenset(),
    motion_config: str | None = None,
) -> Path:
    """Write the Combiner's re-run (a full tracks table made with ``edits`` applied) as
    ``combined.npz``, replacing any earlier one atomically. Never touches ``tracks.npz``.

    ``unfused_tracks``: tracks whose rows the re-run left as they were although an edit
    names them (a re-run of other tracks only). ``motion_config``: the settings it ran
    with, as ``ram_core.motion.recombine.motion_config_record`` gives them. Stored
    uncompressed: the add-on reads and writes it on every re-run, and zlib would take most
    of that time.
    """
    folder = Path(path)
    checked = validate_tracks(tracks)
    target = folder / COMBINED_FILE_NAME
    entries = {
        **checked,
        _COMBINED_EDIT_COUNT: np.asarray(len(edits), dtype=np.int64),
        _COMBINED_EDIT_DIGEST: np.asarray(edits_digest(edits)),
    }
    if unfused_tracks:
        entries[_COMBINED_UNFUSED] = np.asarray(sorted(unfused_tracks), dtype=np.int32)
    if motion_config is not None:
        entries[_COMBINED_MOTION_CONFIG] = np.asarray(motion_config)
    with atomic_file(target) as stream:
        np.savez(stream, **entries)
    return target


def solved_rest_skeleton(manifest: dict[str, Any]) -> dict[str, Any]:
    """The rest skeleton a result was solved on, from its manifest's ``rest_skeleton``.

    ``{"kind": "builtin", "name", "sha256", "pelvis_m"}``: the built-in SMPL-24 skeleton,
    ``transl`` solved against its rest pelvis ``pelvis_m``. ``{"kind": "smpl_file",
    "sha256", ...}``: the user's SMPL model file (by hash), in the body model's own terms.
    Results written before the field existed were all solved on the built-in skeleton
    (both backends fitted it by inverse kinematics), so that is the default.
    Raises ResultFormatError for a field of an unknown kind.
    """
    record = manifest.get("rest_skeleton")
    if record is None:
        return {**builtin_rest_skeleton(), "recorded": False}
    if not isinstance(record, dict) or record.get("kind") not in ("builtin", "smpl_file"):
        raise ResultFormatError(
            f"The manifest's rest_skeleton {record!r} is not one this reader knows "
            "(builtin or smpl_file); update the add-on."
        )
    if record["kind"] == "builtin":
        pelvis = record.get("pelvis_m", [0.0, 0.0, 0.0])
        if not (isinstance(pelvis, list) and len(pelvis) == 3):
            raise ResultFormatError(f"The manifest's rest_skeleton pelvis_m {pelvis!r} is bad.")
    return {**record, "recorded": True}


def mask_path(path: str | Path, frame: int) -> Path:
    """Where frame ``frame``'s label image lives in a result folder."""
    return Path(path) / MASKS_DIR_NAME / f"{int(frame):06d}.png"


def read_mask(
    path: str | Path,
    frame: int,
    apply_edits: bool = True,
    edits: list[dict[str, Any]] | None = None,
) -> np.ndarray:
    """Frame ``frame``'s label image: (H, W) uint16 track IDs, 0 = background (numpy only).

    With ``apply_edits`` the labels are remapped through the edit log, so they name the
    same tracks as ``load_result``'s table. ``edits``: the log when the caller has it
    already (reading many frames), else it is read from the folder.
    """
    file = mask_path(path, frame)
    if not file.is_file():
        raise ResultFormatError(f"{Path(path)} has no mask for frame {frame} ({file}).")
    try:
        image = decode_png(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ResultFormatError(f"Mask {file} is not a greyscale PNG label image ({exc}).") from exc
    labels = image.astype(np.uint16, copy=False)
    if not apply_edits:
        return labels
    if edits is None:
        try:
            edits = read_edits(path)
        except ValueError as exc:
            raise ResultFormatError(f"The edit log of {path} cannot be used: {exc}") from exc
    return remap_labels(labels, int(frame), edits)


def _is_ram_motion_folder(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST_FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME


def _read_manifest(folder: Path) -> dict[str, Any]:
    manifest_file = folder / MANIFEST_FILE_NAME
    if not manifest_file.is_file():
        raise ResultFormatError(f"{folder} is not a ram-motion result folder (no manifest.json).")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFormatError(f"{manifest_file} cannot be read as JSON ({exc}).") from exc
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise ResultFormatError(f"{folder} is not a ram-motion result folder (no format named).")
    if manifest["format"] != FORMAT_NAME:
        raise ResultFormatError(
            f"{folder} holds format {manifest['format']!r}, not {FORMAT_NAME!r}."
        )
    version = manifest.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise ResultFormatError(
            f"{folder} was written by a newer ram-core ({FORMAT_NAME} version {version}); "
            f"this reader knows version {FORMAT_VERSION} — update the add-on."
        )
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ResultFormatError(
            f"{folder} has {FORMAT_NAME} version {version!r}; this reader knows version "
            f"{FORMAT_VERSION}."
        )
    return manifest


def _read_npz(file: Path) -> dict[str, np.ndarray]:
    if not file.is_file():
        raise ResultFormatError(f"{file.parent} has no {file.name}.")
    try:
        with np.load(file, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ResultFormatError(f"{file} is corrupt ({exc}).") from exc


def _read_tracks(file: Path, arrays: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    arrays = _read_npz(file) if arrays is None else arrays
    try:
        return validate_tracks(arrays)
    except ValueError as exc:
        raise ResultFormatError(f"{file} is not a valid tracks table: {exc}") from exc


def _read_combined(
    file: Path,
) -> tuple[dict[str, np.ndarray] | None, tuple[int, str] | None, set[int], str | None]:
    """combined.npz's table, which edits it was made from (how many, their digest), the
    tracks it left unfused and the settings it recorded.

    (None, None, {}, None) for a file that cannot be read or does not say what it was made from: it
    is then not used (the pipeline's output and the edit log still are), never an error that
    would keep the artist from their result.
    """
    try:
        arrays = _read_npz(file)
        count = arrays.pop(_COMBINED_EDIT_COUNT, None)
        digest = arrays.pop(_COMBINED_EDIT_DIGEST, None)
        unfused = arrays.pop(_COMBINED_UNFUSED, np.zeros(0, dtype=np.int32))
        config = arrays.pop(_COMBINED_MOTION_CONFIG, None)
        table = _read_tracks(file, arrays)
    except ResultFormatError:
        return None, None, set(), None
    if count is None or digest is None or count.ndim or digest.ndim or unfused.ndim != 1:
        return None, None, set(), None
    recorded = str(config) if config is not None and config.ndim == 0 else None
    return table, (int(count), str(digest)), set(unfused.astype(int).tolist()), recorded


def _is_log_prefix(made_from: tuple[int, str], edits: list[dict[str, Any]]) -> bool:
    count, digest = made_from
    return 0 <= count <= len(edits) and edits_digest(edits[:count]) == digest


def _write_json(path: Path, document: Any) -> None:
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(document, stream, indent=1, allow_nan=False, default=_json_value)
        stream.write("\n")
        stream.flush()
        os.fsync(stream.fileno())


def _json_value(value: Any) -> Any:
    """numpy scalars and arrays and paths in a manifest become plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot go into a manifest: {value!r}")


__all__ = [
    "CAMERA_FILE_NAME",
    "COMBINED_FILE_NAME",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LATER_ARRAYS",
    "TRACK_ARRAYS",
    "RamResult",
    "ResultFormatError",
    "ResultWriter",
    "check_output_path",
    "load_result",
    "mask_path",
    "read_camera_track",
    "read_mask",
    "solved_rest_skeleton",
    "validate_camera_track",
    "validate_tracks",
    "write_combined",
]
