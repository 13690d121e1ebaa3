"""Renders the synthetic occlusion benchmark: short scenes of Anny people with ground truth.

Run from the repository root with the pipeline environment; it poses the bodies in the torch
environment (`.venv-tools`) and renders with Cycles in the bpy environment (`.venv-blender`),
each in its own process (`bash tools/setup_render.sh` makes both):

    .venv/bin/python tools/make_bench_scenes.py                    # the default set
    .venv/bin/python tools/make_bench_scenes.py --scenes crossing,hidden_pillar --seed 3
    .venv/bin/python tools/make_bench_scenes.py --quick --out /tmp/scenes   # tiny, for tests

Each scene becomes SCENES_DIR/<name>/ with video.mp4, scene.json, gt.npz and masks.npz (the
format in ram_core/eval/bench_scenes.py); the folder appears only once the scene is complete.
Scenes are defined in tools/synthetic/scenes.py; the ground truth (masks by z-buffer
rasterisation of the posed meshes) in tools/synthetic/bench_truth.py.
"""

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from synthetic.bench_truth import scene_ground_truth
from synthetic.contact_sheet import contact_sheet
from synthetic.scenes import (
    DEFAULT_SCENES,
    SCENES,
    SET_PROPS_FROM_Y_M,
    ScenePlan,
    SceneSpec,
    plan_scene,
)

from ram_core.errors import BadInputError, CancelledError, MissingModelError, RamError
from ram_core.io.progress import PROGRESS_MODES, Progress, make_progress

REPO = Path(__file__).resolve().parent.parent
TORCH_PYTHON = REPO / ".venv-tools" / "bin" / "python"
BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"
SYNTHETIC = Path(__file__).resolve().parent / "synthetic"

# Blender's projection of the joints and ours must agree to well under a pixel.
MAX_CAMERA_GAP_PX = 0.5
QUICK = {"frames": 6, "size": (160, 90), "samples": 1}


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise BadInputError(f"--size must look like 640x360, not {text!r}") from None
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise BadInputError(f"--size {text}: width and height must be even and at least 16")
    return width, height


def select_scenes(text: str | None) -> list[str]:
    if text is None:
        return list(DEFAULT_SCENES)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENES]
    if unknown or not names:
        raise BadInputError(
            f"unknown scene {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(SCENES)}"
        )
    return names


def check_environments() -> None:
    missing = [str(p.relative_to(REPO)) for p in (TORCH_PYTHON, BLENDER_PYTHON) if not p.exists()]
    if missing:
        raise MissingModelError(
            f"the render environments are missing ({', '.join(missing)}); "
            "make them with: bash tools/setup_render.sh"
        )


def run_step(command: list[str], on_event: Callable[[dict], None] | None = None) -> None:
    """Runs one step in another environment, passing its JSON events on as they come."""
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            for line in process.stdout:
                if line.startswith("{") and on_event is not None:
                    on_event(json.loads(line))
            process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
        if process.returncode != 0:
            stderr.seek(0)
            tail = stderr.read()[-4000:]
            raise RuntimeError(f"step failed ({process.returncode}): {shlex.join(command)}\n{tail}")


def pose_people(plan: ScenePlan, work: Path) -> dict[str, np.ndarray]:
    """Vertices (F, P, V, 3), joints (F, P, 24, 3), faces and vertex colours, from Anny."""
    scene_json = work / "people.json"
    scene_json.write_text(
        json.dumps({"fps": plan.fps, "frame_count": plan.frame_count, "people": plan.people})
    )
    poses_npz = work / "poses.npz"
    run_step([str(TORCH_PYTHON), str(SYNTHETIC / "walk_poses.py"), str(scene_json), str(poses_npz)])
    with np.load(poses_npz) as data:
        poses = {key: data[key] for key in data.files}
    deepest = float(poses["vertices_world"][..., 1].max())
    if deepest >= SET_PROPS_FROM_Y_M:
        raise ValueError(
            f"scene {plan.spec.name}: a person reaches y = {deepest:.2f} m, among the set's "
            f"props (from y = {SET_PROPS_FROM_Y_M} m), which the ground truth does not model"
        )
    return poses | {"path": str(poses_npz)}


def render_frames(
    plan: ScenePlan, poses_npz: str, work: Path, samples: int, on_frame: Callable[[], None]
) -> Path:
    """Renders every frame to PNG with Cycles; returns their folder."""
    first = plan.cameras[0]
    rotation, translation = first.world_to_camera()
    out_dir = work / "frames"
    job = {
        "poses_npz": poses_npz,
        "camera": dataclasses.asdict(first),
        "frames": list(range(plan.frame_count)),
        "out_dir": str(out_dir),
        "samples": samples,
        "threads": os.cpu_count() or 2,
        "seed": plan.seed,
        "K": first.intrinsics().tolist(),
        "R": rotation.tolist(),
        "t": translation.tolist(),
        "occluders": plan.occluders,
    }
    if plan.spec.camera.moves:
        job["camera_path"] = []
        for camera in plan.cameras:
            rotation, translation = camera.world_to_camera()
            job["camera_path"].append(
                {
                    "location_m": list(camera.location_m),
                    "pitch_deg": camera.pitch_deg,
                    "yaw_deg": camera.yaw_deg,
                    "R": rotation.tolist(),
                    "t": translation.tolist(),
                }
            )
    job_json = work / "render.json"
    job_json.write_text(json.dumps(job))

    def on_event(event: dict) -> None:
        if event.get("event") == "camera_check" and event["max_gap_px"] > MAX_CAMERA_GAP_PX:
            raise RuntimeError(
                f"Blender's camera and the ground truth's disagree by {event['max_gap_px']:.2f} px"
            )
        if event.get("event") == "frame":
            on_frame()

    run_step([str(BLENDER_PYTHON), str(SYNTHETIC / "blender_scene.py"), str(job_json)], on_event)
    return out_dir


def write_video(frame_dir: Path, plan: ScenePlan, out_path: Path) -> None:
    width, height = plan.cameras[0].width_px, plan.cameras[0].height_px
    writer = cv2.VideoWriter(
        str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), plan.fps, (width, height)
    )
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {out_path}")
    try:
        for frame in range(plan.frame_count):
            image = cv2.imread(str(frame_dir / f"frame_{frame:04d}.png"))
            if image is None:
                raise RuntimeError(f"frame {frame} of {plan.spec.name} was not rendered")
            writer.write(image)
    finally:
        writer.release()


def scene_summary(gt: dict[str, np.ndarray]) -> list[dict]:
    """Per person: frames in view, frames mostly hidden while in view, pixel heights."""
    summary = []
    heights = gt["box_full_xyxy"][..., 3] - gt["box_full_xyxy"][..., 1]
    for p, person_id in enumerate(gt["person_ids"]):
        in_frame = gt["in_frame"][:, p]
        hidden = in_frame & (gt["visible_fraction"][:, p] < 0.2)
        seen_heights = heights[in_frame, p]
        summary.append(
            {
                "id": int(person_id),
                "in_frame": int(in_frame.sum()),
                "hidden": int(hidden.sum()),
                "hidden_frames": np.flatnonzero(hidden).tolist(),
                "height_px": [
                    round(float(seen_heights.min()), 1) if seen_heights.size else None,
                    round(float(seen_heights.max()), 1) if seen_heights.size else None,
                ],
            }
        )
    return summary


def publish(folder: Path, target: Path, scratch: Path) -> None:
    """Moves a finished scene folder onto its target, replacing an older one."""
    if target.exists():
        os.rename(target, scratch / "replaced")
    os.rename(folder, target)


def make_scene(
    plan: ScenePlan,
    out_root: Path,
    samples: int,
    generator: str,
    progress: Progress,
    check_only: bool,
) -> list[dict]:
    """Poses, computes the ground truth, renders and writes one scene folder atomically."""
    name = plan.spec.name
    # Beside the target, so the finished folder moves into place with one rename.
    scratch_root = None if check_only else out_root
    with tempfile.TemporaryDirectory(prefix=f".{name}.tmp-", dir=scratch_root) as tmp:
        work = Path(tmp)
        progress.stage(f"{name}: posing", total=1)
        poses = pose_people(plan, work)
        progress.advance()
        progress.stage(f"{name}: ground truth", total=plan.frame_count)
        gt, labels = scene_ground_truth(
            poses["vertices_world"],
            poses["joints_world"],
            poses["faces"],
            plan.cameras,
            plan.occluder_boxes,
            plan.fps,
            on_frame=lambda _frame: progress.advance(),
        )
        summary = scene_summary(gt)
        if check_only:
            return summary
        progress.stage(f"{name}: render", total=plan.frame_count)
        frame_dir = render_frames(plan, poses["path"], work, samples, progress.advance)
        scene_dir = work / name
        scene_dir.mkdir()
        write_video(frame_dir, plan, scene_dir / "video.mp4")
        np.savez_compressed(scene_dir / "gt.npz", **gt)
        np.savez_compressed(scene_dir / "masks.npz", labels=labels)
        first = plan.cameras[0]
        meta = {
            "name": name,
            "seed": plan.seed,
            "description": plan.spec.description,
            "fps": plan.fps,
            "width": first.width_px,
            "height": first.height_px,
            "frame_count": plan.frame_count,
            "format": "ram-bench-scene",
            "version": 1,
            "generator": generator,
        }
        (scene_dir / "scene.json").write_text(json.dumps(meta, indent=2) + "\n")
        publish(scene_dir, out_root / name, work)
    return summary


def clip_timing(
    spec: SceneSpec, frames: int | None, fps: int | None, quick: bool
) -> tuple[int, int]:
    """Frame count and rate of one scene's clip: its own unless overridden, or quick's."""
    if quick:
        # The few frames span the whole scene, so its events still happen in them.
        duration_s = spec.frame_count / spec.fps
        return QUICK["frames"], max(1, round((QUICK["frames"] - 1) / duration_s))
    return frames or spec.frame_count, fps or spec.fps


def generator_command(
    name: str, seed: int, frames: int, fps: int, size: tuple[int, int], samples: int
) -> str:
    """The command that makes this one scene again, exactly."""
    words = ["tools/make_bench_scenes.py", "--scenes", name, "--seed", str(seed)]
    words += ["--frames", str(frames), "--fps", str(fps), "--size", f"{size[0]}x{size[1]}"]
    words += ["--samples", str(samples)]
    return shlex.join(words)


def _raise_cancelled(signum: int, _frame: object) -> None:
    raise CancelledError(f"cancelled by signal {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    # SIGTERM unwinds like Ctrl-C: the step running is killed, the unfinished scene removed.
    signal.signal(signal.SIGTERM, _raise_cancelled)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", help=f"comma-separated, from: {', '.join(SCENES)}")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, help="frames per scene (default: each scene's)")
    parser.add_argument("--fps", type=int, help="frame rate (default: each scene's, 24)")
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT (default 640x360)")
    parser.add_argument("--samples", type=int, default=4, help="Cycles samples (denoised)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny scenes for tests: 6 frames spread over each scene, 160x90, 1 sample "
        "(overrides --frames, --fps, --size and --samples)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="pose and compute the ground truth only; print what each person does; write nothing",
    )
    parser.add_argument(
        "--skip-existing", action="store_true", help="leave scenes whose folder exists alone"
    )
    parser.add_argument(
        "--contact-sheet", type=Path, help="then draw one annotated frame per scene into this PNG"
    )
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="bar")
    args = parser.parse_args(argv)
    progress = make_progress(args.progress)
    try:
        names = select_scenes(args.scenes)
        size = QUICK["size"] if args.quick else parse_size(args.size)
        samples = QUICK["samples"] if args.quick else args.samples
        if samples < 1 or (args.frames is not None and args.frames < 1):
            raise BadInputError("--samples and --frames must be at least 1")
        if args.fps is not None and args.fps < 1:
            raise BadInputError("--fps must be at least 1")
        if args.out.exists() and not args.out.is_dir():
            raise BadInputError(f"--out {args.out} is a file, not a folder")
        check_environments()
        if not args.check:
            args.out.mkdir(parents=True, exist_ok=True)
        for name in names:
            if args.skip_existing and (args.out / name / "scene.json").exists():
                progress.info(f"{name}: already in {args.out}, left as it is")
                continue
            frames, fps = clip_timing(SCENES[name], args.frames, args.fps, args.quick)
            plan = plan_scene(SCENES[name], args.seed, frames, fps, size)
            command = generator_command(name, args.seed, frames, fps, size, samples)
            started = time.monotonic()
            summary = make_scene(plan, args.out, samples, command, progress, args.check)
            seconds = time.monotonic() - started
            report = {"scene": name, "seconds": round(seconds, 1), "people": summary}
            if args.check:
                print(json.dumps(report), flush=True)
            else:
                progress.info(json.dumps(report))
        if args.contact_sheet and not args.check:
            args.contact_sheet.parent.mkdir(parents=True, exist_ok=True)
            sheet = contact_sheet([args.out / name for name in names])
            if not cv2.imwrite(str(args.contact_sheet), sheet):
                raise BadInputError(f"cannot write {args.contact_sheet}")
        progress.done(str(args.out))
        return 0
    except KeyboardInterrupt:
        error: RamError = CancelledError("cancelled")
    except RamError as caught:
        error = caught
    progress.error(str(error), error.exit_code)
    return error.exit_code


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
