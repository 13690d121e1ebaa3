"""Poses Anny bodies along walking paths and writes their vertices and SMPL-24 joints.

Runs in the torch environment (`.venv-tools`), never beside bpy:

    .venv-tools/bin/python tools/synthetic/walk_poses.py SCENE.json OUT.npz

SCENE.json holds `fps`, `frame_count` and `people`: a list of
`{"phenotype": {...}, "start_xy": [x, y], "heading_deg": h, "speed_mps": v,
"stride_m": L, "phase0": φ, "palette": {...}}`. Heading 0° walks along +X, 90° along +Y.
Instead of `start_xy` and `heading_deg` a person may give `"waypoints": [[x, y], ...]` (with
`"turn_m"`, the length of path over which the body turns at a corner), and `"gait": "run"`
for a running cycle (default "walk").
OUT.npz holds `vertices_world` (T, P, V, 3), `joints_world` (T, P, 24, 3), `faces` (F, 3),
`vertex_rgb` (P, V, 3) in [0, 1].
"""

import json
import math
import sys

import numpy as np
import torch
from paths import polyline_path, straight_path, yaw_rotations

# SMPL-24 joint order, each joint taken at the head of one Anny bone.
SMPL24_FROM_ANNY_BONE = (
    "root",
    "upperleg01.L",
    "upperleg01.R",
    "spine03",
    "lowerleg01.L",
    "lowerleg01.R",
    "spine02",
    "foot.L",
    "foot.R",
    "spine01",
    "toe3-1.L",
    "toe3-1.R",
    "neck01",
    "clavicle.L",
    "clavicle.R",
    "head",
    "upperarm01.L",
    "upperarm01.R",
    "lowerarm01.L",
    "lowerarm01.R",
    "wrist.L",
    "wrist.R",
    "finger3-1.L",
    "finger3-1.R",
)

# Anny bones -> clothing region; a vertex takes the region of its most weighted bone.
SKIN_BONE_PREFIXES = ("neck", "head", "eye", "wrist", "finger", "metacarpal", "lowerarm02")
SHOE_BONE_PREFIXES = ("foot", "toe")
TROUSER_BONE_PREFIXES = ("root", "pelvis", "upperleg", "lowerleg", "spine05")


def _rotation_x(angle_rad: torch.Tensor) -> torch.Tensor:
    """(T,) -> (T, 4, 4) homogeneous rotation about X."""
    c, s = torch.cos(angle_rad), torch.sin(angle_rad)
    m = torch.eye(4, dtype=torch.float64).repeat(angle_rad.shape[0], 1, 1)
    m[:, 1, 1], m[:, 1, 2], m[:, 2, 1], m[:, 2, 2] = c, -s, s, c
    return m


def _rotation_y(angle_rad: torch.Tensor) -> torch.Tensor:
    """(T,) -> (T, 4, 4) homogeneous rotation about Y."""
    c, s = torch.cos(angle_rad), torch.sin(angle_rad)
    m = torch.eye(4, dtype=torch.float64).repeat(angle_rad.shape[0], 1, 1)
    m[:, 0, 0], m[:, 0, 2], m[:, 2, 0], m[:, 2, 2] = c, s, -s, c
    return m


def _rotation_z(angle_rad: torch.Tensor) -> torch.Tensor:
    """(T,) -> (T, 4, 4) homogeneous rotation about Z."""
    c, s = torch.cos(angle_rad), torch.sin(angle_rad)
    m = torch.eye(4, dtype=torch.float64).repeat(angle_rad.shape[0], 1, 1)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def walk_pose_parameters(phase_rad: np.ndarray, speed_mps: float) -> dict[str, torch.Tensor]:
    """Procedural walk cycle for Anny's 'local-ref' parameterisation.

    phase_rad (T,): gait phase, one full cycle (two steps) per 2π. Returns bone name ->
    (T, 4, 4). A standing person (speed 0) keeps a relaxed stance with arms lowered.
    """
    phase = torch.as_tensor(phase_rad, dtype=torch.float64)
    amplitude = min(1.0, speed_mps / 1.3)
    deg = math.pi / 180.0
    hip_left = 24.0 * deg * amplitude * torch.sin(phase)
    # The knee bends most just after toe-off, i.e. while the hip is still behind the body
    # and swinging forward; the stance leg stays almost straight.
    swing_left = torch.clamp(torch.cos(phase + math.pi / 4), min=0.0) ** 2
    swing_right = torch.clamp(torch.cos(phase + math.pi + math.pi / 4), min=0.0) ** 2
    knee_left = (4.0 + 55.0 * amplitude * swing_left) * deg
    knee_right = (4.0 + 55.0 * amplitude * swing_right) * deg
    arm_swing = 18.0 * deg * amplitude * torch.sin(phase)
    twist = 5.0 * deg * amplitude * torch.sin(phase)
    lower_arm = torch.full_like(phase, 52.0 * deg)
    # The ankle lifts the toes in swing so the foot does not dig into the floor.
    ankle_left = 12.0 * deg * amplitude * swing_left
    ankle_right = 12.0 * deg * amplitude * swing_right
    return {
        # Anny: a rotation about -X swings the thigh forward, +X bends the knee.
        "upperleg01.L": _rotation_x(-hip_left),
        "upperleg01.R": _rotation_x(hip_left),
        "lowerleg01.L": _rotation_x(knee_left),
        "lowerleg01.R": _rotation_x(knee_right),
        "foot.L": _rotation_x(-ankle_left),
        "foot.R": _rotation_x(-ankle_right),
        # Arms swing opposite to the legs; the lowering about Y is applied first.
        "upperarm01.L": _rotation_x(arm_swing) @ _rotation_y(lower_arm),
        "upperarm01.R": _rotation_x(-arm_swing) @ _rotation_y(-lower_arm),
        "spine02": _rotation_z(-twist),
        "root": _rotation_z(twist * 0.6),
    }


def _rotation_about(axis: np.ndarray, angle_rad: torch.Tensor) -> torch.Tensor:
    """Unit axis (3,) and (T,) angles -> (T, 4, 4) homogeneous rotations (Rodrigues)."""
    a = torch.as_tensor(axis, dtype=torch.float64)
    cross = torch.tensor(
        [[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]], dtype=torch.float64
    )
    s, c = torch.sin(angle_rad)[:, None, None], torch.cos(angle_rad)[:, None, None]
    m = torch.eye(4, dtype=torch.float64).repeat(angle_rad.shape[0], 1, 1)
    m[:, :3, :3] = torch.eye(3, dtype=torch.float64) + s * cross + (1.0 - c) * (cross @ cross)
    return m


def elbow_axes(model, phenotype: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Side ("L"/"R") -> unit axis (3,) about which a positive angle bends that elbow further.

    The hinge is normal to the rest upper arm and forearm, so it follows each phenotype's
    proportions instead of assuming Anny's rest arm directions.
    """
    one = {k: v[:1] for k, v in phenotype.items()}
    with torch.no_grad():
        rest = model(
            pose_parameters={"root": torch.eye(4, dtype=torch.float64)[None]},
            phenotype_kwargs=one,
            pose_parameterization="local-ref",
        )["rest_bone_heads"][0].numpy()
    labels = list(model.bone_labels)
    axes = {}
    for side in ("L", "R"):
        shoulder, elbow, wrist = (
            rest[labels.index(f"{bone}.{side}")] for bone in ("upperarm01", "lowerarm01", "wrist")
        )
        # Rotating the forearm about upper × fore turns it towards the shoulder.
        hinge = np.cross(elbow - shoulder, wrist - elbow)
        axes[side] = hinge / np.linalg.norm(hinge)
    return axes


def run_pose_parameters(
    phase_rad: np.ndarray, elbow_axis: dict[str, np.ndarray]
) -> dict[str, torch.Tensor]:
    """Procedural running cycle ('local-ref'), one cycle per 2π: bone name -> (T, 4, 4).

    Against the walk: a wider, forward-shifted hip swing, a knee folded far more in swing and
    bent in stance, elbows bent near a right angle, a strong arm swing and the trunk leaning
    forward.
    """
    phase = torch.as_tensor(phase_rad, dtype=torch.float64)
    deg = math.pi / 180.0
    hip_left = (12.0 + 38.0 * torch.sin(phase)) * deg
    hip_right = (12.0 - 38.0 * torch.sin(phase)) * deg
    swing_left = torch.clamp(torch.cos(phase + math.pi / 4), min=0.0) ** 2
    swing_right = torch.clamp(torch.cos(phase + math.pi + math.pi / 4), min=0.0) ** 2
    knee_left = (22.0 + 85.0 * swing_left) * deg
    knee_right = (22.0 + 85.0 * swing_right) * deg
    arm_swing = 32.0 * deg * torch.sin(phase)
    lower_arm = torch.full_like(phase, 66.0 * deg)
    elbow_bend = torch.full_like(phase, 45.0 * deg)
    lean = torch.full_like(phase, 10.0 * deg)
    twist = 8.0 * deg * torch.sin(phase)
    return {
        "upperleg01.L": _rotation_x(-hip_left),
        "upperleg01.R": _rotation_x(-hip_right),
        "lowerleg01.L": _rotation_x(knee_left),
        "lowerleg01.R": _rotation_x(knee_right),
        "foot.L": _rotation_x(-15.0 * deg * swing_left),
        "foot.R": _rotation_x(-15.0 * deg * swing_right),
        "upperarm01.L": _rotation_x(arm_swing) @ _rotation_y(lower_arm),
        "upperarm01.R": _rotation_x(-arm_swing) @ _rotation_y(-lower_arm),
        "lowerarm01.L": _rotation_about(elbow_axis["L"], elbow_bend),
        "lowerarm01.R": _rotation_about(elbow_axis["R"], elbow_bend),
        # A rotation about +X tips the trunk forward (towards -Y); the neck gives half of it
        # back so the runner looks ahead, not at the ground.
        "spine03": _rotation_x(lean),
        "neck01": _rotation_x(-0.5 * lean),
        "spine02": _rotation_z(-twist),
        "root": _rotation_z(twist * 0.6),
    }


def clothing_rgb(model, palette: dict[str, list[float]], rest_vertices: np.ndarray) -> np.ndarray:
    """Per-vertex colour (V, 3) from each vertex's dominant bone; hair on the top of the head."""
    labels = list(model.bone_labels)
    dominant = model.vertex_bone_indices.gather(
        1, model.vertex_bone_weights.argmax(dim=1, keepdim=True)
    )[:, 0].numpy()
    region_of_bone = []
    for name in labels:
        if name.startswith(SKIN_BONE_PREFIXES):
            region_of_bone.append("skin")
        elif name.startswith(SHOE_BONE_PREFIXES):
            region_of_bone.append("shoes")
        elif name.startswith(TROUSER_BONE_PREFIXES):
            region_of_bone.append("trousers")
        else:
            region_of_bone.append("shirt")
    rgb = np.array([palette[region_of_bone[b]] for b in dominant], dtype=np.float32)
    head_index = labels.index("head")
    head_vertices = dominant == head_index
    head_z = rest_vertices[head_vertices, 2]
    head_top = head_z.max()
    # Hair: the crown and the back of the head (Anny faces -Y, so the back is +Y).
    is_hair = head_vertices & (
        (rest_vertices[:, 2] > head_top - 0.075)
        | (
            (rest_vertices[:, 1] > np.median(rest_vertices[head_vertices, 1]) + 0.02)
            & (rest_vertices[:, 2] > head_top - 0.16)
        )
    )
    rgb[is_hair] = palette["hair"]
    return rgb


def pose_person(model, person: dict, fps: float, frame_count: int):
    """Vertices (T, V, 3) and SMPL-24 joints (T, 24, 3) of one walker in world coordinates."""
    times = np.arange(frame_count) / fps
    speed = float(person["speed_mps"])
    distance = speed * times
    phase = person.get("phase0", 0.0) + 2.0 * math.pi * distance / float(person["stride_m"])
    phenotype = {
        k: torch.full((frame_count,), float(v), dtype=torch.float64)
        for k, v in person["phenotype"].items()
    }
    gait = person.get("gait", "walk")
    if gait == "walk":
        params = walk_pose_parameters(phase, speed)
    elif gait == "run":
        params = run_pose_parameters(phase, elbow_axes(model, phenotype))
    else:
        raise ValueError(f"unknown gait {gait!r} (walk or run)")
    with torch.no_grad():
        out = model(
            pose_parameters=params, phenotype_kwargs=phenotype, pose_parameterization="local-ref"
        )
    vertices = out["vertices"].numpy()  # (T, V, 3), pelvis at the origin, facing -Y
    labels = list(model.bone_labels)
    joint_index = [labels.index(name) for name in SMPL24_FROM_ANNY_BONE]
    joints = out["bone_poses"][:, joint_index, :3, 3].numpy()  # (T, 24, 3)

    if "waypoints" in person:
        ground_xy, yaw = polyline_path(person["waypoints"], distance, float(person["turn_m"]))
    else:
        ground_xy, yaw = straight_path(person["start_xy"], person["heading_deg"], distance)
    # Rotate the body's front (-Y) onto the walking direction.
    rot_t = yaw_rotations(yaw).transpose(0, 2, 1)  # (T, 3, 3), transposed for row vectors
    # Feet on the ground each frame: the lowest vertex touches z = 0.
    lift = -vertices[:, :, 2].min(axis=1)
    offset = np.concatenate([ground_xy, lift[:, None]], axis=1)  # (T, 3)
    vertices_world = vertices @ rot_t + offset[:, None, :]
    joints_world = joints @ rot_t + offset[:, None, :]
    rest = out["rest_vertices"][0].numpy()
    rgb = clothing_rgb(model, person["palette"], rest)
    return vertices_world, joints_world, rgb


def main(argv: list[str]) -> int:
    import anny

    scene_path, out_path = argv
    with open(scene_path, encoding="utf-8") as f:
        scene = json.load(f)
    model = anny.Anny()
    faces = model.get_triangular_faces().numpy().astype(np.int32)
    verts, joints, rgbs = [], [], []
    for person in scene["people"]:
        v, j, c = pose_person(model, person, float(scene["fps"]), int(scene["frame_count"]))
        verts.append(v)
        joints.append(j)
        rgbs.append(c)
    np.savez(
        out_path,
        vertices_world=np.stack(verts, axis=1).astype(np.float32),
        joints_world=np.stack(joints, axis=1).astype(np.float32),
        faces=faces,
        vertex_rgb=np.stack(rgbs).astype(np.float32),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
