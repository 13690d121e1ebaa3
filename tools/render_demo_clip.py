"""Renders the bundled demo clip (three Anny people, one hidden for about a second) and its
ground truth, or the still test fixture with two people.

Run from the repository root with the pipeline environment; it calls the torch
environment for posing and the bpy environment for rendering, each in its own process:

    .venv/bin/python tools/render_demo_clip.py --seed 7
    .venv/bin/python tools/render_demo_clip.py --still tests/fixtures/people_frame.png

Outputs: demo/three_people.mp4 (OpenCV mp4v) and demo/three_people_gt.npz; or the still
PNG plus a JSON list of full-body boxes beside it.
"""

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from synthetic.camera import PinholeCamera, project
from synthetic.ground_truth import full_boxes, visibility, world_to_camera_points

REPO = Path(__file__).resolve().parent.parent
TORCH_PYTHON = REPO / ".venv-tools" / "bin" / "python"
BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"
SYNTHETIC = Path(__file__).resolve().parent / "synthetic"

CAMERA = PinholeCamera(
    location_m=(0.0, 0.0, 1.7),
    pitch_deg=7.0,
    yaw_deg=0.0,
    lens_mm=50.0,
    sensor_width_mm=36.0,
    width_px=640,
    height_px=360,
)
# The still fixture (tests/fixtures/people_frame.png) was made with this camera.
STILL_CAMERA = dataclasses.replace(CAMERA, pitch_deg=9.0)

# Clothing palettes (linear RGB), chosen to differ clearly in hue and brightness.
PALETTES = (
    {
        "skin": [0.62, 0.40, 0.30],
        "shirt": [0.75, 0.06, 0.05],
        "trousers": [0.05, 0.08, 0.25],
        "shoes": [0.9, 0.9, 0.9],
        "hair": [0.06, 0.04, 0.03],
    },
    {
        "skin": [0.35, 0.20, 0.13],
        "shirt": [0.90, 0.70, 0.05],
        "trousers": [0.30, 0.30, 0.32],
        "shoes": [0.05, 0.05, 0.05],
        "hair": [0.02, 0.02, 0.02],
    },
    {
        "skin": [0.70, 0.50, 0.38],
        "shirt": [0.05, 0.45, 0.20],
        "trousers": [0.55, 0.42, 0.25],
        "shoes": [0.25, 0.12, 0.05],
        "hair": [0.40, 0.22, 0.08],
    },
)

# Base phenotypes (Anny's 0..1 sliders; gender 0 is male); the seed jitters them slightly.
# Person 1 is tall and broad, person 2 short and slim, so 1 can hide 2 completely.
PHENOTYPES = (
    {"gender": 0.0, "age": 0.7, "muscle": 0.8, "weight": 0.95, "height": 0.5, "proportions": 0.5},
    {"gender": 1.0, "age": 0.75, "muscle": 0.35, "weight": 0.3, "height": 0.2, "proportions": 0.5},
    {
        "gender": 0.6,
        "age": 0.85,
        "muscle": 0.45,
        "weight": 0.75,
        "height": 0.35,
        "proportions": 0.5,
    },
)

# Walking paths on the ground (metres; camera at the origin looking along +Y). Persons 1
# and 2 walk left to right at 6.2 m and 9 m, 2 more slowly, so that 1 passes in front of
# 2: apart at the start, 2 hidden behind 1 for most of a second in the middle, apart again
# at the end. Person 3 strolls away from the camera on the right and stays visible.
DEMO_PATHS = (
    {"start_xy": [-1.42, 6.2], "heading_deg": 0.0, "speed_mps": 0.6, "stride_m": 0.94,
     "phase0": 0.3},
    {"start_xy": [-1.345, 9.0], "heading_deg": 0.0, "speed_mps": 0.46, "stride_m": 0.72,
     "phase0": 0.3},
    {"start_xy": [1.5, 5.5], "heading_deg": 90.0, "speed_mps": 0.3, "stride_m": 0.5},
)  # fmt: skip

# The still fixture's two people (gender 1 reads as female in Anny).
STILL_PHENOTYPES = (
    {
        "gender": 0.95,
        "age": 0.72,
        "muscle": 0.65,
        "weight": 0.55,
        "height": 0.55,
        "proportions": 0.5,
    },
    {
        "gender": 0.05,
        "age": 0.80,
        "muscle": 0.40,
        "weight": 0.45,
        "height": 0.45,
        "proportions": 0.5,
    },
)

STILL_PATHS = (
    {"start_xy": [-1.3, 6.3], "heading_deg": 10.0, "speed_mps": 1.2, "stride_m": 1.4},
    {"start_xy": [1.5, 8.3], "heading_deg": 200.0, "speed_mps": 1.0, "stride_m": 1.3},
)


def people_specs(paths, seed: int, phenotypes=PHENOTYPES, jitter: float = 0.03) -> list[dict]:
    rng = np.random.default_rng(seed)
    specs = []
    for index, path in enumerate(paths):
        phenotype = {
            k: float(np.clip(v + rng.uniform(-jitter, jitter), 0.0, 1.0))
            for k, v in phenotypes[index].items()
        }
        phase0 = float(rng.uniform(0.0, 2.0 * np.pi))
        specs.append({"phase0": phase0, **path, "phenotype": phenotype, "palette": PALETTES[index]})
    return specs


def run_logged(command: list[str]) -> None:
    """Runs a step, passing its JSON events through and failing loudly on error."""
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in process.stdout.splitlines():
        if line.startswith("{"):
            print(line, flush=True)
    if process.returncode != 0:
        sys.stderr.write(process.stderr[-4000:])
        raise SystemExit(f"step failed ({process.returncode}): {' '.join(command)}")


def pose_people(specs, fps: int, frame_count: int, work: Path) -> dict[str, np.ndarray]:
    scene_json = work / "scene.json"
    scene_json.write_text(json.dumps({"fps": fps, "frame_count": frame_count, "people": specs}))
    poses_npz = work / "poses.npz"
    run_logged(
        [str(TORCH_PYTHON), str(SYNTHETIC / "walk_poses.py"), str(scene_json), str(poses_npz)]
    )
    with np.load(poses_npz) as data:
        return {key: data[key] for key in data.files} | {"path": str(poses_npz)}


def render_frames(
    poses_path: str, frames, work: Path, samples: int, seed: int, camera: PinholeCamera = CAMERA
) -> Path:
    rotation, translation = camera.world_to_camera()
    out_dir = work / "frames"
    job = {
        "poses_npz": poses_path,
        "camera": dataclasses.asdict(camera),
        "frames": [int(f) for f in frames],
        "out_dir": str(out_dir),
        "samples": samples,
        "threads": 2,
        "seed": seed,
        "K": camera.intrinsics().tolist(),
        "R": rotation.tolist(),
        "t": translation.tolist(),
    }
    job_json = work / "render.json"
    job_json.write_text(json.dumps(job))
    run_logged([str(BLENDER_PYTHON), str(SYNTHETIC / "blender_scene.py"), str(job_json)])
    return out_dir


def ground_truth(
    poses: dict[str, np.ndarray], fps: int, camera: PinholeCamera = CAMERA
) -> dict[str, np.ndarray]:
    """The GT arrays saved beside the clip (float32 unless an int)."""
    K = camera.intrinsics()
    rotation, translation = camera.world_to_camera()
    width, height = camera.width_px, camera.height_px
    vertices_cam = world_to_camera_points(
        poses["vertices_world"].astype(np.float64), rotation, translation
    )
    pixels = project(vertices_cam, K)
    visible_fraction, box_visible = visibility(
        pixels, vertices_cam[..., 2], poses["faces"], width, height
    )
    joints_world = poses["joints_world"].astype(np.float64)
    person_count = joints_world.shape[1]
    return {
        "fps": np.int32(fps),
        "width": np.int32(width),
        "height": np.int32(height),
        "K": K.astype(np.float32),
        "R_world_to_cam": rotation.astype(np.float32),
        "t_world_to_cam": translation.astype(np.float32),
        "person_ids": np.arange(1, person_count + 1, dtype=np.int32),
        "box_full_xyxy": full_boxes(pixels, width, height).astype(np.float32),
        "box_visible_xyxy": box_visible.astype(np.float32),
        "visible_fraction": visible_fraction.astype(np.float32),
        "joints_world": joints_world.astype(np.float32),
        "joints_cam": world_to_camera_points(joints_world, rotation, translation).astype(
            np.float32
        ),
    }


def summarize(gt: dict[str, np.ndarray]) -> None:
    """Prints what the clip holds: pixel heights and the hidden frames per person."""
    heights = gt["box_full_xyxy"][..., 3] - gt["box_full_xyxy"][..., 1]
    for p, person_id in enumerate(gt["person_ids"]):
        hidden = np.flatnonzero(gt["visible_fraction"][:, p] < 0.2)
        print(
            json.dumps(
                {
                    "event": "person",
                    "id": int(person_id),
                    "height_px": [
                        round(float(heights[:, p].min()), 1),
                        round(float(heights[:, p].max()), 1),
                    ],
                    "visible_min": round(float(gt["visible_fraction"][:, p].min()), 3),
                    "hidden_frames": [int(hidden.min()), int(hidden.max())] if hidden.size else [],
                    "hidden_count": int(hidden.size),
                }
            ),
            flush=True,
        )


def write_video(frame_dir: Path, frame_count: int, fps: int, out_path: Path) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(
        str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (CAMERA.width_px, CAMERA.height_px)
    )
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {out_path}")
    for frame in range(frame_count):
        image = cv2.imread(str(frame_dir / f"frame_{frame:04d}.png"))
        if image is None:
            raise SystemExit(f"frame {frame} was not rendered")
        writer.write(image)
    writer.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--frames", type=int, default=84)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--video", type=Path, default=REPO / "demo" / "three_people.mp4")
    parser.add_argument("--gt", type=Path, default=REPO / "demo" / "three_people_gt.npz")
    parser.add_argument("--still", type=Path, help="render the two-person still to this PNG")
    parser.add_argument(
        "--gt-only", action="store_true", help="pose and compute the ground truth, skip rendering"
    )
    parser.add_argument("--keep-frames", type=Path, help="copy the rendered PNGs here")
    args = parser.parse_args(argv)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ram-demo-") as tmp:
        work = Path(tmp)
        if args.still:
            specs = people_specs(STILL_PATHS, args.seed, STILL_PHENOTYPES, jitter=0.05)
            poses = pose_people(specs, args.fps, 1, work)
            gt = ground_truth(poses, args.fps, STILL_CAMERA)
            frame_dir = render_frames(
                poses["path"], [0], work, max(args.samples, 8), args.seed, STILL_CAMERA
            )
            image = cv2.imread(str(frame_dir / "frame_0000.png"))
            args.still.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.still), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
            boxes = np.round(gt["box_full_xyxy"][0].astype(np.float64), 1).tolist()
            args.still.with_suffix(".json").write_text(json.dumps(boxes) + "\n")
            summarize(gt)
            return 0

        poses = pose_people(people_specs(DEMO_PATHS, args.seed), args.fps, args.frames, work)
        gt = ground_truth(poses, args.fps)
        summarize(gt)
        if args.gt_only:
            return 0
        frame_dir = render_frames(poses["path"], range(args.frames), work, args.samples, args.seed)
        write_video(frame_dir, args.frames, args.fps, args.video)
        args.gt.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.gt, **gt)
        if args.keep_frames:
            args.keep_frames.mkdir(parents=True, exist_ok=True)
            for png in sorted(frame_dir.glob("*.png")):
                (args.keep_frames / png.name).write_bytes(png.read_bytes())
    print(json.dumps({"event": "done", "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
