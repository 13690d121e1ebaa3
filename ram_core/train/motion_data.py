"""Motion for training the Predictor and the gate: AMASS and 3DPW files, and the lite
reconstructions of our rendered benchmark scenes; windows cut from them.

Every source becomes ``MotionClip``s: 24 SMPL joint rotations per frame (joint 0 the
global orientation, in whatever frame the source uses: the learned Predictor reads it
relative to the last frame's, so the frame does not matter), the root translation, and
the frame rate.

- AMASS (``.npz``: ``poses`` (T, 72 | 156 | 165), ``trans`` (T, 3), ``betas``,
  ``mocap_framerate`` or, in the SMPL-X release, ``mocap_frame_rate``), resampled to 30
  fps (slerp per joint between the two nearest frames, so an exact multiple such as 60
  fps simply takes every other frame). The first 66 values are joints 0-21, as in SMPL.
  Joints 22-23 (SMPL's hands): from values 66-72 of a 72-value SMPL pose; zero (rest) for
  SMPL-H's 156 and SMPL-X's 165, whose values after 66 are other joints (SMPL-H: the
  first finger joints of the left hand; SMPL-X: jaw and eyes) and whose hands have no
  single joint like SMPL's: the hand joint is a rigid end of the wrist in SMPL, so rest
  is what SMPL fits give when there is no hand motion.
- 3DPW (``sequenceFiles/*/*.pkl``, Python 2 pickles read with ``encoding="latin1"``):
  ``poses`` a list per person of (T, 72), ``trans`` (T, 3), ``campose_valid`` (T,) per
  person; 30 fps. Each person's runs of valid frames are clips. The pickle is read by an
  unpickler that builds nothing but numpy arrays and plain containers: any other class
  in the file is refused, so a crafted file cannot run code.
- Scenes: a result folder (``.ram``) gives each track's runs of observed frames (a real
  reconstruction, not occluded); a benchmark scene folder is first run through the lite
  pipeline (as ``benchmarks/bench_predictor.py`` does). These stay at the scene's frame
  rate, the rate the pipeline runs them at.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ram_core.body.rotations import axis_angle_to_matrix, slerp_axis_angle
from ram_core.errors import BadInputError

TARGET_FPS = 30.0
NUM_JOINTS = 24
# Left/right joint pairs of SMPL's 24, for mirrored copies of a motion.
MIRROR_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23))
# Frames shorter runs of observed frames than this are not worth a clip.
MIN_CLIP_FRAMES = 4


@dataclass(frozen=True, eq=False)
class MotionClip:
    """One person's motion: pose_aa (T, 24, 3) axis-angle, transl (T, 3) metres, fps."""

    name: str
    pose_aa: np.ndarray
    transl: np.ndarray
    fps: float

    def __len__(self) -> int:
        return len(self.pose_aa)


# ---------------------------------------------------------------------------- AMASS


def smpl24_from_pose_vector(poses: np.ndarray) -> np.ndarray:
    """(T, 72 | 156 | 165) SMPL / SMPL-H / SMPL-X pose values -> (T, 24, 3) (module
    docstring for joints 22-23)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] not in (72, 156, 165):
        raise ValueError(
            f"poses must be (T, 72) SMPL, (T, 156) SMPL-H or (T, 165) SMPL-X; got {poses.shape}"
        )
    out = np.zeros((len(poses), NUM_JOINTS, 3))
    out[:, :22] = poses[:, :66].reshape(-1, 22, 3)
    if poses.shape[1] == 72:
        out[:, 22:] = poses[:, 66:72].reshape(-1, 2, 3)
    return out


def resample(
    pose_aa: np.ndarray, transl: np.ndarray, fps: float, target_fps: float = TARGET_FPS
) -> tuple[np.ndarray, np.ndarray]:
    """A motion at ``fps`` at ``target_fps`` instead, over the same time span: each new
    frame slerps the rotations and interpolates the translation between the two source
    frames around it. (T, J, 3), (T, 3) -> (T', J, 3), (T', 3)."""
    if fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be > 0, got {fps} and {target_fps}")
    T = len(pose_aa)
    if T == 0 or fps == target_fps:
        return np.asarray(pose_aa, np.float64), np.asarray(transl, np.float64)
    count = int(np.floor((T - 1) * target_fps / fps + 1e-9)) + 1
    source = np.arange(count) * (fps / target_fps)
    before = np.minimum(np.floor(source + 1e-9).astype(int), T - 1)
    after = np.minimum(before + 1, T - 1)
    fraction = np.clip(source - before, 0.0, 1.0)
    joints = pose_aa.shape[1]
    pose = slerp_axis_angle(
        pose_aa[before], pose_aa[after], np.broadcast_to(fraction[:, None], (count, joints))
    )
    moved = transl[before] + fraction[:, None] * (transl[after] - transl[before])
    return pose, moved


def load_amass_motion(path: str | Path, target_fps: float = TARGET_FPS) -> MotionClip:
    """One AMASS motion file as a clip at ``target_fps``. BadInputError for a file that is
    not one."""
    file = Path(path)
    try:
        with np.load(file, allow_pickle=False) as archive:
            poses = archive["poses"]
            trans = archive["trans"]
            rate_key = next(
                (k for k in ("mocap_framerate", "mocap_frame_rate") if k in archive.files), None
            )
            if rate_key is None:
                raise KeyError("mocap_framerate")
            fps = float(archive[rate_key])
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise BadInputError(f"{file} is not an AMASS motion file: {exc!r}") from exc
    try:
        pose_aa = smpl24_from_pose_vector(poses)
        transl = np.asarray(trans, dtype=np.float64)
        if transl.shape != (len(pose_aa), 3):
            raise ValueError(f"trans must be ({len(pose_aa)}, 3), got {transl.shape}")
        pose_aa, transl = resample(pose_aa, transl, fps, target_fps)
    except ValueError as exc:
        raise BadInputError(f"{file}: {exc}") from exc
    return MotionClip(file.stem, pose_aa, transl, target_fps)


# ---------------------------------------------------------------------------- 3DPW


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays, dtypes and scalars, and the containers pickle makes itself
    (lists, dicts, tuples, strings, numbers); refuses every other class. (Python 3 writes
    bytes as ``_codecs.encode(text, "latin1")`` under protocol 2: allowed, it only encodes
    text.)"""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused to build {module}.{name}: not a numpy array")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if name in ("ndarray", "dtype"):
            return getattr(np, name)
        multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
        return getattr(multiarray, name)


def read_restricted_pickle(data: bytes) -> Any:
    """A pickle of numpy arrays and plain containers (Python 2's too: latin1 strings)."""
    return _ArraysOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def load_3dpw_sequence(path: str | Path, min_frames: int = MIN_CLIP_FRAMES) -> list[MotionClip]:
    """A 3DPW sequence file: one clip per person and run of valid camera poses (30 fps).
    BadInputError for a file that is not one (or holds anything but arrays)."""
    file = Path(path)
    try:
        document = read_restricted_pickle(file.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise BadInputError(f"{file} is not a readable 3DPW sequence file: {exc}") from exc
    if not isinstance(document, dict) or "poses" not in document or "trans" not in document:
        raise BadInputError(f"{file} is not a 3DPW sequence file (no poses and trans)")
    people = document["poses"]
    translations = document["trans"]
    valid_lists = document.get("campose_valid")
    if not isinstance(people, list) or not isinstance(translations, list):
        raise BadInputError(f"{file}: poses and trans must be lists, one entry per person")
    clips = []
    for person, (poses, trans) in enumerate(zip(people, translations, strict=True)):
        poses = np.asarray(poses, dtype=np.float64)
        trans = np.asarray(trans, dtype=np.float64)
        if poses.ndim != 2 or poses.shape[1] != 72 or trans.shape != (len(poses), 3):
            raise BadInputError(
                f"{file}: person {person} has poses {poses.shape} and trans {trans.shape}; "
                "expected (T, 72) and (T, 3)"
            )
        valid = np.ones(len(poses), dtype=bool)
        if isinstance(valid_lists, list) and person < len(valid_lists):
            valid = np.asarray(valid_lists[person]).astype(bool).reshape(-1)
            if valid.shape != (len(poses),):
                raise BadInputError(f"{file}: campose_valid of person {person} has the wrong size")
        pose_aa = smpl24_from_pose_vector(poses)
        for start, stop in true_runs(valid, min_frames):
            clips.append(
                MotionClip(
                    f"{file.stem}_p{person}_{start}",
                    pose_aa[start:stop],
                    trans[start:stop],
                    TARGET_FPS,
                )
            )
    return clips


def true_runs(flags: np.ndarray, min_length: int = 1) -> list[tuple[int, int]]:
    """(start, stop) of each run of True at least ``min_length`` long."""
    flags = np.asarray(flags, dtype=bool)
    edges = np.flatnonzero(np.diff(np.r_[0, flags.astype(np.int8), 0]))
    return [
        (int(a), int(b))
        for a, b in zip(edges[::2], edges[1::2], strict=True)
        if b - a >= min_length
    ]


# ---------------------------------------------------------------------------- scenes


def reconstruct_scene(
    scene_dir: str | Path, out_dir: str | Path, frames: int | None = None
) -> Path:
    """Run the lite pipeline on a benchmark scene (the scene's own focal length, no
    preview) into ``out_dir/<name>.ram``, reusing a result already there. Returns it."""
    from ram_core.config import PipelineConfig, RunConfig
    from ram_core.eval.bench_scenes import load_scene
    from ram_core.pipeline import run_pipeline

    scene = load_scene(scene_dir)
    out = Path(out_dir) / f"{scene.name}.ram"
    if (out / "manifest.json").is_file():
        return out
    config = RunConfig(pipeline=PipelineConfig(preview=False, focal_px=float(scene.gt.K[0, 0])))
    return run_pipeline(scene.video_path, out, backend="lite", end=frames, config=config)


def recon_motion(rows: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One track's rows of a result -> its reconstruction before the Predictor and
    Combiner: pose (T, 24, 3) axis-angle, transl (T, 3), and which rows saw the person (T,)."""
    pose = np.concatenate(
        [rows["recon_global_orient"][:, None], rows["recon_body_pose"]], axis=1
    ).astype(np.float64)
    observed = rows["recon_valid"] & ~rows["occluded"]
    return pose, rows["recon_transl"].astype(np.float64), observed


def result_clips(result_dir: str | Path, min_frames: int = MIN_CLIP_FRAMES) -> list[MotionClip]:
    """Each track's runs of observed frames in a result folder (the reconstruction, before
    the Predictor and Combiner)."""
    from ram_core.io.result import load_result

    result = load_result(result_dir, apply_edits=False)
    fps = float((result.manifest.get("source_video") or {}).get("fps") or TARGET_FPS)
    clips = []
    for track_id in result.track_ids():
        rows = result.track(int(track_id))
        pose, transl, observed = recon_motion(rows)
        # Consecutive frames only: a track's rows may skip frames.
        gaps = np.flatnonzero(np.diff(rows["frame"]) != 1) + 1
        for piece in np.split(np.arange(len(observed)), gaps):
            for start, stop in true_runs(observed[piece], min_frames):
                take = piece[start:stop]
                name = f"{Path(result_dir).stem}_t{int(track_id)}_{int(rows['frame'][take[0]])}"
                clips.append(MotionClip(name, pose[take], transl[take], fps))
    return clips


def scene_clips(
    paths: Iterable[str | Path],
    cache_dir: str | Path,
    frames: int | None = None,
    names: Sequence[str] | None = None,
    min_frames: int = MIN_CLIP_FRAMES,
) -> list[MotionClip]:
    """Clips from result folders and benchmark scenes (a scene folder, or a folder of
    them); scenes are reconstructed into ``cache_dir``. ``names``: only these scenes."""
    from ram_core.eval.bench_scenes import SCENE_FILE_NAME

    clips: list[MotionClip] = []
    for path in map(Path, paths):
        if (path / "manifest.json").is_file():
            clips.extend(result_clips(path, min_frames))
            continue
        if (path / SCENE_FILE_NAME).is_file():
            scenes = [path]
        elif path.is_dir():
            scenes = sorted(p for p in path.iterdir() if (p / SCENE_FILE_NAME).is_file())
        else:
            scenes = []
        if not scenes:
            raise BadInputError(f"{path} is neither a result folder nor a benchmark scene (folder)")
        for scene in scenes:
            if names is None or scene.name in names:
                clips.extend(result_clips(reconstruct_scene(scene, cache_dir, frames), min_frames))
    return clips


def load_motion_clips(
    paths: Sequence[str | Path], data_format: str, cache_dir: str | Path | None = None
) -> list[MotionClip]:
    """Clips of every file under ``paths`` in ``data_format`` ("amass": ``.npz`` files,
    "3dpw": ``.pkl`` files, "scenes": ``scene_clips``)."""
    if data_format == "scenes":
        if cache_dir is None:
            raise ValueError("scenes need a cache folder for their reconstructions")
        return scene_clips(paths, cache_dir)
    suffix = {"amass": ".npz", "3dpw": ".pkl"}.get(data_format)
    if suffix is None:
        raise ValueError(f"unknown motion format {data_format!r} (amass, 3dpw, scenes)")
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob(f"*{suffix}") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise BadInputError(f"no such file or folder: {path}")
    if not files:
        raise BadInputError(f"no {suffix} files under {', '.join(map(str, paths))}")
    clips: list[MotionClip] = []
    for file in files:
        if data_format == "amass":
            clips.append(load_amass_motion(file))
        else:
            clips.extend(load_3dpw_sequence(file))
    return clips


# ---------------------------------------------------------------------------- windows


def mirror_rotations(rotations: np.ndarray) -> np.ndarray:
    """The motion seen in a mirror across the body's sagittal plane (x = 0): left and right
    joints swapped and each rotation conjugated by diag(-1, 1, 1). (..., 24, 3, 3)."""
    order = np.arange(NUM_JOINTS)
    for a, b in MIRROR_PAIRS:
        order[a], order[b] = b, a
    flip = np.array([-1.0, 1.0, 1.0])
    mirrored = rotations[..., order, :, :]
    return mirrored * flip[:, None] * flip[None, :]


class MotionWindows:
    """Windows of ``history`` + ``future`` frames from clips, as rotation matrices.

    Each clip is preceded by ``history - 1`` copies of its first frame (what the Combiner
    feeds the learned Predictor before a track has a full window), so every frame after
    a clip's first can be a window's first future frame. ``sample`` draws windows
    uniformly over all of them, mirrored at random when ``mirror``.
    """

    def __init__(self, clips: Sequence[MotionClip], history: int, future: int, mirror: bool):
        if history < 1 or future < 0:
            raise ValueError("windows need history >= 1 and future >= 0")
        self.history, self.future, self.mirror = history, future, mirror
        self.length = history + future
        pieces, starts = [], []
        offset = 0
        for clip in clips:
            if len(clip) < future + 1:
                continue
            R = axis_angle_to_matrix(clip.pose_aa).astype(np.float32)
            padded = np.concatenate([np.repeat(R[:1], history - 1, axis=0), R], axis=0)
            pieces.append(padded)
            count = len(padded) - self.length + 1
            starts.append(offset + np.arange(count))
            offset += len(padded)
        if not pieces:
            raise BadInputError(
                f"no motion clip is long enough for windows of {future + 1} frames ahead"
            )
        self.frames = np.concatenate(pieces, axis=0)  # (N, 24, 3, 3)
        self.starts = np.concatenate(starts)

    def __len__(self) -> int:
        return len(self.starts)

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """(count, history + future, 24, 3, 3) float32."""
        chosen = self.starts[rng.integers(0, len(self.starts), size=count)]
        windows = self.frames[chosen[:, None] + np.arange(self.length)[None, :]]
        if self.mirror:
            flip = rng.random(count) < 0.5
            windows[flip] = mirror_rotations(windows[flip])
        return windows
