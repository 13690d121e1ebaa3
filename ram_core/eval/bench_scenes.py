"""Benchmark scenes (format ``ram-bench-scene``, version 1): reading and validating them.

A scene is a folder ``SCENES_DIR/<name>/`` written by ``tools/make_bench_scenes.py``:
``video.mp4`` (the rendered clip), ``scene.json`` (name, seed, description, fps, width,
height, frame_count, format, version, generator), ``gt.npz`` (ground truth per frame and
person, see ``SceneGroundTruth``) and ``masks.npz`` (``labels`` (F, H, W) uint8: 0
background, i + 1 where person index i is the visible surface).

The bundled demo clip is accepted too, in its older form: a video ``X.mp4`` with ``X_gt.npz``
beside it (a static camera given once, no ``in_frame``, no masks, no scene.json). Its name
is ``<folder>_<stem>`` (``demo/three_people.mp4`` is ``demo_three_people``).

Every problem is one ``BadInputError`` (exit 2) naming the scene and what is wrong.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ram_core.errors import BadInputError

SCENE_FORMAT = "ram-bench-scene"
SCENE_VERSION = 1
DEFAULT_SCENES_DIR = Path("benchmarks") / "scenes"
RENDER_COMMAND = ".venv/bin/python tools/make_bench_scenes.py"
SCENE_FILE_NAME = "scene.json"
VIDEO_FILE_NAME = "video.mp4"
GROUND_TRUTH_FILE_NAME = "gt.npz"
MASKS_FILE_NAME = "masks.npz"
LEGACY_GROUND_TRUTH_SUFFIX = "_gt.npz"
NUM_JOINTS = 24

_SCENE_JSON_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "seed": (int,),
    "description": (str,),
    "fps": (int, float),
    "width": (int,),
    "height": (int,),
    "frame_count": (int,),
    "format": (str,),
    "version": (int,),
    "generator": (str,),
}


@dataclass(frozen=True)
class SceneGroundTruth:
    """What really happened in a scene; F frames, P people, float arrays as stored (float32).

    K: (3, 3) intrinsics in pixels. R_world_to_cam: (F, 3, 3), t_world_to_cam: (F, 3), with
    ``x_cam = R @ x_world + t`` per frame (a static camera is repeated). person_ids: (P,).
    box_full_xyxy: (F, P, 4) whole body, NaN when the person is outside the frame.
    box_visible_xyxy: (F, P, 4) the part no one hides, NaN when nothing is visible.
    visible_fraction: (F, P) in [0, 1]. in_frame: (F, P) bool, some part inside the image.
    joints_world, joints_cam: (F, P, 24, 3) SMPL-24 joints in metres (camera: OpenCV axes).
    """

    fps: float
    width: int
    height: int
    K: np.ndarray
    R_world_to_cam: np.ndarray
    t_world_to_cam: np.ndarray
    person_ids: np.ndarray
    box_full_xyxy: np.ndarray
    box_visible_xyxy: np.ndarray
    visible_fraction: np.ndarray
    in_frame: np.ndarray
    joints_world: np.ndarray
    joints_cam: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.visible_fraction.shape[0])

    @property
    def num_people(self) -> int:
        return int(self.person_ids.shape[0])


@dataclass(frozen=True)
class BenchScene:
    """One benchmark scene: its clip, what it stresses, and its ground truth."""

    name: str
    path: Path
    """The scene folder, or the clip itself for the demo's older form."""
    video_path: Path
    description: str
    seed: int | None
    fps: float
    width: int
    height: int
    frame_count: int
    generator: str | None
    gt: SceneGroundTruth
    masks_path: Path | None
    """``masks.npz``; None for the demo's older form, which has none."""

    def load_masks(self) -> np.ndarray:
        """labels: (F, H, W) uint8, 0 background, i + 1 for person index i."""
        if self.masks_path is None:
            raise BadInputError(f"benchmark scene {self.name} has no instance masks")
        labels = _load_npz(self.masks_path, self.name)["labels"]
        if labels.max(initial=0) > self.gt.num_people:
            raise BadInputError(
                f"benchmark scene {self.name}: {MASKS_FILE_NAME} labels go up to "
                f"{int(labels.max())} but the scene has {self.gt.num_people} people"
            )
        return labels


# --------------------------------------------------------------------------- listing


def no_scenes_message(scenes_dir: Path) -> str:
    return (
        f"no benchmark scenes in {scenes_dir}; render them with `{RENDER_COMMAND}` "
        "(run from the repository root)"
    )


def list_scenes(scenes_dir: str | Path) -> list[Path]:
    """The scene folders inside ``scenes_dir``, sorted by name; hidden entries are skipped.

    BadInputError, naming the command that renders them, when the folder is missing or
    holds no scene.
    """
    folder = Path(scenes_dir)
    if not folder.is_dir():
        raise BadInputError(no_scenes_message(folder))
    scenes = sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )
    if not scenes:
        raise BadInputError(no_scenes_message(folder))
    return scenes


def resolve_scenes(scenes_dir: str | Path, names: list[str] | None = None) -> list[BenchScene]:
    """Load the scenes of ``scenes_dir`` (all of them, or those named).

    A name may also be a path: a scene folder anywhere, or a clip in the demo's older form
    (``demo/three_people.mp4``).
    """
    if not names:
        return [load_scene(p) for p in list_scenes(scenes_dir)]
    scenes = []
    for name in names:
        as_path = Path(name)
        if as_path.exists():
            scenes.append(load_scene(as_path))
            continue
        candidate = Path(scenes_dir) / name
        if candidate.is_dir():
            scenes.append(load_scene(candidate))
            continue
        available = [p.name for p in list_scenes(scenes_dir)]
        raise BadInputError(
            f"no benchmark scene {name!r} in {scenes_dir}; available: {', '.join(available)}"
        )
    return scenes


# --------------------------------------------------------------------------- loading


def load_scene(path: str | Path) -> BenchScene:
    """Read and validate one scene: a scene folder, or a demo-style ``X.mp4`` + ``X_gt.npz``."""
    p = Path(path)
    if p.is_file():
        return _load_legacy_clip(p)
    if not p.is_dir():
        raise BadInputError(f"benchmark scene not found: {p}")
    document = _read_scene_json(p)
    name = document["name"]
    if name != p.name:
        raise BadInputError(
            f"benchmark scene {p}: scene.json names it {name!r}, but its folder is {p.name!r}"
        )
    video = p / VIDEO_FILE_NAME
    masks = p / MASKS_FILE_NAME
    for required in (video, p / GROUND_TRUTH_FILE_NAME, masks):
        if not required.is_file():
            raise BadInputError(
                f"benchmark scene {p}: {required.name} is missing; re-render it with "
                f"`{RENDER_COMMAND}`"
            )
    gt = _ground_truth(_load_npz(p / GROUND_TRUTH_FILE_NAME, name), name, legacy=False)
    _check_against_json(gt, document, name)
    _check_masks_header(masks, gt, name)
    _check_video(video, gt.num_frames, name)
    return BenchScene(
        name=name,
        path=p,
        video_path=video,
        description=document["description"],
        seed=document["seed"],
        fps=float(document["fps"]),
        width=document["width"],
        height=document["height"],
        frame_count=document["frame_count"],
        generator=document["generator"],
        gt=gt,
        masks_path=masks,
    )


def _load_legacy_clip(video: Path) -> BenchScene:
    name = f"{video.parent.resolve().name}_{video.stem}"
    gt_path = video.with_name(video.stem + LEGACY_GROUND_TRUTH_SUFFIX)
    if not gt_path.is_file():
        raise BadInputError(
            f"benchmark scene {video}: a clip needs its ground truth {gt_path.name} beside it"
        )
    gt = _ground_truth(_load_npz(gt_path, name), name, legacy=True)
    _check_video(video, gt.num_frames, name)
    return BenchScene(
        name=name,
        path=video,
        video_path=video,
        description="the bundled demo clip (static camera, older form: no masks, no scene.json)",
        seed=None,
        fps=gt.fps,
        width=gt.width,
        height=gt.height,
        frame_count=gt.num_frames,
        generator=None,
        gt=gt,
        masks_path=None,
    )


def _read_scene_json(folder: Path) -> dict[str, Any]:
    path = folder / SCENE_FILE_NAME
    if not path.is_file():
        raise BadInputError(
            f"benchmark scene {folder}: {SCENE_FILE_NAME} is missing (not a scene folder, or "
            f"a render that did not finish); re-render with `{RENDER_COMMAND}`"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(
            f"benchmark scene {folder}: cannot read {SCENE_FILE_NAME}: {exc}"
        ) from None
    if not isinstance(document, dict):
        raise BadInputError(f"benchmark scene {folder}: {SCENE_FILE_NAME} must be an object")
    # Format and version first: a newer scene may differ in every other field.
    if document.get("format") != SCENE_FORMAT:
        raise BadInputError(
            f"benchmark scene {folder}: format is {document.get('format')!r}, "
            f"expected {SCENE_FORMAT!r}"
        )
    if document.get("version") != SCENE_VERSION:
        raise BadInputError(
            f"benchmark scene {folder}: version {document.get('version')!r} is not one this "
            f"ram-core reads (version {SCENE_VERSION}); re-render with `{RENDER_COMMAND}`"
        )
    for key, types in _SCENE_JSON_FIELDS.items():
        value = document.get(key)
        if isinstance(value, bool) or not isinstance(value, types):
            kind = " or ".join(t.__name__ for t in types)
            raise BadInputError(
                f"benchmark scene {folder}: {SCENE_FILE_NAME} field {key!r} must be {kind}, "
                f"got {value!r}"
            )
    for key in ("fps", "width", "height", "frame_count"):
        if not math.isfinite(document[key]) or document[key] <= 0:
            raise BadInputError(
                f"benchmark scene {folder}: {SCENE_FILE_NAME} field {key!r} must be positive"
            )
    return document


def _load_npz(path: Path, scene: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise BadInputError(f"benchmark scene {scene}: cannot read {path.name}: {exc}") from None


def _fail(scene: str, file_name: str, message: str) -> BadInputError:
    return BadInputError(f"benchmark scene {scene}: {file_name} {message}")


def _array(
    arrays: dict[str, np.ndarray], key: str, shape: tuple[int | None, ...], kind: str, scene: str
) -> np.ndarray:
    """``arrays[key]`` checked for shape (None: any length) and dtype kind ('f', 'i', 'b')."""
    file_name = GROUND_TRUTH_FILE_NAME
    if key not in arrays:
        raise _fail(scene, file_name, f"has no array {key!r}")
    array = arrays[key]
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape, strict=True)
    ):
        wanted = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise _fail(scene, file_name, f"array {key!r} has shape {array.shape}, expected {wanted}")
    kinds = {"f": "f", "i": "iu", "b": "b"}[kind]
    if array.dtype.kind not in kinds:
        what = {"f": "floats", "i": "integers", "b": "booleans"}[kind]
        raise _fail(scene, file_name, f"array {key!r} must hold {what}, got {array.dtype}")
    return array


def _scalar(arrays: dict[str, np.ndarray], key: str, scene: str) -> float:
    if key not in arrays or arrays[key].shape != () or arrays[key].dtype.kind not in "iuf":
        raise _fail(scene, GROUND_TRUTH_FILE_NAME, f"needs a number {key!r}")
    return float(arrays[key])


def _ground_truth(arrays: dict[str, np.ndarray], scene: str, legacy: bool) -> SceneGroundTruth:
    name = GROUND_TRUTH_FILE_NAME
    fps = _scalar(arrays, "fps", scene)
    width = _scalar(arrays, "width", scene)
    height = _scalar(arrays, "height", scene)
    if fps <= 0 or width < 1 or height < 1 or not width.is_integer() or not height.is_integer():
        raise _fail(scene, name, "needs a positive fps and whole positive width and height")
    person_ids = _array(arrays, "person_ids", (None,), "i", scene)
    visible = _array(arrays, "visible_fraction", (None, None), "f", scene)
    frames, people = visible.shape
    if frames < 1 or people < 1 or person_ids.shape[0] != people:
        raise _fail(
            scene,
            name,
            f"has {frames} frames and {people} people in visible_fraction against "
            f"{person_ids.shape[0]} person_ids",
        )
    if np.unique(person_ids).size != people:
        raise _fail(scene, name, "repeats a person id in person_ids")
    K = _array(arrays, "K", (3, 3), "f", scene)
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise _fail(scene, name, "array 'K' must be finite with positive focal lengths")

    R, t = arrays.get("R_world_to_cam"), arrays.get("t_world_to_cam")
    static = R is not None and R.ndim == 2
    R = _array(arrays, "R_world_to_cam", (3, 3) if static else (frames, 3, 3), "f", scene)
    t = _array(arrays, "t_world_to_cam", (3,) if static else (frames, 3), "f", scene)
    if static:
        R = np.broadcast_to(R, (frames, 3, 3))
        t = np.broadcast_to(t, (frames, 3))
    if not (np.isfinite(R).all() and np.isfinite(t).all()):
        raise _fail(scene, name, "camera pose holds NaN or infinite values")

    box_full = _array(arrays, "box_full_xyxy", (frames, people, 4), "f", scene)
    box_visible = _array(arrays, "box_visible_xyxy", (frames, people, 4), "f", scene)
    joints_world = _array(arrays, "joints_world", (frames, people, NUM_JOINTS, 3), "f", scene)
    joints_cam = _array(arrays, "joints_cam", (frames, people, NUM_JOINTS, 3), "f", scene)
    if not (np.isfinite(visible).all() and visible.min() >= 0.0 and visible.max() <= 1.0):
        raise _fail(scene, name, "array 'visible_fraction' must lie in [0, 1]")
    full_known = np.isfinite(box_full).all(axis=-1)
    if legacy and "in_frame" not in arrays:
        # The demo's boxes are clipped to the image and never NaN: a box with area is in frame.
        in_frame = full_known & (box_full[..., 2] > box_full[..., 0])
        in_frame &= box_full[..., 3] > box_full[..., 1]
    else:
        in_frame = _array(arrays, "in_frame", (frames, people), "b", scene)
    if np.any(in_frame & ~full_known):
        raise _fail(scene, name, "has a person in frame without a finite box_full_xyxy")
    if np.any((visible > 0) & ~np.isfinite(box_visible).all(axis=-1)):
        raise _fail(scene, name, "has a visible person without a finite box_visible_xyxy")
    if np.any((visible > 0) & ~in_frame):
        raise _fail(scene, name, "has a person visible but not in frame")
    if not np.isfinite(joints_cam[in_frame]).all():
        raise _fail(scene, name, "has NaN joints_cam for a person in frame")
    return SceneGroundTruth(
        fps=fps,
        width=int(width),
        height=int(height),
        K=K,
        R_world_to_cam=R,
        t_world_to_cam=t,
        person_ids=person_ids,
        box_full_xyxy=box_full,
        box_visible_xyxy=box_visible,
        visible_fraction=visible,
        in_frame=in_frame,
        joints_world=joints_world,
        joints_cam=joints_cam,
    )


def _check_against_json(gt: SceneGroundTruth, document: dict[str, Any], scene: str) -> None:
    if gt.num_frames != document["frame_count"]:
        raise BadInputError(
            f"benchmark scene {scene}: {GROUND_TRUTH_FILE_NAME} has {gt.num_frames} frames, "
            f"{SCENE_FILE_NAME} says {document['frame_count']}"
        )
    if (gt.width, gt.height) != (document["width"], document["height"]):
        raise BadInputError(
            f"benchmark scene {scene}: {GROUND_TRUTH_FILE_NAME} is {gt.width}x{gt.height}, "
            f"{SCENE_FILE_NAME} says {document['width']}x{document['height']}"
        )


def _check_masks_header(path: Path, gt: SceneGroundTruth, scene: str) -> None:
    """Shape and dtype of ``labels`` from the .npy header alone (no full decompression)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("labels.npy") as stream:
            version = np.lib.format.read_magic(stream)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(stream)
    except KeyError:
        raise _fail(scene, MASKS_FILE_NAME, "has no array 'labels'") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise _fail(scene, MASKS_FILE_NAME, f"cannot be read: {exc}") from None
    expected = (gt.num_frames, gt.height, gt.width)
    if tuple(shape) != expected or np.dtype(dtype) != np.uint8:
        raise _fail(
            scene,
            MASKS_FILE_NAME,
            f"labels are {np.dtype(dtype)} {tuple(shape)}, expected uint8 {expected}",
        )


def _check_video(video: Path, frames: int, scene: str) -> None:
    from ram_core.video.reader import probe_video

    try:
        info = probe_video(video)
    except BadInputError as exc:
        raise BadInputError(f"benchmark scene {scene}: {exc}") from None
    if info.frame_count != frames:
        raise BadInputError(
            f"benchmark scene {scene}: {video.name} has {info.frame_count} frames, the ground "
            f"truth {frames}"
        )
