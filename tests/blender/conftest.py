"""Blender tests: run in a bpy environment (tools/test_blender.sh), skipped elsewhere.

The extension is assembled (as build_addon.py does, minus the wheel: ram_core comes from
this environment) into a development repository and enabled as ``bl_ext.ram_dev.ram_motion``.
"""

import importlib
import os
import stat
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Blender writes its user configuration here instead of the home folder; set before bpy.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="ram-blender-user-"))

try:
    import bpy
except ImportError:
    bpy = None
    # The main environment has no bpy: these tests belong to tools/test_blender.sh.
    collect_ignore_glob = ["test_*.py"]

REPO = Path(__file__).resolve().parents[2]
REPO_MODULE = "ram_dev"
EXTENSION_ID = "ram_motion"
EXTENSION_MODULE = f"bl_ext.{REPO_MODULE}.{EXTENSION_ID}"
DEMO_VIDEO = REPO / "demo" / "three_people.mp4"

_exit_status = 0


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config):
    # bpy 4.2 can crash and 4.5 hang at interpreter exit after add-ons ran.
    if bpy is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)


@pytest.fixture(scope="session")
def extension(tmp_path_factory):
    """The extension package, enabled from a development repository."""
    sys.path.insert(0, str(REPO))
    import addon_utils

    from build_addon import assemble_extension

    repo_dir = tmp_path_factory.mktemp("dev_repo")
    assemble_extension(repo_dir / EXTENSION_ID, include_wheels=False)
    repos = bpy.context.preferences.extensions.repos
    repos.new(name="RAM dev", module=REPO_MODULE, custom_directory=str(repo_dir), source="USER")
    addon_utils.enable(EXTENSION_MODULE, default_set=True, handle_error=_raise)
    assert EXTENSION_MODULE in bpy.context.preferences.addons
    return importlib.import_module(EXTENSION_MODULE)


def _raise(exc):
    raise exc


@pytest.fixture
def ext(extension):
    """The enabled extension, with an empty scene for each test."""
    bpy.ops.wm.read_homefile(use_empty=True)
    assert EXTENSION_MODULE in bpy.context.preferences.addons
    return extension


def scene_state():
    """What an import may change: compare before and after to show it left the scene alone."""
    scene = bpy.context.scene
    return (
        sorted(o.name for o in bpy.data.objects),
        sorted(c.name for c in bpy.data.collections),
        sorted(m.name for m in bpy.data.meshes),
        sorted(a.name for a in bpy.data.actions),
        (scene.frame_start, scene.frame_end, scene.render.fps, scene.camera),
    )


def fake_pipeline(folder: Path, body: str) -> str:
    """An executable standing in for the pipeline's Python: it prints and exits as told."""
    script = folder / "fake_python"
    script.write_text(f"#!{sys.executable}\nimport json, sys, time\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def evaluated_world_vertices(obj) -> np.ndarray:
    """World positions (V, 3) of a mesh's vertices after its modifiers (the Armature)."""
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        coords = np.empty(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", coords)
    finally:
        evaluated.to_mesh_clear()
    world = np.array(obj.matrix_world)
    return coords.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]


def submodule(name: str):
    return importlib.import_module(f"{EXTENSION_MODULE}.{name}")


def plausible_track_rows(rng, track_id: int, frames: np.ndarray) -> dict[str, np.ndarray]:
    """A person standing in front of the camera, turning and moving its limbs."""
    from ram_core.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
    from ram_core.io.result import TRACK_ARRAYS

    count = len(frames)
    t = np.linspace(0.0, 1.0, count)
    upright = axis_angle_to_matrix(np.array([np.pi, 0.0, 0.0]))
    yaw = axis_angle_to_matrix(np.outer(0.8 * np.sin(2 * np.pi * t), [0.0, 1.0, 0.0]))
    global_orient = matrix_to_axis_angle(upright @ yaw)
    body_pose = 0.4 * np.sin(
        2 * np.pi * (t[:, None, None] * rng.uniform(0.5, 2.0, (1, 23, 3)))
        + rng.uniform(0, 2 * np.pi, (1, 23, 3))
    )
    transl = np.column_stack(
        [
            rng.uniform(-1.0, 1.0) + 0.3 * t,
            np.full(count, rng.uniform(0.0, 0.4)),
            np.full(count, rng.uniform(3.0, 6.0)) - 0.5 * t,
        ]
    )
    rows = {
        name: np.zeros((count, *shape), dtype=dtype)
        for name, (shape, dtype) in TRACK_ARRAYS.items()
    }
    rows.update(
        track_id=np.full(count, track_id),
        frame=frames,
        global_orient=global_orient,
        body_pose=body_pose,
        transl=transl,
        recon_global_orient=global_orient,
        recon_body_pose=body_pose,
        recon_transl=transl,
        pred_global_orient=global_orient,
        pred_body_pose=body_pose,
        pred_transl=transl,
        reliability=np.ones(count),
        gate=np.ones(count),
        recon_valid=np.ones(count, dtype=bool),
    )
    return rows


CAMERA = {"fx": 700.0, "fy": 700.0, "cx": 331.0, "cy": 171.5, "width": 640, "height": 360}


def write_result(
    path: Path,
    track_frames: dict[int, range],
    fps: float = 24.0,
    seed: int = 0,
    betas: dict[int, np.ndarray] | None = None,
    backend: str | None = None,
    masks: bool = False,
    fused: bool = False,
    tracks: dict[str, np.ndarray] | None = None,
    world: dict | None = None,
    camera_track: tuple[np.ndarray, np.ndarray] | None = None,
):
    """A result folder written by ram_core's own writer; returns its path.

    ``betas``: a shape (10,) per track id, the same on every frame (zeros otherwise);
    ``fused``: the final pose columns are the Predictor + Combiner's output, as the
    pipeline writes them (otherwise they are the reconstruction itself).
    ``masks``: write label images too (``mask_box``: each track a rectangle of its own).
    ``tracks``: the table itself (``track_frames`` still names its tracks' frames).
    ``world``: the manifest's ``world`` entry; ``camera_track``: a turning camera's
    (frames, camera_to_world) for ``camera.npz``.
    ``backend``: the manifest's backend name (none recorded otherwise). The lite backend's
    results are solved on the built-in skeleton; the others here are in the body model's
    own terms (SMPL's convention), as a result solved on an SMPL file is.
    """
    from ram_core.body.skeleton import builtin_rest_skeleton
    from ram_core.io.result import ResultWriter

    rng = np.random.default_rng(seed)
    parts = [
        plausible_track_rows(rng, track_id, np.asarray(frames))
        for track_id, frames in sorted(track_frames.items())
    ]
    for part in parts:
        track_id = int(part["track_id"][0])
        if betas and track_id in betas:
            shape = np.asarray(betas[track_id], dtype=part["betas"].dtype)
            part["betas"] = np.tile(shape, (len(part["betas"]), 1))
    if tracks is None:
        tracks = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    if fused:
        from ram_core.motion.fusion import fuse_tracks

        # Reliable observations, not all certain: where they are doubtful, an edit's effect
        # fades over more frames than the gate's ramp (the pose leans on the prediction).
        tracks["reliability"] = rng.uniform(0.8, 1.0, len(tracks["reliability"]))
        tracks = fuse_tracks(tracks)
    last = max(max(frames) for frames in track_frames.values())
    manifest = {
        "source_video": {
            "path": str(DEMO_VIDEO),
            "fps": fps,
            "width": CAMERA["width"],
            "height": CAMERA["height"],
            "frame_count": 84,
            "start": 0,
            "end": last + 1,
        },
        "camera": dict(CAMERA),
    }
    if backend is not None:
        manifest["backend"] = {"name": backend, "reason": "written by a test"}
    if world is not None:
        manifest["world"] = world
    manifest["rest_skeleton"] = (
        builtin_rest_skeleton()
        if backend == "lite"
        else {"kind": "smpl_file", "name": "any SMPL file (written by a test)"}
    )
    with ResultWriter(path) as writer:
        if masks:
            for frame in range(last + 1):
                labels = np.zeros((CAMERA["height"], CAMERA["width"]), dtype=np.uint16)
                for track_id, frames in track_frames.items():
                    if frame in frames:
                        x0, y0, x1, y1 = mask_box(track_id)
                        labels[y0:y1, x0:x1] = track_id
                writer.write_mask(frame, labels)
        if camera_track is not None:
            writer.write_camera_track(*camera_track)
        writer.finish(manifest, tracks)
    return path


def mask_box(track_id: int) -> tuple[int, int, int, int]:
    """The rectangle (x0, y0, x1, y1) a test result's mask of ``track_id`` fills."""
    x0 = 20 + 70 * (track_id % 8)
    return x0, 60, x0 + 50, 300
