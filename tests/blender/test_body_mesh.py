"""The skinned body mesh on each imported armature, in real bpy: groups, modifier, deformation."""

import bpy
import numpy as np
import pytest
from conftest import evaluated_world_vertices, submodule, write_result

from ram_core.body.skeleton import JOINT_NAMES, REST_JOINTS_M

TRACKS = {1: range(20), 4: range(6, 20)}


@pytest.fixture
def result_path(tmp_path):
    return write_result(tmp_path / "clip.ram", TRACKS)


def _bodies(armature) -> list:
    return [child for child in armature.children if child.type == "MESH"]


def _mostly_weighted_to(joint_name: str) -> np.ndarray:
    body = submodule("body_mesh").load_body_mesh()
    j = JOINT_NAMES.index(joint_name)
    return np.flatnonzero((body.weight_joint[:, 0] == j) & (body.weight[:, 0] >= 0.9))


def test_each_armature_has_one_skinned_body(ext, result_path):
    report = submodule("importer").import_result(result_path)
    body_data = submodule("body_mesh").load_body_mesh()
    for armature in report.armatures:
        bodies = _bodies(armature)
        assert len(bodies) == 1
        body = bodies[0]
        assert body.name == f"{armature.name}_body"
        assert body.users_collection[0] == report.collection
        assert sorted(group.name for group in body.vertex_groups) == sorted(JOINT_NAMES)
        modifiers = [m for m in body.modifiers if m.type == "ARMATURE"]
        assert len(modifiers) == 1 and modifiers[0].object == armature
        assert len(body.data.vertices) == len(body_data.vertices)
        assert len(body.data.polygons) == len(body_data.faces)
        assert tuple(body.material_slots[0].material.diffuse_color)[:3] == pytest.approx(
            tuple(armature.color)[:3]
        )
        # Every vertex is in at least one group, with its weights summing to one.
        vertices = body.data.vertices
        for index in range(0, len(vertices), len(vertices) // 50):
            vertex = vertices[index]
            assert sum(g.weight for g in vertex.groups) == pytest.approx(1.0, abs=0.01)


def test_body_rest_pose_surrounds_the_rest_bones(ext, result_path):
    report = submodule("importer").import_result(result_path)
    armature = report.armatures[0]
    body = _bodies(armature)[0]
    coords = np.empty(len(body.data.vertices) * 3)
    body.data.vertices.foreach_get("co", coords)
    coords = coords.reshape(-1, 3)
    heads = np.array([np.array(armature.data.bones[name].head_local) for name in JOINT_NAMES])
    assert np.allclose(heads, REST_JOINTS_M, atol=1e-5)
    for name in ("left_wrist", "left_elbow", "right_knee", "head"):
        near = coords[_mostly_weighted_to(name)]
        bone = armature.data.bones[name]
        middle = 0.5 * (np.array(bone.head_local) + np.array(bone.tail_local))
        assert np.all(near.min(axis=0) <= middle) and np.all(middle <= near.max(axis=0)), name


def test_body_follows_the_bones_at_posed_frames(ext, result_path):
    results = submodule("results")
    report = submodule("importer").import_result(result_path)
    scene = bpy.context.scene
    armature = next(obj for obj in report.armatures if obj["ram_track_id"] == 1)
    body = _bodies(armature)[0]
    wrist_vertices = _mostly_weighted_to("left_wrist")
    ankle_vertices = _mostly_weighted_to("right_ankle")
    assert len(wrist_vertices) > 20 and len(ankle_vertices) > 20
    wrist_heads = []
    for frame_index in (3, 15):
        scene.frame_set(frame_index + results.FRAME_OFFSET)
        vertices = evaluated_world_vertices(body)
        for bone_name, indices in (("left_wrist", wrist_vertices), ("right_ankle", ankle_vertices)):
            pose_bone = armature.pose.bones[bone_name]
            head = np.array(armature.matrix_world @ pose_bone.head)
            tail = np.array(armature.matrix_world @ pose_bone.tail)
            centre = vertices[indices].mean(axis=0)
            # The vertices around a joint sit along its bone, between head and tail.
            assert np.linalg.norm(centre - 0.5 * (head + tail)) < 0.10
            if bone_name == "left_wrist":
                wrist_heads.append(head)
    # The frames differ enough that a body left at rest would fail the checks above.
    assert np.linalg.norm(wrist_heads[0] - wrist_heads[1]) > 0.10


def test_reimport_replaces_bodies_and_their_data(ext, result_path):
    importer = submodule("importer")
    empty = (len(bpy.data.meshes), len(bpy.data.materials))
    importer.import_result(result_path)
    counts = (len(bpy.data.meshes), len(bpy.data.materials), len(bpy.data.objects))
    report = importer.import_result(result_path)
    assert (len(bpy.data.meshes), len(bpy.data.materials), len(bpy.data.objects)) == counts
    names = sorted(obj.name for obj in report.collection.objects if obj.type == "MESH")
    assert names == ["RAM_Person_001_body", "RAM_Person_004_body"]
    importer.remove_import(report.collection)
    assert (len(bpy.data.meshes), len(bpy.data.materials)) == empty
