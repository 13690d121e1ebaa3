"""Importing with the user's SMPL file, in real bpy: rest skeleton, joints, skinned surface.

The SMPL file is random, in the layout MPI-IS publishes (a Python 2 pickle with chumpy
arrays and a scipy csc J_regressor; neither library is installed here).
"""

import os

import bpy
import numpy as np
import pytest
from conftest import (
    EXTENSION_MODULE,
    evaluated_world_vertices,
    scene_state,
    submodule,
    write_result,
)
from smpl_files import random_smpl_arrays, write_python2_pickle

from ram_core.body.skeleton import JOINT_NAMES, REST_JOINTS_M, forward_kinematics
from ram_core.body.smpl_model import load_smpl_model
from ram_core.errors import BadInputError, MissingModelError
from ram_core.io.result import load_result

TRACKS = {1: range(12), 4: range(3, 12)}
BETAS = {1: np.linspace(-1.5, 1.5, 10), 4: np.array([2.0, -1.0, 0.5, 0, 0, 0, 0, 0, 0, 0.8])}
SAMPLED_FRAMES = (0, 5, 11)


@pytest.fixture(scope="module")
def smpl_file(tmp_path_factory):
    arrays = random_smpl_arrays(np.random.default_rng(3))
    return write_python2_pickle(tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl", arrays)


@pytest.fixture(scope="module")
def smpl(smpl_file):
    return load_smpl_model(smpl_file)


@pytest.fixture
def result_path(tmp_path):
    return write_result(tmp_path / "shaped.ram", TRACKS, betas=BETAS)


def _track_betas(result_path, track_id):
    """The betas the importer shapes a track with: the mean of its rows, as stored."""
    return load_result(result_path).track(track_id)["betas"].astype(np.float64).mean(axis=0)


def _armatures(report):
    return {obj["ram_track_id"]: obj for obj in report.armatures}


def test_rest_skeleton_and_body_come_from_the_smpl_file(ext, smpl_file, smpl, result_path):
    report = submodule("importer").import_result(result_path, smpl_model=smpl_file)
    rest_skeletons = []
    for track_id, armature in _armatures(report).items():
        expected = smpl.rest_joints(_track_betas(result_path, track_id))
        heads = np.array([np.array(armature.data.bones[n].head_local) for n in JOINT_NAMES])
        assert np.abs(heads - expected).max() < 1e-5
        rest_skeletons.append(heads)
        assert armature["ram_body_model"] == str(smpl_file.resolve())
        body = next(child for child in armature.children if child.type == "MESH")
        assert len(body.data.vertices) == 6890
        assert len(body.data.polygons) == len(smpl.faces)
        assert sorted(group.name for group in body.vertex_groups) == sorted(JOINT_NAMES)
        coords = np.empty(6890 * 3)
        body.data.vertices.foreach_get("co", coords)
        shaped = smpl.shaped_vertices(_track_betas(result_path, track_id))
        assert np.abs(coords.reshape(-1, 3) - shaped).max() < 1e-5
        # Weights as in the file: vertex 100's groups against its row of the weights.
        vertex = body.data.vertices[100]
        weights = {body.vertex_groups[g.group].name: g.weight for g in vertex.groups}
        row = smpl.weights[100]
        assert weights == pytest.approx(
            {JOINT_NAMES[j]: row[j] for j in np.flatnonzero(row)}, abs=1e-6
        )
    # Different betas give different skeletons, and neither is the built-in one.
    assert np.abs(rest_skeletons[0] - rest_skeletons[1]).max() > 0.01
    assert np.abs(rest_skeletons[0] - REST_JOINTS_M).max() > 0.1


@pytest.mark.parametrize("frame_index", SAMPLED_FRAMES)
def test_joints_follow_forward_kinematics_on_the_file_rest_joints(
    ext, smpl_file, smpl, result_path, frame_index
):
    results = submodule("results")
    report = submodule("importer").import_result(result_path, smpl_model=smpl_file)
    bpy.context.scene.frame_set(frame_index + results.FRAME_OFFSET)
    loaded = load_result(result_path)
    for track_id, armature in _armatures(report).items():
        rows = loaded.track(track_id)
        if frame_index not in rows["frame"]:
            continue
        row = int(np.flatnonzero(rows["frame"] == frame_index)[0])
        rest = smpl.rest_joints(_track_betas(result_path, track_id))
        expected, _ = forward_kinematics(
            rows["global_orient"][row], rows["body_pose"][row], rows["transl"][row], rest
        )
        seen = np.array(
            [np.array(armature.matrix_world @ armature.pose.bones[n].head) for n in JOINT_NAMES]
        )
        assert np.abs(seen - in_world(armature, expected)).max() < 1e-3


@pytest.mark.parametrize("frame_index", SAMPLED_FRAMES)
def test_body_surface_is_linear_blend_skinning_of_the_file(
    ext, smpl_file, smpl, result_path, frame_index
):
    """Blender's Armature modifier blends bone transforms (linear blend skinning) and has
    no pose blend shapes, so the surface is SMPL's without them."""
    results = submodule("results")
    report = submodule("importer").import_result(result_path, smpl_model=smpl_file)
    bpy.context.scene.frame_set(frame_index + results.FRAME_OFFSET)
    rows = load_result(result_path).track(1)
    row = int(np.flatnonzero(rows["frame"] == frame_index)[0])
    parameters = (rows["global_orient"][row], rows["body_pose"][row])
    betas = _track_betas(result_path, 1)
    expected = smpl.posed_vertices(*parameters, betas, rows["transl"][row], False)
    armature = _armatures(report)[1]
    body = next(child for child in armature.children if child.type == "MESH")
    seen = evaluated_world_vertices(body)
    assert np.abs(seen - in_world(armature, expected)).max() < 1e-3
    with_blend_shapes = smpl.posed_vertices(*parameters, betas, rows["transl"][row])
    assert np.abs(seen - in_world(armature, with_blend_shapes)).max() > 1e-3


def in_world(armature, points_camera: np.ndarray) -> np.ndarray:
    """Camera-frame points placed as the import placed the armature (the shot's world)."""
    world = np.array(armature.matrix_world)
    return points_camera @ world[:3, :3].T + world[:3, 3]


def test_same_betas_share_one_mesh_and_bodies_are_cached(ext, smpl_file, tmp_path):
    body_mesh = submodule("body_mesh")
    path = write_result(tmp_path / "lite.ram", {2: range(4), 3: range(4)})
    report = submodule("importer").import_result(path, smpl_model=smpl_file)
    bodies = [child for obj in report.armatures for child in obj.children]
    assert len(bodies) == 2 and bodies[0].data == bodies[1].data
    zeros = np.zeros(10)
    first = body_mesh.smpl_track_body(smpl_file, zeros)
    assert body_mesh.smpl_track_body(smpl_file, zeros) is first
    assert body_mesh.smpl_track_body(smpl_file, np.full(10, 0.5)) is not first
    # A changed file is read again.
    stat = smpl_file.stat()
    os.utime(smpl_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert body_mesh.smpl_track_body(smpl_file, zeros) is not first


def test_lite_results_keep_the_pelvis_where_the_video_shows_it(ext, smpl_file, smpl, tmp_path):
    """Lite results are solved on the built-in skeleton, whose rest pelvis is the origin."""
    results = submodule("results")
    path = write_result(tmp_path / "lite.ram", {2: range(6)}, backend="lite")
    report = submodule("importer").import_result(path, smpl_model=smpl_file)
    rows = load_result(path).track(2)
    shift = REST_JOINTS_M[0] - smpl.rest_joints(np.zeros(10))[0]
    assert np.linalg.norm(shift) > 0.1
    for frame_index in (0, 5):
        bpy.context.scene.frame_set(frame_index + results.FRAME_OFFSET)
        pelvis = np.array(report.armatures[0].pose.bones["pelvis"].head)
        on_builtin, _ = forward_kinematics(
            rows["global_orient"][frame_index],
            rows["body_pose"][frame_index],
            rows["transl"][frame_index],
        )
        assert np.abs(pelvis - on_builtin[0]).max() < 1e-4


def test_preference_names_the_file_and_the_operator_uses_it(ext, smpl_file, result_path):
    prefs = bpy.context.preferences.addons[EXTENSION_MODULE].preferences
    prefs.smpl_model = str(smpl_file)
    try:
        assert bpy.ops.ram.import_result(filepath=str(result_path)) == {"FINISHED"}
    finally:
        prefs.smpl_model = ""
    armature = bpy.data.objects["RAM_Person_001"]
    assert armature["ram_body_model"] == str(smpl_file.resolve())
    assert len(armature.children[0].data.vertices) == 6890


def _one_error(exc: RuntimeError) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), str(exc)
    return lines[0]


def test_broken_or_missing_smpl_file_reports_once_and_changes_nothing(
    ext, smpl_file, result_path, tmp_path
):
    importer = submodule("importer")
    broken = tmp_path / "SMPL_BROKEN.pkl"
    broken.write_bytes(smpl_file.read_bytes()[:20_000])
    missing = tmp_path / "SMPL_MISSING.pkl"
    before = scene_state()
    with pytest.raises(BadInputError, match="not a readable SMPL model pickle"):
        importer.import_result(result_path, smpl_model=broken)
    with pytest.raises(MissingModelError, match=r"smpl\.is\.tue\.mpg\.de"):
        importer.import_result(result_path, smpl_model=missing)
    for path, words in ((broken, "not a readable SMPL model"), (missing, "No SMPL model file")):
        with pytest.raises(RuntimeError) as caught:
            bpy.ops.ram.import_result(filepath=str(result_path), smpl_model=str(path))
        assert words in _one_error(caught.value)
    assert scene_state() == before
