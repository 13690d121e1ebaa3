"""The benchmark scene reader: a tiny scene written in the format, and malformed ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ram_core.errors import BadInputError
from ram_core.eval.bench_scenes import (
    RENDER_COMMAND,
    list_scenes,
    load_scene,
    resolve_scenes,
)

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 96, 64


def tiny_ground_truth(frames: int = 4) -> dict[str, np.ndarray]:
    """Two people as boxes: person 1 walks right and is seen whole, person 2 stands still
    and is hidden in the last frame (in frame, visible fraction 0)."""
    people = 2
    box_full = np.zeros((frames, people, 4), np.float32)
    for f in range(frames):
        box_full[f, 0] = [10 + 2 * f, 10, 30 + 2 * f, 50]
        box_full[f, 1] = [60, 8, 80, 52]
    visible = np.ones((frames, people), np.float32)
    visible[-1, 1] = 0.0
    box_visible = box_full.copy()
    box_visible[-1, 1] = np.nan
    joints = np.zeros((frames, people, 24, 3), np.float32)
    joints[..., 2] = 5.0
    joints[..., 0] = np.linspace(-0.3, 0.3, 24, dtype=np.float32)
    return {
        "fps": np.array(24, np.int32),
        "width": np.array(WIDTH, np.int32),
        "height": np.array(HEIGHT, np.int32),
        "K": np.array([[100, 0, WIDTH / 2], [0, 100, HEIGHT / 2], [0, 0, 1]], np.float32),
        "R_world_to_cam": np.repeat(np.eye(3, dtype=np.float32)[None], frames, axis=0),
        "t_world_to_cam": np.zeros((frames, 3), np.float32),
        "person_ids": np.array([1, 2], np.int32),
        "box_full_xyxy": box_full,
        "box_visible_xyxy": box_visible,
        "visible_fraction": visible,
        "in_frame": np.ones((frames, people), bool),
        "joints_world": joints.copy(),
        "joints_cam": joints,
    }


def write_video(path: Path, gt: dict[str, np.ndarray]) -> None:
    """Each visible person drawn as a filled box in its own colour."""
    import cv2

    frames = gt["visible_fraction"].shape[0]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24, (WIDTH, HEIGHT))
    colours = [(40, 40, 220), (40, 200, 40)]
    for f in range(frames):
        image = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
        for p, colour in enumerate(colours):
            if gt["visible_fraction"][f, p] > 0:
                x1, y1, x2, y2 = gt["box_full_xyxy"][f, p].astype(int)
                image[y1:y2, x1:x2] = colour
        writer.write(image)
    writer.release()


def write_scene(
    scenes_dir: Path,
    name: str = "tiny",
    frames: int = 4,
    gt: dict[str, np.ndarray] | None = None,
    meta: dict | None = None,
) -> Path:
    """A scene folder in the ``ram-bench-scene`` v1 format; overrides replace fields."""
    folder = scenes_dir / name
    folder.mkdir(parents=True)
    arrays = tiny_ground_truth(frames)
    arrays.update(gt or {})
    document = {
        "name": name,
        "seed": 0,
        "description": "two boxes, one hidden at the end",
        "fps": 24,
        "width": WIDTH,
        "height": HEIGHT,
        "frame_count": frames,
        "format": "ram-bench-scene",
        "version": 1,
        "generator": "tests/test_bench_scenes.py",
    }
    document.update(meta or {})
    (folder / "scene.json").write_text(json.dumps(document))
    np.savez_compressed(folder / "gt.npz", **arrays)
    labels = np.zeros((frames, HEIGHT, WIDTH), np.uint8)
    for f in range(frames):
        for p in range(2):
            if arrays["visible_fraction"][f, p] > 0:
                x1, y1, x2, y2 = arrays["box_full_xyxy"][f, p].astype(int)
                labels[f, y1:y2, x1:x2] = p + 1
    np.savez_compressed(folder / "masks.npz", labels=labels)
    write_video(folder / "video.mp4", arrays)
    return folder


def test_a_scene_in_the_format_loads(tmp_path):
    folder = write_scene(tmp_path)
    scene = load_scene(folder)
    assert scene.name == "tiny" and scene.path == folder
    assert (scene.width, scene.height, scene.frame_count, scene.fps) == (WIDTH, HEIGHT, 4, 24.0)
    assert scene.gt.num_frames == 4 and scene.gt.num_people == 2
    assert scene.gt.R_world_to_cam.shape == (4, 3, 3)
    assert scene.gt.in_frame[-1, 1] and scene.gt.visible_fraction[-1, 1] == 0
    labels = scene.load_masks()
    assert labels.shape == (4, HEIGHT, WIDTH) and labels.dtype == np.uint8
    assert set(np.unique(labels[-1])) == {0, 1}  # the hidden person has no visible pixels


def test_a_static_camera_is_repeated_per_frame(tmp_path):
    folder = write_scene(
        tmp_path,
        gt={"R_world_to_cam": np.eye(3, dtype=np.float32), "t_world_to_cam": np.ones(3, "f4")},
    )
    gt = load_scene(folder).gt
    assert gt.R_world_to_cam.shape == (4, 3, 3) and gt.t_world_to_cam.shape == (4, 3)
    np.testing.assert_array_equal(gt.t_world_to_cam[3], [1, 1, 1])


def test_the_demo_clip_is_a_scene_in_its_older_form():
    scene = load_scene(ROOT / "demo" / "three_people.mp4")
    assert scene.name == "demo_three_people"
    assert scene.masks_path is None and scene.seed is None
    assert scene.gt.num_people == 3 and scene.frame_count == scene.gt.num_frames == 84
    assert scene.gt.in_frame.all()  # derived from the clipped full boxes
    assert scene.gt.R_world_to_cam.shape == (84, 3, 3)
    with pytest.raises(BadInputError, match="no instance masks"):
        scene.load_masks()


def _malformed(kind: str, tmp_path: Path) -> Path:
    folder = write_scene(tmp_path)
    gt = tiny_ground_truth()
    if kind == "unknown version":
        document = json.loads((folder / "scene.json").read_text())
        document["version"] = 2
        (folder / "scene.json").write_text(json.dumps(document))
    elif kind == "other format":
        (folder / "scene.json").write_text(json.dumps({"format": "something", "version": 1}))
    elif kind == "json not an object":
        (folder / "scene.json").write_text("[1, 2]")
    elif kind == "json field type":
        document = json.loads((folder / "scene.json").read_text())
        document["frame_count"] = "4"
        (folder / "scene.json").write_text(json.dumps(document))
    elif kind == "no ground truth":
        (folder / "gt.npz").unlink()
    elif kind == "no scene.json":
        (folder / "scene.json").unlink()
    elif kind == "wrong shape":
        gt["box_full_xyxy"] = gt["box_full_xyxy"][:, :, :3]
        np.savez_compressed(folder / "gt.npz", **gt)
    elif kind == "wrong dtype":
        gt["visible_fraction"] = (gt["visible_fraction"] * 100).astype(np.int32)
        np.savez_compressed(folder / "gt.npz", **gt)
    elif kind == "missing array":
        del gt["joints_cam"]
        np.savez_compressed(folder / "gt.npz", **gt)
    elif kind == "fraction out of range":
        gt["visible_fraction"][0, 0] = 1.5
        np.savez_compressed(folder / "gt.npz", **gt)
    elif kind == "visible without box":
        gt["box_visible_xyxy"][0, 0] = np.nan
        np.savez_compressed(folder / "gt.npz", **gt)
    elif kind == "frames disagree":
        document = json.loads((folder / "scene.json").read_text())
        document["frame_count"] = 5
        (folder / "scene.json").write_text(json.dumps(document))
    elif kind == "masks shape":
        np.savez_compressed(folder / "masks.npz", labels=np.zeros((4, 8, 8), np.uint8))
    elif kind == "not a zip":
        (folder / "gt.npz").write_bytes(b"not an archive")
    elif kind == "name mismatch":
        folder = folder.rename(folder.with_name("renamed"))
    elif kind == "short video":
        write_video(folder / "video.mp4", tiny_ground_truth(frames=2))
    return folder


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("unknown version", "version 2 is not one this ram-core reads"),
        ("other format", "format is 'something'"),
        ("json not an object", "must be an object"),
        ("json field type", "'frame_count' must be int"),
        ("no ground truth", "gt.npz is missing"),
        ("no scene.json", "scene.json is missing"),
        ("wrong shape", "'box_full_xyxy' has shape (4, 2, 3), expected (4, 2, 4)"),
        ("wrong dtype", "'visible_fraction' must hold floats"),
        ("missing array", "has no array 'joints_cam'"),
        ("fraction out of range", "must lie in [0, 1]"),
        ("visible without box", "visible person without a finite box_visible_xyxy"),
        ("frames disagree", "has 4 frames, scene.json says 5"),
        ("masks shape", "expected uint8 (4, 64, 96)"),
        ("not a zip", "cannot read gt.npz"),
        ("name mismatch", "its folder is 'renamed'"),
        ("short video", "video.mp4 has 2 frames, the ground truth 4"),
    ],
)
def test_a_malformed_scene_is_one_clear_bad_input(tmp_path, kind, expected):
    folder = _malformed(kind, tmp_path)
    with pytest.raises(BadInputError) as info:
        load_scene(folder)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert expected in message, message
    assert "\n" not in message


def test_listing_skips_hidden_folders_and_names_the_render_command(tmp_path):
    with pytest.raises(BadInputError, match=re.escape(f"render them with `{RENDER_COMMAND}`")):
        list_scenes(tmp_path / "missing")
    with pytest.raises(BadInputError, match="no benchmark scenes"):
        list_scenes(tmp_path)
    write_scene(tmp_path, "b_scene")
    write_scene(tmp_path, "a_scene")
    (tmp_path / ".b_scene.partial").mkdir()
    assert [p.name for p in list_scenes(tmp_path)] == ["a_scene", "b_scene"]


def test_scenes_are_chosen_by_name_or_path(tmp_path):
    write_scene(tmp_path, "one")
    write_scene(tmp_path, "two")
    assert [s.name for s in resolve_scenes(tmp_path)] == ["one", "two"]
    assert [s.name for s in resolve_scenes(tmp_path, ["two"])] == ["two"]
    demo = str(ROOT / "demo" / "three_people.mp4")
    assert [s.name for s in resolve_scenes(tmp_path, [demo])] == ["demo_three_people"]
    with pytest.raises(BadInputError, match=r"no benchmark scene 'three'.*available: one, two"):
        resolve_scenes(tmp_path, ["three"])
