"""Readers for public tracking and 3D pose benchmarks: MOTChallenge, PoseTrack, 3DPW.

None of these datasets ships with ram_core; users who have them point the readers at their
files. Every reader raises ``BadInputError`` with one line naming the file and what is
wrong, so ``ram-core eval`` can exit with code 2.

- MOTChallenge text (MOT15/16/17/20 ``gt.txt`` and tracker results): one box a line,
  ``frame, id, left, top, width, height[, confidence, ...]``, comma or whitespace separated.
  Coordinates are 1-based pixels (MATLAB's convention); we shift them to 0-based.
- PoseTrack 2018/2021 annotation json: ``images`` (``id``, ``frame_id`` or position,
  ``file_name``) and ``annotations`` (``image_id``, ``track_id``, ``bbox`` as
  ``[left, top, width, height]``). Read as box tracks for MOT metrics.
- 3DPW sequence files (``sequenceFiles/{train,validation,test}/*.pkl``, from
  https://virtualhumans.mpi-inf.mpg.de/3DPW/ under its own licence, which the user
  accepts when downloading; we never ship or fetch it). They are Python 2 pickles of numpy
  arrays, read with ``encoding="latin1"`` through an unpickler that only builds numpy
  arrays and plain containers, so a file cannot run code when it is opened.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ram_core.errors import BadInputError
from ram_core.eval.metrics import TrackedBoxes

_MOT_SEPARATOR = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class MotSequence:
    """A MOTChallenge file: boxes (0-based pixels) and each row's confidence, (N,)."""

    boxes: TrackedBoxes
    confidence: np.ndarray

    def with_min_confidence(self, min_confidence: float) -> MotSequence:
        """Only the rows whose confidence is at least min_confidence (MOT16+ ground truth
        flags boxes to ignore with 0)."""
        keep = self.confidence >= min_confidence
        b = self.boxes
        return MotSequence(
            TrackedBoxes(b.frame[keep], b.track_id[keep], b.box_xyxy[keep]), self.confidence[keep]
        )


def _read_text(path: str | Path, what: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{what} file not found: {p}")
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read {what} file {p}: {exc}") from exc


def _as_int(text: str) -> int:
    """An integer column that some writers print as a float ('12.0')."""
    value = float(text)
    if not value.is_integer():
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)


def read_mot_challenge(path: str | Path) -> MotSequence:
    """Read a MOTChallenge text file. An empty file is a valid tracker output (no boxes)."""
    p = Path(path)
    text = _read_text(p, "MOTChallenge")
    frames: list[int] = []
    ids: list[int] = []
    boxes: list[list[float]] = []
    confidence: list[float] = []
    seen: dict[tuple[int, int], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = [f for f in _MOT_SEPARATOR.split(line) if f]
        where = f"{p}:{number}"
        if len(fields) < 6:
            raise BadInputError(
                f"{where}: expected at least 6 values (frame, id, left, top, width, height), "
                f"got {len(fields)}: {line[:60]!r}"
            )
        try:
            frame, track_id = _as_int(fields[0]), _as_int(fields[1])
            left, top, width, height = (float(v) for v in fields[2:6])
            conf = float(fields[6]) if len(fields) > 6 else 1.0
        except ValueError as exc:
            raise BadInputError(f"{where}: not a number ({exc}): {line[:60]!r}") from exc
        if not np.isfinite([left, top, width, height, conf]).all():
            raise BadInputError(f"{where}: NaN or infinite value: {line[:60]!r}")
        if width < 0 or height < 0:
            raise BadInputError(f"{where}: negative box width or height: {line[:60]!r}")
        if (frame, track_id) in seen:
            raise BadInputError(
                f"{where}: id {track_id} appears twice in frame {frame} "
                f"(first on line {seen[frame, track_id]})"
            )
        seen[frame, track_id] = number
        frames.append(frame)
        ids.append(track_id)
        boxes.append([left - 1.0, top - 1.0, width, height])
        confidence.append(conf)
    return MotSequence(
        TrackedBoxes.from_xywh(
            np.array(frames, dtype=np.int64), np.array(ids, dtype=np.int64), np.array(boxes)
        ),
        np.array(confidence, dtype=np.float64),
    )


@dataclass(frozen=True)
class PoseTrackSequence:
    """Box tracks of a PoseTrack annotation file.

    boxes.frame numbers the images 0.. in frame order; image_ids (F,) and file_names (F,)
    say which image each frame number is.
    """

    boxes: TrackedBoxes
    image_ids: np.ndarray
    file_names: tuple[str, ...]


def _require(record: Any, key: str, where: str) -> Any:
    if not isinstance(record, dict) or key not in record:
        raise BadInputError(f"{where}: missing {key!r}")
    return record[key]


def read_posetrack(path: str | Path) -> PoseTrackSequence:
    """Read a PoseTrack 2018/2021 annotation json (or a tracker result in that format) as
    box tracks. Annotations without a ``bbox`` (keypoint-only rows) are skipped."""
    p = Path(path)
    try:
        data = json.loads(_read_text(p, "PoseTrack"))
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{p}: not valid JSON ({exc})") from exc
    images = _require(data, "images", str(p))
    annotations = _require(data, "annotations", str(p))
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise BadInputError(f"{p}: 'images' and 'annotations' must be lists")

    keyed = []
    for position, image in enumerate(images):
        where = f"{p}: images[{position}]"
        image_id = _require(image, "id", where)
        # PoseTrack's frame_id orders a video's frames; files without it keep list order.
        order = image.get("frame_id", position)
        if not isinstance(image_id, int) or not isinstance(order, int):
            raise BadInputError(f"{where}: 'id' and 'frame_id' must be integers")
        keyed.append((order, image_id, str(image.get("file_name", ""))))
    keyed.sort()
    frame_of_image = {image_id: frame for frame, (_, image_id, _) in enumerate(keyed)}
    if len(frame_of_image) != len(keyed):
        raise BadInputError(f"{p}: two images share one 'id'")

    frames, track_ids, boxes = [], [], []
    for index, annotation in enumerate(annotations):
        where = f"{p}: annotations[{index}]"
        if not isinstance(annotation, dict):
            raise BadInputError(f"{where}: expected an object, got {type(annotation).__name__}")
        bbox = annotation.get("bbox")
        if bbox is None or (isinstance(bbox, list) and not bbox):
            continue
        image_id = _require(annotation, "image_id", where)
        track_id = _require(annotation, "track_id", where)
        if image_id not in frame_of_image:
            raise BadInputError(f"{where}: image_id {image_id} is not in 'images'")
        if not isinstance(track_id, int):
            raise BadInputError(f"{where}: 'track_id' must be an integer, got {track_id!r}")
        if not (
            isinstance(bbox, list)
            and len(bbox) == 4
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
        ):
            raise BadInputError(f"{where}: 'bbox' must be [left, top, width, height]")
        box = np.array(bbox, dtype=np.float64)
        if not np.isfinite(box).all() or box[2] < 0 or box[3] < 0:
            raise BadInputError(f"{where}: 'bbox' has a negative size or a non-finite value")
        frames.append(frame_of_image[image_id])
        track_ids.append(track_id)
        boxes.append(box)
    try:
        tracked = TrackedBoxes.from_xywh(
            np.array(frames, dtype=np.int64),
            np.array(track_ids, dtype=np.int64),
            np.array(boxes).reshape(-1, 4),
        )
    except ValueError as exc:  # a track twice in one image
        raise BadInputError(f"{p}: {exc}") from exc
    return PoseTrackSequence(
        boxes=tracked,
        image_ids=np.array([image_id for _, image_id, _ in keyed], dtype=np.int64),
        file_names=tuple(name for _, _, name in keyed),
    )


# --- 3DPW -------------------------------------------------------------------------------

# The only callables a 3DPW pickle needs: numpy's array and scalar reconstruction, and the
# codec protocol 2 uses for bytes. Anything else (os.system, eval, ...) is refused.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if module.startswith("numpy.") and module.endswith(".multiarray"):
            from numpy.core import multiarray

            return getattr(multiarray, name)
        return getattr(np, name)


def load_numpy_pickle(path: str | Path) -> Any:
    """Unpickle a file made only of numpy arrays, numbers, strings, lists and dicts.

    Python 2 pickles (3DPW's) are decoded with latin1, which is how numpy's own array
    buffers inside them round-trip.
    """
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"3DPW sequence file not found: {p}")
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(p.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise BadInputError(f"{p}: not a readable 3DPW pickle ({exc})") from exc


@dataclass(frozen=True)
class PwSequence:
    """One 3DPW sequence, P actors over T frames (60 Hz fields are not read).

    poses: (P, T, 72) SMPL axis-angle; trans: (P, T, 3) metres, world frame; betas: (P, 10);
    joint_positions: (P, T, 24, 3) SMPL joints in the world frame, or None;
    cam_poses: (T, 4, 4) world-to-camera, or None; campose_valid: (P, T) bool, the frames
    the 3DPW protocol evaluates (all True when the file has none);
    cam_intrinsics: (3, 3) or None; genders: one letter per actor ('m'/'f') or empty;
    img_frame_ids: (T,) image numbers, or None.
    """

    name: str
    poses: np.ndarray
    trans: np.ndarray
    betas: np.ndarray
    joint_positions: np.ndarray | None
    cam_poses: np.ndarray | None
    campose_valid: np.ndarray
    cam_intrinsics: np.ndarray | None
    genders: tuple[str, ...]
    img_frame_ids: np.ndarray | None

    @property
    def num_actors(self) -> int:
        return int(self.poses.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[1])


def _per_actor(data: dict, key: str, where: str, frames: int | None = None) -> np.ndarray:
    """A per-actor list of arrays stacked to (P, ...); with frames, (P, frames, ...)."""
    try:
        stacked = np.stack([np.asarray(v, dtype=np.float64) for v in data[key]])
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{where}: {key!r} is not one array per actor ({exc})") from exc
    if frames is not None and (stacked.ndim < 2 or stacked.shape[1] != frames):
        raise BadInputError(
            f"{where}: {key!r} has shape {stacked.shape}, expected {frames} frames per actor"
        )
    return stacked


def _check_tail(array: np.ndarray, key: str, where: str, tail: tuple[int, ...]) -> None:
    if array.ndim < 2 or array.shape[-len(tail) :] != tail:
        raise BadInputError(f"{where}: {key!r} has shape {array.shape}, expected (..., {tail})")


def read_3dpw(path: str | Path) -> PwSequence:
    """Read one 3DPW ``sequenceFiles/*/*.pkl`` (the user downloads 3DPW themselves)."""
    p = Path(path)
    data = load_numpy_pickle(p)
    where = str(p)
    if not isinstance(data, dict):
        raise BadInputError(f"{where}: expected a dict of arrays, got {type(data).__name__}")
    for key in ("poses", "trans", "betas"):
        if key not in data:
            raise BadInputError(f"{where}: missing {key!r} (is this a 3DPW sequence file?)")
    poses = _per_actor(data, "poses", where)
    if poses.ndim != 3 or poses.shape[2] != 72:
        raise BadInputError(f"{where}: 'poses' has shape {poses.shape}, expected (P, T, 72)")
    num_frames = poses.shape[1]
    trans = _per_actor(data, "trans", where, frames=num_frames)
    _check_tail(trans, "trans", where, (num_frames, 3))
    betas = _per_actor(data, "betas", where)
    if betas.ndim != 2 or betas.shape[1] < 10:
        raise BadInputError(f"{where}: 'betas' has shape {betas.shape}, expected (P, 10)")
    betas = betas[:, :10]  # some releases keep more shape coefficients; SMPL uses 10
    joints = None
    if "jointPositions" in data:
        joints = _per_actor(data, "jointPositions", where, frames=num_frames)
        _check_tail(joints, "jointPositions", where, (num_frames, 72))
        joints = joints.reshape(joints.shape[0], num_frames, 24, 3)
    cam_poses = None
    if "cam_poses" in data:
        cam_poses = np.asarray(data["cam_poses"], dtype=np.float64)
        if cam_poses.shape != (num_frames, 4, 4):
            raise BadInputError(
                f"{where}: 'cam_poses' has shape {cam_poses.shape}, expected ({num_frames}, 4, 4)"
            )
    if "campose_valid" in data:
        valid = _per_actor(data, "campose_valid", where, frames=num_frames)
        if valid.shape != poses.shape[:2]:
            raise BadInputError(f"{where}: 'campose_valid' has shape {valid.shape}, not (P, T)")
        valid = valid.astype(bool)
    else:
        valid = np.ones(poses.shape[:2], dtype=bool)
    intrinsics = None
    if "cam_intrinsics" in data:
        intrinsics = np.asarray(data["cam_intrinsics"], dtype=np.float64)
        if intrinsics.shape != (3, 3):
            raise BadInputError(f"{where}: 'cam_intrinsics' is {intrinsics.shape}, not (3, 3)")
    frame_ids = None
    if "img_frame_ids" in data:
        frame_ids = np.asarray(data["img_frame_ids"], dtype=np.int64).reshape(-1)
    name = data.get("sequence", p.stem)
    genders = tuple(str(g) for g in data.get("genders", ()))
    return PwSequence(
        name=str(name),
        poses=poses,
        trans=trans,
        betas=betas,
        joint_positions=joints,
        cam_poses=cam_poses,
        campose_valid=valid,
        cam_intrinsics=intrinsics,
        genders=genders,
        img_frame_ids=frame_ids,
    )
