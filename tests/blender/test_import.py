"""import_result in real bpy: objects, keys, joint positions, camera projection, re-import."""

import json
from pathlib import Path

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from conftest import CAMERA, DEMO_VIDEO, EXTENSION_MODULE, submodule, write_result
from mathutils import Vector

from ram_core.body.skeleton import JOINT_NAMES, PARENTS, REST_JOINTS_M, forward_kinematics
from ram_core.io.result import ResultFormatError, load_result

TRACKS = {1: range(20), 4: range(6, 20)}


@pytest.fixture
def result_path(tmp_path):
    return write_result(tmp_path / "clip.ram", TRACKS)


def _armatures(report):
    return {obj["ram_track_id"]: obj for obj in report.armatures}


def _bone_heads_world(obj) -> np.ndarray:
    return np.array(
        [np.array(obj.matrix_world @ obj.pose.bones[name].head) for name in JOINT_NAMES]
    )


def test_import_makes_camera_armatures_keys_and_scene_settings(ext, result_path):
    report = submodule("importer").import_result(result_path)
    scene = bpy.context.scene
    assert report.collection.name == "RAM clip.ram"
    assert report.collection["ram_result_path"] == str(result_path.resolve())
    armatures = _armatures(report)
    assert sorted(armatures) == [1, 4]
    animation = submodule("animation")
    for track_id, obj in armatures.items():
        assert obj.name == f"RAM_Person_{track_id:03d}"
        assert obj.type == "ARMATURE"
        assert sorted(bone.name for bone in obj.data.bones) == sorted(JOINT_NAMES)
        assert all(
            (obj.data.bones[name].parent.name if obj.data.bones[name].parent else -1)
            == (JOINT_NAMES[parent] if parent >= 0 else -1)
            for name, parent in zip(JOINT_NAMES, PARENTS, strict=True)
        )
        assert obj["ram_source_video"] == str(DEMO_VIDEO)
        assert obj["ram_result_path"] == str(result_path.resolve())
        curves = [
            curve
            for curve in animation.action_fcurves(obj.animation_data.action, obj)
            if curve.data_path.startswith("pose.bones")
        ]
        assert len(curves) == 24 * 4 + 3
        frames = len(TRACKS[track_id])
        assert {len(curve.keyframe_points) for curve in curves} == {frames}
        first_key = curves[0].keyframe_points[0].co[0]
        assert first_key == TRACKS[track_id][0] + 1
    colours = {tuple(round(c, 4) for c in obj.color[:3]) for obj in armatures.values()}
    assert len(colours) == 2
    assert scene.render.fps == 24 and scene.render.fps_base == pytest.approx(1.0)
    assert (scene.frame_start, scene.frame_end) == (1, 20)
    assert scene.camera == report.camera
    assert report.camera.data.background_images[0].clip.filepath.endswith("three_people.mp4")


@pytest.mark.parametrize("frame_index", [0, 7, 13, 19])
def test_joint_world_positions_match_forward_kinematics(ext, result_path, frame_index):
    results = submodule("results")
    report = submodule("importer").import_result(result_path)
    loaded = load_result(result_path)
    scene = bpy.context.scene
    scene.frame_set(frame_index + results.FRAME_OFFSET)
    for track_id, obj in _armatures(report).items():
        rows = loaded.track(track_id)
        if frame_index not in rows["frame"]:
            continue
        row = int(np.flatnonzero(rows["frame"] == frame_index)[0])
        joints_cam, _ = forward_kinematics(
            rows["global_orient"][row], rows["body_pose"][row], rows["transl"][row]
        )
        world = results.load_import_plan(result_path).camera_to_world
        joints_world = joints_cam @ world[:3, :3].T + world[:3, 3]
        error_m = np.abs(_bone_heads_world(obj) - joints_world).max()
        assert error_m < 1e-3, f"track {track_id} frame {frame_index}: {error_m:.2e} m"


def test_joints_seen_through_the_camera_land_on_their_pixels(ext, result_path):
    results = submodule("results")
    report = submodule("importer").import_result(result_path)
    scene = bpy.context.scene
    loaded = load_result(result_path)
    frame_index = 10
    scene.frame_set(frame_index + results.FRAME_OFFSET)
    for track_id, obj in _armatures(report).items():
        rows = loaded.track(track_id)
        row = int(np.flatnonzero(rows["frame"] == frame_index)[0])
        joints_cam, _ = forward_kinematics(
            rows["global_orient"][row], rows["body_pose"][row], rows["transl"][row]
        )
        expected_px = results.project_points(joints_cam, CAMERA)
        seen = np.array(
            [
                world_to_camera_view(scene, report.camera, Vector(co))[:]
                for co in _bone_heads_world(obj)
            ]
        )
        seen_px = np.column_stack(
            [seen[:, 0] * CAMERA["width"], (1.0 - seen[:, 1]) * CAMERA["height"]]
        )
        assert np.abs(seen_px - expected_px).max() < 0.05
        assert np.all(seen[:, 2] > 0)


def test_reimport_replaces_the_collection(ext, result_path):
    importer = submodule("importer")
    importer.import_result(result_path)
    counts = (len(bpy.data.objects), len(bpy.data.actions), len(bpy.data.armatures))
    report = importer.import_result(result_path)
    assert (len(bpy.data.objects), len(bpy.data.actions), len(bpy.data.armatures)) == counts
    assert [c.name for c in bpy.context.scene.collection.children] == ["RAM clip.ram"]
    assert sorted(obj.name for obj in report.armatures) == ["RAM_Person_001", "RAM_Person_004"]


def test_a_folder_that_is_not_a_result_leaves_the_scene_alone(ext, tmp_path):
    (tmp_path / "empty.ram").mkdir()
    with pytest.raises(ResultFormatError):
        submodule("importer").import_result(tmp_path / "empty.ram")
    assert len(bpy.data.objects) == 0 and len(bpy.data.collections) == 0
    with pytest.raises(RuntimeError, match="not a ram-motion result"):
        bpy.ops.ram.import_result(filepath=str(tmp_path / "empty.ram"))


def test_operator_imports_and_the_extension_is_enabled(ext, result_path):
    assert EXTENSION_MODULE in bpy.context.preferences.addons
    assert bpy.ops.ram.import_result(filepath=str(result_path)) == {"FINISHED"}
    assert len([o for o in bpy.data.objects if o.type == "ARMATURE"]) == 2


def test_ntsc_frame_rate_becomes_fps_and_base(ext, tmp_path):
    path = write_result(tmp_path / "ntsc.ram", {2: range(3, 9)}, fps=30000 / 1001)
    submodule("importer").import_result(path)
    render = bpy.context.scene.render
    assert render.fps == 30
    assert render.fps / render.fps_base == pytest.approx(30000 / 1001)


def test_a_result_with_edits_reads_and_imports_edited_with_numpy_alone(ext, tmp_path):
    """Blender's Python has no cv2 or scipy: ``ram_core.load_result`` and
    ``ram_core.read_mask`` give the edited tracks and masks there, and the import shows them."""
    import importlib.util

    import ram_core
    from ram_core.io.edits import append_edit
    from ram_core.io.png import write_label_png

    assert importlib.util.find_spec("cv2") is None and importlib.util.find_spec("scipy") is None
    path = write_result(tmp_path / "edited.ram", {3: range(6), 5: range(2, 6)})
    for frame in range(6):
        labels = np.zeros((CAMERA["height"], CAMERA["width"]), np.uint16)
        labels[:, :100] = 3
        if frame >= 2:
            labels[:, 200:300] = 5
        write_label_png(path / "masks" / f"{frame:06d}.png", labels)
    append_edit(path, {"op": "swap", "track_a": 3, "track_b": 5, "from_frame": 4})
    append_edit(path, {"op": "split", "track": 3, "from_frame": 5, "new_id": 8})

    result = ram_core.load_result(path)
    assert result.track_ids().tolist() == [3, 5, 8]
    assert result.track(8)["frame"].tolist() == [5]
    assert result.track(5)["frame"].tolist() == [2, 3, 4, 5]
    assert result.track(3)["frame"].tolist() == [0, 1, 2, 3, 4]
    assert ram_core.read_mask(path, 3)[0, 0] == 3
    assert ram_core.read_mask(path, 4)[0, 0] == 5 and ram_core.read_mask(path, 4)[0, 250] == 3
    assert ram_core.read_mask(path, 5)[0, 250] == 8
    assert ram_core.read_mask(path, 5, apply_edits=False)[0, 250] == 5

    report = submodule("importer").import_result(path)
    assert sorted(a.name for a in report.armatures) == [
        "RAM_Person_003",
        "RAM_Person_005",
        "RAM_Person_008",
    ]


def _people_on_a_floor(tmp_path, with_world: bool):
    """A result of four people on a floor seen by a camera 1.85 m up, pitched 9 degrees down
    (``tests/test_world.py``'s scene), with or without the world entry in its manifest."""
    import importlib.util

    from ram_core.io.result import ResultWriter
    from ram_core.motion.world import estimate_world

    spec = importlib.util.spec_from_file_location(
        "world_scene", Path(__file__).resolve().parents[1] / "test_world.py"
    )
    scene = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scene)
    rotation, translation = scene.camera_pose(1.85, -9.0)
    table = scene.people_table(rotation, translation)
    manifest = {
        "source_video": {"path": str(DEMO_VIDEO), "fps": 25.0, "width": 640, "height": 360},
        "camera": dict(CAMERA),
    }
    if with_world:
        manifest["world"] = estimate_world(table, REST_JOINTS_M, 25.0).to_manifest()
    with ResultWriter(tmp_path / "floor.ram") as writer:
        return writer.finish(manifest, table)


@pytest.mark.parametrize("with_world", [True, False])
def test_people_stand_on_one_floor_and_the_camera_at_its_height(ext, tmp_path, with_world):
    path = _people_on_a_floor(tmp_path, with_world)
    report = submodule("importer").import_result(path)
    camera = report.camera
    assert camera.matrix_world.translation.z == pytest.approx(1.85, abs=0.05)
    view = camera.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))  # a camera looks down -z
    assert np.degrees(np.arcsin(view.z)) == pytest.approx(-9.0, abs=0.5)
    expected_source = "manifest" if with_world else "estimated at import (feet-plane)"
    assert all(obj["ram_world"] == expected_source for obj in report.armatures)
    feet = ("left_ankle", "left_foot", "right_ankle", "right_foot")
    sole = np.array([0.081, 0.028, 0.081, 0.028])
    for frame in (1, 20, 40):
        bpy.context.scene.frame_set(frame)
        for obj in report.armatures:
            heights = [(obj.matrix_world @ obj.pose.bones[name].head).z for name in feet]
            assert (np.array(heights) - sole).min() == pytest.approx(0.0, abs=0.04)


def _people_seen_by_a_turning_camera(tmp_path):
    """People standing still on a floor, seen by a camera that pans 20 and tilts 3 degrees
    over 30 frames: each row in its own frame's camera coordinates, the manifest's world the
    first frame's, and ``camera.npz`` each frame's."""
    import importlib.util

    from ram_core.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
    from ram_core.motion.world import camera_to_world_per_frame, estimate_world

    spec = importlib.util.spec_from_file_location(
        "world_scene", Path(__file__).resolve().parents[1] / "test_world.py"
    )
    scene = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scene)
    rotation, translation = scene.camera_pose(1.7, -8.0)
    table = scene.people_table(rotation, translation, frames=30, walking=False)
    world = estimate_world(table, REST_JOINTS_M, 25.0)
    t = np.linspace(0.0, 1.0, 30)
    turns = axis_angle_to_matrix(np.column_stack([np.radians(3) * t, np.radians(20) * t, 0 * t]))
    per_row = turns[table["frame"]]
    turned = dict(table)
    turned["global_orient"] = matrix_to_axis_angle(
        per_row @ axis_angle_to_matrix(table["global_orient"])
    )
    pelvis = table["transl"] + REST_JOINTS_M[0]
    turned["transl"] = np.einsum("nij,nj->ni", per_row, pelvis) - REST_JOINTS_M[0]
    per_frame = camera_to_world_per_frame(world.camera_to_world, turns)
    track_frames = {int(k): range(30) for k in np.unique(table["track_id"])}
    path = write_result(
        tmp_path / "turning.ram",
        track_frames,
        fps=25.0,
        backend="lite",
        tracks=turned,
        world={**world.to_manifest(), "turning": True, "camera_track": "camera.npz"},
        camera_track=(np.arange(30), per_frame),
    )
    return path, turned


def test_a_turning_camera_is_keyed_and_the_people_stand_still(ext, tmp_path):
    results = submodule("results")
    path, turned = _people_seen_by_a_turning_camera(tmp_path)
    report = submodule("importer").import_result(path)
    camera, scene = report.camera, bpy.context.scene
    assert camera.animation_data is not None and camera.animation_data.action is not None
    pelvis_paths = {obj.name: [] for obj in report.armatures}
    for frame_index in (0, 14, 29):
        scene.frame_set(frame_index + results.FRAME_OFFSET)
        for track_id, obj in _armatures(report).items():
            heads = _bone_heads_world(obj)
            pelvis_paths[obj.name].append(heads[0])
            # The footage still lines up through the turning camera.
            row = np.flatnonzero(
                (turned["track_id"] == track_id) & (turned["frame"] == frame_index)
            )[0]
            joints_cam, _ = forward_kinematics(
                turned["global_orient"][row], turned["body_pose"][row], turned["transl"][row]
            )
            expected_px = results.project_points(joints_cam, CAMERA)
            seen = np.array([world_to_camera_view(scene, camera, Vector(h))[:] for h in heads])
            seen_px = np.column_stack(
                [seen[:, 0] * CAMERA["width"], (1.0 - seen[:, 1]) * CAMERA["height"]]
            )
            assert np.abs(seen_px - expected_px).max() < 0.05
    # Standing still in the world while the camera turned about 20 degrees.
    for path_ in pelvis_paths.values():
        path_ = np.array(path_)
        assert np.abs(path_ - path_[0]).max() < 1e-3


def test_a_video_stored_turned_shows_upright(ext, tmp_path):
    """A phone clip stored sideways (rotation tag 90): Blender 5 turns its strip and camera
    background upright itself; older Blender shows it as stored, so the strip is turned
    upright and the camera background is left off with a warning."""
    # tools/make_phone_fixture.py: 640x360 upright, stored sideways with a 90 degree tag.
    video = Path(__file__).resolve().parents[1] / "fixtures" / "phone_turned.mp4"
    path = write_result(tmp_path / "phone.ram", {1: range(4)})
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["source_video"].update(path=str(video), rotation_deg=90, frame_count=4)
    manifest_path.write_text(json.dumps(manifest))
    report = submodule("importer").import_result(path)
    strip = submodule("sequencer").video_strips(bpy.context.scene, path.resolve())[0]
    background = report.camera.data.background_images
    if bpy.app.version >= (5, 0, 0):
        assert strip.transform.rotation == 0.0
        assert len(background) == 1 and tuple(background[0].clip.size) == (640, 360)
    else:
        assert strip.transform.rotation == pytest.approx(-np.pi / 2)
        assert len(background) == 0
        assert any("as stored" in warning for warning in report.warnings)
