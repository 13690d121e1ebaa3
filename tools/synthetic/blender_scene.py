"""Renders posed Anny bodies in a small street-like set with Cycles (CPU).

Runs in the bpy environment (`.venv-blender`), never beside torch:

    .venv-blender/bin/python tools/synthetic/blender_scene.py RENDER.json

RENDER.json holds `poses_npz` (written by walk_poses.py), `camera` (PinholeCamera fields),
`frames` (indices to render), `out_dir` (PNG per frame, `frame_%04d.png`), `samples`,
`threads`, `seed`, `K`, `R`, `t`. Optional: `camera_path`, one entry per frame of the poses
(`location_m`, `pitch_deg`, `yaw_deg`, `R`, `t`) for a moving camera, and `occluders`, boxes
standing in the set (`name`, `center_m`, `size_m`, `rgb`). Also prints the largest gap
between Blender's own projection of the joints and ours, so a camera mismatch cannot go
unnoticed.
"""

import json
import math
import os
import sys
import tempfile

import numpy as np

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="ram-bpy-"))
import bpy
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector


def _principled(name: str) -> tuple[bpy.types.Material, bpy.types.Node]:
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    bsdf = material.node_tree.nodes["Principled BSDF"]
    return material, bsdf


def _noise_material(name: str, color_a, color_b, scale: float, roughness: float):
    """A material whose base colour mixes two colours by a noise texture (breaks flatness)."""
    material, bsdf = _principled(name)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = scale
    noise.inputs["Detail"].default_value = 8.0
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (*color_a, 1.0)
    ramp.color_ramp.elements[1].color = (*color_b, 1.0)
    links.new(noise.outputs["Fac"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = roughness
    return material


def _box(name: str, location, size, material) -> bpy.types.Object:
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=location)
    obj = bpy.context.active_object
    obj.name = name
    obj.scale = size
    obj.data.materials.append(material)
    return obj


def build_set(seed: int) -> None:
    """Ground, back wall, a pillar and a bench behind the walkers; sun and sky."""
    ground_mat = _noise_material("Ground", (0.32, 0.31, 0.29), (0.45, 0.43, 0.40), 3.0, 0.9)
    bpy.ops.mesh.primitive_plane_add(size=60.0, location=(0.0, 15.0, 0.0))
    bpy.context.active_object.data.materials.append(ground_mat)
    wall_mat = _noise_material("Wall", (0.55, 0.50, 0.42), (0.68, 0.63, 0.55), 1.5, 0.8)
    _box("BackWall", (0.0, 14.0, 3.0), (40.0, 0.3, 6.0), wall_mat)
    stripe_mat, stripe_bsdf = _principled("Stripe")
    stripe_bsdf.inputs["Base Color"].default_value = (0.18, 0.22, 0.28, 1.0)
    _box("WallStripe", (0.0, 13.8, 0.5), (40.0, 0.1, 1.0), stripe_mat)
    pillar_mat = _noise_material("Pillar", (0.62, 0.62, 0.60), (0.75, 0.74, 0.72), 6.0, 0.7)
    rng = np.random.default_rng(seed)
    pillar_x = -4.6 + 0.2 * float(rng.uniform(-1.0, 1.0))
    _box("Pillar", (pillar_x, 12.5, 3.0), (0.6, 0.6, 6.0), pillar_mat)
    bench_mat, bench_bsdf = _principled("Bench")
    bench_bsdf.inputs["Base Color"].default_value = (0.35, 0.22, 0.12, 1.0)
    _box("Bench", (3.2, 13.2, 0.25), (2.2, 0.5, 0.5), bench_mat)

    bpy.ops.object.light_add(type="SUN", location=(0.0, 0.0, 10.0))
    sun = bpy.context.active_object
    sun.data.energy = 3.5
    sun.data.angle = math.radians(3.0)
    sun.rotation_euler = (math.radians(50.0), math.radians(-20.0), math.radians(30.0))

    world = bpy.data.worlds.new("Sky")
    bpy.context.scene.world = world
    world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = nodes["Background"]
    # A vertical gradient stands in for a sky: bright near the horizon, bluer above.
    coords = nodes.new("ShaderNodeTexCoord")
    separate = nodes.new("ShaderNodeSeparateXYZ")
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (0.75, 0.78, 0.82, 1.0)
    ramp.color_ramp.elements[1].color = (0.35, 0.50, 0.80, 1.0)
    links.new(coords.outputs["Generated"], separate.inputs["Vector"])
    links.new(separate.outputs["Z"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], background.inputs["Color"])
    background.inputs["Strength"].default_value = 0.9


def add_occluders(occluders: list[dict]) -> None:
    """Boxes (pillars, screens) that may hide people; the ground truth knows them too."""
    for occluder in occluders:
        rgb = np.asarray(occluder["rgb"], dtype=np.float64)
        material = _noise_material(
            occluder["name"], tuple(rgb * 0.85), tuple(np.minimum(rgb * 1.15, 1.0)), 6.0, 0.7
        )
        _box(occluder["name"], occluder["center_m"], occluder["size_m"], material)


def add_person(index: int, vertices: np.ndarray, faces: np.ndarray, rgb: np.ndarray):
    """One mesh per person with per-vertex clothing colours; returns the object."""
    mesh = bpy.data.meshes.new(f"Person_{index:03d}")
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.astype(np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(len(faces), 3, dtype=np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    mesh.update(calc_edges=True)
    colors = mesh.color_attributes.new("clothing", "FLOAT_COLOR", "POINT")
    rgba = np.concatenate([rgb, np.ones((len(rgb), 1), np.float32)], axis=1)
    colors.data.foreach_set("color", rgba.astype(np.float32).ravel())

    material, bsdf = _principled(f"Clothing_{index:03d}")
    attribute = material.node_tree.nodes.new("ShaderNodeAttribute")
    attribute.attribute_name = "clothing"
    material.node_tree.links.new(attribute.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.65
    mesh.materials.append(material)
    obj = bpy.data.objects.new(mesh.name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def add_camera(spec: dict) -> bpy.types.Object:
    cam_data = bpy.data.cameras.new("Camera")
    cam_data.lens = spec["lens_mm"]
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = spec["sensor_width_mm"]
    cam = bpy.data.objects.new("Camera", cam_data)
    bpy.context.scene.collection.objects.link(cam)
    cam.location = spec["location_m"]
    pitch, yaw = math.radians(spec["pitch_deg"]), math.radians(spec["yaw_deg"])
    cam.rotation_euler = (math.pi / 2.0 - pitch, 0.0, yaw)
    bpy.context.scene.camera = cam
    return cam


def configure_render(spec: dict, samples: int, threads: int, seed: int) -> None:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = True
    scene.cycles.denoiser = "OPENIMAGEDENOISE"
    scene.cycles.seed = seed
    scene.cycles.max_bounces = 4
    scene.render.threads_mode = "FIXED"
    scene.render.threads = threads
    scene.render.resolution_x = spec["width_px"]
    scene.render.resolution_y = spec["height_px"]
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"


def place_camera(cam, pose: dict) -> None:
    """Moves the camera to one frame's pose of a camera path."""
    cam.location = pose["location_m"]
    pitch, yaw = math.radians(pose["pitch_deg"]), math.radians(pose["yaw_deg"])
    cam.rotation_euler = (math.pi / 2.0 - pitch, 0.0, yaw)


def max_projection_gap_px(cam, joints_world: np.ndarray, K: np.ndarray, R, t, spec) -> float:
    """Largest pixel gap between Blender's camera projection and the K, R, t one."""
    scene = bpy.context.scene
    bpy.context.view_layer.update()
    gaps = []
    for point in joints_world.reshape(-1, 3)[:48]:
        ndc = world_to_camera_view(scene, cam, Vector(point.tolist()))
        blender_px = np.array([ndc.x * spec["width_px"], (1.0 - ndc.y) * spec["height_px"]])
        cam_point = R @ point + t
        ours = (K @ cam_point)[:2] / cam_point[2]
        gaps.append(np.abs(blender_px - ours).max())
    return float(max(gaps))


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as f:
        job = json.load(f)
    poses = np.load(job["poses_npz"])
    vertices = poses["vertices_world"]  # (T, P, V, 3)
    faces, rgb = poses["faces"], poses["vertex_rgb"]
    bpy.ops.wm.read_homefile(use_empty=True)
    spec = job["camera"]
    seed = int(job["seed"])
    build_set(seed)
    add_occluders(job.get("occluders", []))
    people = [add_person(p, vertices[0, p], faces, rgb[p]) for p in range(vertices.shape[1])]
    cam = add_camera(spec)
    configure_render(spec, int(job["samples"]), int(job["threads"]), seed)
    K = np.asarray(job["K"], dtype=np.float64)
    camera_path = job.get("camera_path")
    if camera_path is None:
        R, t = (np.asarray(job[key], dtype=np.float64) for key in ("R", "t"))
        gap = max_projection_gap_px(cam, poses["joints_world"][0], K, R, t, spec)
    else:
        gaps = []
        for frame in job["frames"]:
            pose = camera_path[frame]
            place_camera(cam, pose)
            R, t = (np.asarray(pose[key], dtype=np.float64) for key in ("R", "t"))
            gaps.append(max_projection_gap_px(cam, poses["joints_world"][frame], K, R, t, spec))
        gap = max(gaps)
    print(json.dumps({"event": "camera_check", "max_gap_px": gap}), flush=True)
    os.makedirs(job["out_dir"], exist_ok=True)
    for frame in job["frames"]:
        if camera_path is not None:
            place_camera(cam, camera_path[frame])
        for p, obj in enumerate(people):
            obj.data.vertices.foreach_set("co", vertices[frame, p].astype(np.float32).ravel())
            obj.data.update()
        bpy.context.scene.render.filepath = os.path.join(job["out_dir"], f"frame_{frame:04d}.png")
        bpy.ops.render.render(write_still=True)
        print(json.dumps({"event": "frame", "frame": int(frame)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
