"""Import speed in Blender: 10 tracks x 3000 frames, bulk keys against keyframe_insert.

    .venv-blender/bin/python benchmarks/bench_blender_import.py [--tracks 10] [--frames 3000]

Times the whole ``import_result`` (bulk ``keyframe_points.add`` + ``foreach_set``), then the
same keys written with ``keyframe_insert`` per bone per frame for a subset of frames of one
track, scaled up to the full size; checks both give the same values. Writes
``benchmarks/results/blender_import.md``.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="ram-bench-user-"))

import bpy
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "blender")]

from conftest import write_result  # noqa: E402


def enable_extension(scratch: Path):
    import importlib

    import addon_utils

    from build_addon import assemble_extension

    assemble_extension(scratch / "repo" / "ram_motion", include_wheels=False)
    bpy.context.preferences.extensions.repos.new(
        name="bench", module="bench", custom_directory=str(scratch / "repo"), source="USER"
    )
    addon_utils.enable("bl_ext.bench.ram_motion", default_set=True)
    return importlib.import_module("bl_ext.bench.ram_motion.importer")


def keyframe_insert_seconds(obj, frames: np.ndarray, subset: int) -> tuple[float, float]:
    """Seconds to key ``subset`` frames one by one on a fresh action, and the worst
    difference from the bulk-written curves at those frames."""
    bulk = obj.animation_data.action
    bones = list(obj.pose.bones)
    reference = {}
    for frame in frames[:subset]:
        bpy.context.scene.frame_set(int(frame))
        reference[int(frame)] = [tuple(b.rotation_quaternion) for b in bones]
    obj.animation_data.action = None
    started = time.perf_counter()
    for frame in frames[:subset]:
        for bone, q in zip(bones, reference[int(frame)], strict=True):
            bone.rotation_quaternion = q
            bone.keyframe_insert("rotation_quaternion", frame=int(frame), group=bone.name)
        bones[0].keyframe_insert("location", frame=int(frame), group=bones[0].name)
    seconds = time.perf_counter() - started
    worst = 0.0
    for frame in frames[:subset]:
        bpy.context.scene.frame_set(int(frame))
        got = np.array([tuple(b.rotation_quaternion) for b in bones])
        worst = max(worst, float(np.abs(got - np.array(reference[int(frame)])).max()))
    obj.animation_data.action = bulk
    return seconds, worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=10)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--insert-frames", type=int, default=150)
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/blender_import.md"))
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ram-bench-"))
    importer = enable_extension(scratch)
    bpy.ops.wm.read_homefile(use_empty=True)
    result = write_result(
        scratch / "bench.ram", {t + 1: range(args.frames) for t in range(args.tracks)}
    )
    started = time.perf_counter()
    report = importer.import_result(result)
    bulk_s = time.perf_counter() - started
    obj = report.armatures[0]
    frames = np.arange(args.frames) + 1
    insert_s, worst = keyframe_insert_seconds(obj, frames, args.insert_frames)
    scale = args.tracks * args.frames / args.insert_frames
    insert_full_s = insert_s * scale
    keys = args.tracks * args.frames * (24 * 4 + 3)
    lines = [
        "# Blender import benchmark",
        "",
        f"Blender {bpy.app.version_string}, Python {platform.python_version()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s).",
        f"{args.tracks} tracks x {args.frames} frames = {keys:,} keys "
        "(24 bone quaternions + root location per frame).",
        "",
        "| method | seconds |",
        "|---|---|",
        f"| `import_result` (whole import, bulk `foreach_set`) | {bulk_s:.2f} |",
        f"| `keyframe_insert`, {args.insert_frames} frames of one track, measured | "
        f"{insert_s:.2f} |",
        f"| `keyframe_insert`, scaled to {args.tracks} x {args.frames} | {insert_full_s:.1f} |",
        "",
        "Ratio (keyframe_insert keys only / whole bulk import): "
        f"**{insert_full_s / bulk_s:.0f}x**.",
        f"Same values: worst quaternion difference {worst:.1e} over the measured frames.",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
