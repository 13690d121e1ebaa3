"""The synthetic benchmark generator: its rasteriser, its scene plans and, run for real in
--quick mode, ground truth that agrees with itself and with the video."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from synthetic.bench_truth import scene_ground_truth  # noqa: E402
from synthetic.camera import PinholeCamera  # noqa: E402
from synthetic.masks import Window, box_mesh, nearest_labels, rasterize_depth  # noqa: E402
from synthetic.paths import polyline_path, straight_path  # noqa: E402
from synthetic.scenes import DEFAULT_SCENES, SCENES, plan_scene  # noqa: E402

GENERATOR = ROOT / "tools" / "make_bench_scenes.py"
ENVIRONMENTS = (ROOT / ".venv-tools" / "bin" / "python", ROOT / ".venv-blender" / "bin" / "python")
CAMERA = PinholeCamera((0.0, 0.0, 1.7), 7.0, 0.0, 50.0, 36.0, 160, 90)


# --- the rasteriser -----------------------------------------------------------------------


def test_a_square_covers_exactly_the_pixels_whose_centres_lie_inside():
    corners = np.array([[1.2, 1.0], [5.0, 1.0], [5.0, 3.6], [1.2, 3.6]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    depth = rasterize_depth(corners, np.full(4, 2.0), faces, Window(0, 0, 8, 6))
    expected = np.zeros((6, 8), dtype=bool)
    expected[1:4, 1:5] = True  # centres x = 1.5 .. 4.5 and y = 1.5 .. 3.5
    np.testing.assert_array_equal(np.isfinite(depth), expected)
    np.testing.assert_allclose(depth[expected], 2.0, rtol=1e-12)


def test_a_window_offset_shifts_the_pixels_not_the_shape():
    corners = np.array([[10.0, 20.0], [14.0, 20.0], [10.0, 24.0]])
    faces = np.array([[0, 1, 2]])
    whole = rasterize_depth(corners, np.ones(3), faces, Window(0, 0, 32, 32))
    part = rasterize_depth(corners, np.ones(3), faces, Window(8, 18, 10, 10))
    np.testing.assert_array_equal(np.isfinite(part), np.isfinite(whole[18:28, 8:18]))
    assert np.isfinite(whole).sum() == np.isfinite(part).sum() > 0


def test_depth_is_interpolated_with_perspective():
    # A ground-like plane seen at a slant: the depth at each pixel centre must be where the
    # pixel's ray meets the plane, not a linear blend of the corner depths.
    camera = PinholeCamera((0.0, 0.0, 1.0), 20.0, 0.0, 35.0, 36.0, 64, 48)
    K = camera.intrinsics()
    R, t = camera.world_to_camera()
    plane = np.array([[-2.0, 3.0, 0.0], [2.0, 3.0, 0.0], [2.0, 12.0, 0.0], [-2.0, 12.0, 0.0]])
    points_cam = plane @ R.T + t
    pixels = points_cam @ K.T
    pixels = pixels[:, :2] / pixels[:, 2:]
    depth = rasterize_depth(pixels, points_cam[:, 2], np.array([[0, 1, 2], [0, 2, 3]]),
                            Window(0, 0, 64, 48))  # fmt: skip
    rows, columns = np.nonzero(np.isfinite(depth))
    assert rows.size > 100
    rays = np.linalg.inv(K) @ np.stack([columns + 0.5, rows + 0.5, np.ones_like(rows)])
    normal_cam = R @ np.array([0.0, 0.0, 1.0])
    offset = normal_cam @ points_cam[0]
    expected = offset / (normal_cam @ rays)  # z of the hit, since each ray has z = 1
    np.testing.assert_allclose(depth[rows, columns], expected, rtol=1e-9)


def test_the_nearest_surface_owns_the_pixel_and_occluders_label_background():
    near = np.full((2, 3), np.inf)
    near[0, :2] = 3.0
    far = np.full((2, 3), 5.0)
    pillar = np.full((2, 3), np.inf)
    pillar[:, 1] = 1.0
    labels = nearest_labels(np.stack([far, near]), pillar)
    np.testing.assert_array_equal(labels, [[2, 0, 1], [1, 0, 1]])
    assert labels.dtype == np.uint8


# --- ground truth from meshes (boxes standing in for people) ------------------------------


def _box_people(centres: list[tuple[float, float]], frames: int):
    """Vertices (F, P, 8, 3) of 0.5 x 0.3 x 1.7 m boxes standing at ground points."""
    people = [box_mesh((x, y, 0.85), (0.5, 0.3, 1.7)) for x, y in centres]
    faces = people[0][1]
    vertices = np.stack([v for v, _ in people])[None].repeat(frames, axis=0)
    joints = vertices.mean(axis=2, keepdims=True).repeat(24, axis=2)
    return vertices, joints, faces


def test_a_box_behind_another_is_partly_hidden_and_its_mask_says_so():
    vertices, joints, faces = _box_people([(0.0, 6.0), (0.3, 9.0), (40.0, 9.0)], frames=1)
    gt, labels = scene_ground_truth(vertices, joints, faces, [CAMERA], [], fps=24)
    front, back, away = 0, 1, 2
    assert gt["visible_fraction"][0, front] == 1.0
    assert 0.0 < gt["visible_fraction"][0, back] < 0.9
    assert not gt["in_frame"][0, away] and gt["visible_fraction"][0, away] == 0.0
    assert np.isnan(gt["box_full_xyxy"][0, away]).all()
    assert np.isnan(gt["box_visible_xyxy"][0, away]).all()
    for p in (front, back):
        rows, columns = np.nonzero(labels[0] == p + 1)
        box = [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]
        np.testing.assert_array_equal(gt["box_visible_xyxy"][0, p], box)


def test_an_occluder_hides_a_person_completely_yet_the_person_stays_in_frame():
    vertices, joints, faces = _box_people([(0.0, 9.0)], frames=1)
    pillar = ((0.0, 5.0, 1.5), (0.8, 0.8, 3.0))
    gt, labels = scene_ground_truth(vertices, joints, faces, [CAMERA], [pillar], fps=24)
    assert gt["in_frame"][0, 0] and gt["visible_fraction"][0, 0] == 0.0
    assert not labels.any()
    assert np.isfinite(gt["box_full_xyxy"][0, 0]).all()


def test_a_panning_camera_gives_per_frame_extrinsics():
    vertices, joints, faces = _box_people([(0.0, 7.0)], frames=3)
    cameras = [
        PinholeCamera((0.0, 0.0, 1.7), 7.0, yaw, 50.0, 36.0, 160, 90) for yaw in (0.0, 3.0, 6.0)
    ]
    gt, _ = scene_ground_truth(vertices, joints, faces, cameras, [], fps=24)
    assert gt["R_world_to_cam"].shape == (3, 3, 3) and gt["t_world_to_cam"].shape == (3, 3)
    centre_x = (gt["box_full_xyxy"][:, 0, 0] + gt["box_full_xyxy"][:, 0, 2]) / 2
    # Turning left moves a still person to the right in the image.
    assert centre_x[0] < centre_x[1] < centre_x[2]


# --- paths and scene plans ----------------------------------------------------------------


def test_a_polyline_path_walks_through_its_corners_and_turns_smoothly():
    waypoints = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0]])
    distance = np.linspace(0.0, 4.0, 401)
    ground, yaw = polyline_path(waypoints, distance, turn_m=0.5)
    np.testing.assert_allclose(ground[200], [2.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(ground[-1], [2.0, 2.0], atol=1e-12)
    straight_ground, straight_yaw = straight_path((0.0, 0.0), 0.0, distance[:100])
    np.testing.assert_allclose(ground[:100], straight_ground, atol=1e-12)
    np.testing.assert_allclose(yaw[:100], straight_yaw, atol=1e-12)
    np.testing.assert_allclose(yaw[-100:], straight_yaw[0] + np.pi / 2, atol=1e-12)
    assert np.abs(np.diff(yaw)).max() < np.radians(90.0) / 40  # spread over 0.5 m of path


def test_scene_plans_are_seeded():
    for name in DEFAULT_SCENES:
        spec = SCENES[name]
        first, again = plan_scene(spec, seed=3), plan_scene(spec, seed=3)
        other = plan_scene(spec, seed=4)
        assert first.people == again.people
        assert first.people != other.people
        assert len(first.cameras) == spec.frame_count == first.frame_count
        assert spec.description and spec.people


def test_the_moving_camera_scene_moves_and_the_others_stay_still():
    for name in DEFAULT_SCENES:
        cameras = plan_scene(SCENES[name], seed=0).cameras
        moved = cameras[0] != cameras[-1]
        assert moved == (name == "camera_pan"), name


# --- the generator, run for real ----------------------------------------------------------


def _environments_ready() -> bool:
    return all(path.exists() for path in ENVIRONMENTS)


needs_render = pytest.mark.skipif(
    not _environments_ready() and os.environ.get("RAM_REQUIRE_RENDER") != "1",
    reason="render environments missing (bash tools/setup_render.sh makes them)",
)


def _generate(out: Path, scenes: str, seed: int) -> None:
    command = [sys.executable, str(GENERATOR), "--quick", "--progress", "none"]
    command += ["--scenes", scenes, "--seed", str(seed), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr[-3000:]


def _load(folder: Path) -> tuple[dict, dict[str, np.ndarray], np.ndarray]:
    meta = json.loads((folder / "scene.json").read_text())
    with np.load(folder / "gt.npz") as data:
        gt = {key: data[key] for key in data.files}
    with np.load(folder / "masks.npz") as data:
        labels = data["labels"]
    return meta, gt, labels


@pytest.fixture(scope="module")
def quick_scenes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scenes")
    _generate(out, "hidden_pillar,camera_pan", seed=5)
    return out


@pytest.mark.slow
@needs_render
@pytest.mark.parametrize("name", ["hidden_pillar", "camera_pan"])
def test_quick_scene_files_follow_the_format(quick_scenes, name):
    folder = quick_scenes / name
    assert sorted(p.name for p in folder.iterdir()) == [
        "gt.npz",
        "masks.npz",
        "scene.json",
        "video.mp4",
    ]
    meta, gt, labels = _load(folder)
    assert meta["format"] == "ram-bench-scene" and meta["version"] == 1
    assert meta["name"] == name and meta["seed"] == 5 and meta["description"]
    assert "make_bench_scenes.py" in meta["generator"]
    frames, people = meta["frame_count"], len(SCENES[name].people)
    width, height = meta["width"], meta["height"]
    assert (frames, width, height) == (6, 160, 90)
    assert int(gt["fps"]) == meta["fps"] and int(gt["width"]) == width
    assert int(gt["height"]) == height

    expected = {
        "K": ((3, 3), np.float32),
        "R_world_to_cam": ((frames, 3, 3), np.float32),
        "t_world_to_cam": ((frames, 3), np.float32),
        "person_ids": ((people,), np.int32),
        "box_full_xyxy": ((frames, people, 4), np.float32),
        "box_visible_xyxy": ((frames, people, 4), np.float32),
        "visible_fraction": ((frames, people), np.float32),
        "in_frame": ((frames, people), np.bool_),
        "joints_world": ((frames, people, 24, 3), np.float32),
        "joints_cam": ((frames, people, 24, 3), np.float32),
    }
    for key, (shape, dtype) in expected.items():
        assert gt[key].shape == shape and gt[key].dtype == dtype, key
    assert gt["person_ids"].tolist() == list(range(1, people + 1))
    assert labels.shape == (frames, height, width) and labels.dtype == np.uint8
    assert labels.max() <= people

    capture = cv2.VideoCapture(str(folder / "video.mp4"))
    decoded = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        assert image.shape == (height, width, 3)
        decoded += 1
    capture.release()
    assert decoded == frames


@pytest.mark.slow
@needs_render
@pytest.mark.parametrize("name", ["hidden_pillar", "camera_pan"])
def test_quick_scene_ground_truth_is_consistent(quick_scenes, name):
    _, gt, labels = _load(quick_scenes / name)
    rotation = gt["R_world_to_cam"].astype(np.float64)
    identity = np.broadcast_to(np.eye(3), rotation.shape)
    np.testing.assert_allclose(rotation @ rotation.transpose(0, 2, 1), identity, atol=1e-5)
    moved = np.einsum("fij,fpkj->fpki", rotation, gt["joints_world"].astype(np.float64))
    moved += gt["t_world_to_cam"][:, None, None].astype(np.float64)
    np.testing.assert_allclose(moved, gt["joints_cam"], atol=1e-3)

    # Projected joints that land in the image fall inside the full-body box.
    uvw = gt["joints_cam"].astype(np.float64) @ gt["K"].astype(np.float64).T
    pixels = uvw[..., :2] / uvw[..., 2:3]
    width, height = int(gt["width"]), int(gt["height"])
    in_image = (
        (pixels[..., 0] >= 0) & (pixels[..., 0] <= width) & (pixels[..., 1] >= 0)
        & (pixels[..., 1] <= height)
    )  # fmt: skip
    box = gt["box_full_xyxy"][:, :, None, :].astype(np.float64)
    assert in_image.any()
    for axis, (low, high) in enumerate(((0, 2), (1, 3))):
        coordinate = pixels[..., axis][in_image]
        assert (coordinate >= box[..., low].repeat(24, axis=2)[in_image] - 1.0).all()
        assert (coordinate <= box[..., high].repeat(24, axis=2)[in_image] + 1.0).all()

    full, visible = gt["box_full_xyxy"], gt["box_visible_xyxy"]
    fraction = gt["visible_fraction"]
    assert ((fraction >= 0) & (fraction <= 1)).all()
    assert np.array_equal(np.isfinite(full).all(axis=-1), gt["in_frame"])
    assert not (fraction > 0)[~gt["in_frame"]].any()
    frames, people = fraction.shape
    for f in range(frames):
        for p in range(people):
            rows, columns = np.nonzero(labels[f] == p + 1)
            assert (rows.size > 0) == (fraction[f, p] > 0), (f, p)
            if rows.size:
                mask_box = [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]
                np.testing.assert_allclose(visible[f, p], mask_box, atol=1e-6)
                assert (visible[f, p, :2] >= full[f, p, :2] - 0.5).all()
                assert (visible[f, p, 2:] <= full[f, p, 2:] + 0.5).all()
            else:
                assert np.isnan(visible[f, p]).all()


@pytest.mark.slow
@needs_render
def test_quick_scenes_load_with_the_benchmark_reader(quick_scenes):
    from ram_core.eval.bench_scenes import resolve_scenes

    scenes = resolve_scenes(quick_scenes)
    assert [scene.name for scene in scenes] == ["camera_pan", "hidden_pillar"]
    for scene in scenes:
        assert scene.load_masks().shape == (6, 90, 160)


@pytest.mark.slow
@needs_render
def test_the_pillar_hides_someone_and_the_camera_pans(quick_scenes):
    _, pillar, _ = _load(quick_scenes / "hidden_pillar")
    assert ((pillar["visible_fraction"] == 0) & pillar["in_frame"]).any()
    _, pan, _ = _load(quick_scenes / "camera_pan")
    assert np.abs(np.diff(pan["R_world_to_cam"], axis=0)).max() > 1e-3
    assert np.abs(np.diff(pan["t_world_to_cam"], axis=0)).max() > 1e-3


@pytest.mark.slow
@needs_render
def test_the_seed_alone_decides_the_ground_truth(quick_scenes, tmp_path):
    _generate(tmp_path / "same", "hidden_pillar", seed=5)
    _generate(tmp_path / "other", "hidden_pillar", seed=6)
    _, first, first_labels = _load(quick_scenes / "hidden_pillar")
    _, same, same_labels = _load(tmp_path / "same" / "hidden_pillar")
    _, other, _ = _load(tmp_path / "other" / "hidden_pillar")
    for key in first:
        np.testing.assert_array_equal(first[key], same[key], err_msg=key)
    np.testing.assert_array_equal(first_labels, same_labels)
    assert not np.allclose(first["joints_world"], other["joints_world"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--scenes", "nope"], "unknown scene nope"),
        (["--size", "640by360"], "--size must look like 640x360"),
        (["--samples", "0"], "must be at least 1"),
    ],
)
def test_bad_arguments_are_refused_with_exit_code_2(tmp_path, arguments, message):
    command = [sys.executable, str(GENERATOR), *arguments, "--out", str(tmp_path / "scenes")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "scenes").exists()


@pytest.mark.slow
@needs_render
def test_a_cancelled_run_leaves_no_scene_behind(tmp_path):
    out = tmp_path / "scenes"
    command = [sys.executable, str(GENERATOR), "--scenes", "crossing", "--out", str(out)]
    process = subprocess.Popen(
        [*command, "--progress", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in process.stdout:
        if '"crossing: ground truth"' in line:  # the scene is under way in its scratch folder
            break
    assert any(out.iterdir())
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 130
    assert list(out.iterdir()) == []
