"""Combiner re-run speed: ``ram-core combine`` on an edited result against the whole pipeline.

The artist's edits (occlusion overrides, ID fixes) only need the Predictor and Combiner run
again, from the arrays the result keeps (``recon_*``); this measures how much cheaper that is
than running the pipeline again, and how it grows with the length of a track:

  1. the lite pipeline on the clip (no preview), timed;
  2. an occlusion edit on its longest track, then ``recombine_result`` (what ``ram-core
     combine`` and the add-on's "Re-run Combiner" call), timed in-process (median of
     repeats) and as the ``ram-core combine`` command in a new process;
  3. results with one track of 100 ... 10,000 frames (the clip's longest track played
     forth and back, so the motion stays continuous), each re-combined with an edit over
     10% of it;
  4. ``fuse_tracks`` (all tracks and joints side by side, one recursion over frames)
     against the per-track, per-frame loop it replaced (kept below as the baseline), on
     tables of 1 x 3,000, 10 x 300 and 10 x 3,000 frames made from the clip's tracks, in
     the same run; the two results are compared too.

    .venv/bin/python benchmarks/bench_combiner.py [--video demo/three_people.mp4] [--quick]

Writes benchmarks/results/combiner.md and combiner.png. Absolute times belong to the
machine named in the table; the ratio measured in the same run is the headline.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# The per-track loop ``fuse_tracks`` replaced, kept with the tests as the baseline.
sys.path.insert(0, str(ROOT / "tests"))
from fusion_reference import fuse_tracks as reference_fuse_tracks  # noqa: E402

FULL_LENGTHS = (100, 300, 1000, 3000, 10000)
QUICK_LENGTHS = (100, 300, 1000)
# (tracks, frames per track) of the batched-against-baseline comparison.
FULL_BATCHES = ((1, 3000), (10, 300), (10, 3000))
QUICK_BATCHES = ((1, 300), (10, 300))


def timed_pipeline(video: Path, out: Path, end: int | None) -> tuple[float, int]:
    """Seconds of one lite pipeline run (no preview) and the frames it covered. The demo
    clip runs with its own settings (demo/demo.yaml: the camera's focal length)."""
    from ram_core.config import RunConfig, load_config
    from ram_core.io.result import load_result
    from ram_core.pipeline import run_pipeline

    demo = video.resolve() == (ROOT / "demo" / "three_people.mp4").resolve()
    config = load_config(ROOT / "demo" / "demo.yaml") if demo else RunConfig()
    config = dataclasses.replace(
        config, pipeline=dataclasses.replace(config.pipeline, preview=False)
    )
    started = time.perf_counter()
    run_pipeline(video, out, backend="lite", end=end, config=config)
    seconds = time.perf_counter() - started
    return seconds, load_result(out).manifest["timings_s"]["frames"]


def add_occlusion_edit(result: Path, fraction: float = 0.1) -> int:
    """Mark the middle ``fraction`` of the longest track occluded; returns its length."""
    from ram_core.io.edits import append_edit
    from ram_core.io.result import load_result

    tracks = load_result(result).tracks
    ids, counts = np.unique(tracks["track_id"], return_counts=True)
    track_id = int(ids[np.argmax(counts)])
    frames = tracks["frame"][tracks["track_id"] == track_id]
    span = max(1, int(fraction * frames.size))
    start = int(frames[(frames.size - span) // 2])
    append_edit(
        result,
        {"op": "occlusion", "track": track_id, "start": start, "end": start + span - 1,
         "occluded": True},
    )  # fmt: skip
    return int(frames.size)


def time_recombine(result: Path, repeats: int) -> float:
    """Median seconds of ``recombine_result`` (in-process, as Blender runs it)."""
    from ram_core.motion.recombine import recombine_result

    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        recombine_result(result)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def time_combine_command(result: Path) -> float:
    """Seconds of ``ram-core combine`` as a new process (interpreter start included)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ram_core", "combine", str(result), "--progress", "none"],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return time.perf_counter() - started


def long_track_result(source: Path, target: Path, length: int) -> Path:
    """A result with one track of ``length`` frames: the source's longest track played
    forth and back (frames renumbered), so its motion has no jumps."""
    from ram_core.io.result import ResultWriter, load_result

    result = load_result(source, apply_edits=False)
    ids, counts = np.unique(result.tracks["track_id"], return_counts=True)
    rows = np.flatnonzero(result.tracks["track_id"] == ids[np.argmax(counts)])
    forth_and_back = np.concatenate([rows, rows[::-1]])
    picked = np.resize(forth_and_back, length)
    table = {name: array[picked] for name, array in result.tracks.items()}
    table["track_id"][:] = 1
    table["frame"] = np.arange(length, dtype=np.int32)
    manifest = dict(result.manifest)
    manifest["source_video"] = {**manifest["source_video"], "frame_count": length,
                                "start": 0, "end": length}  # fmt: skip
    with ResultWriter(target) as writer:
        writer.finish(manifest, table)
    return target


def many_tracks_table(source: Path, tracks: int, length: int) -> dict[str, np.ndarray]:
    """A track table of ``tracks`` tracks of ``length`` frames: the source's tracks in turn,
    each played forth and back from its own offset (continuous motion), and each with an
    occluded stretch over 10% of it somewhere, as an occlusion edit would mark."""
    from ram_core.io.result import load_result

    table = load_result(source, apply_edits=False).tracks
    ids = np.unique(table["track_id"])
    picked = []
    for i in range(tracks):
        rows = np.flatnonzero(table["track_id"] == ids[i % ids.size])
        forth_and_back = np.concatenate([rows, rows[::-1]])
        picked.append(np.resize(np.roll(forth_and_back, 7 * i), length))
    out = {name: array[np.concatenate(picked)] for name, array in table.items()}
    out["track_id"] = np.repeat(np.arange(1, tracks + 1, dtype=np.int32), length)
    out["frame"] = np.tile(np.arange(length, dtype=np.int32), tracks)
    span = max(1, length // 10)
    for i in range(tracks):
        start = i * length + (i * 131) % max(1, length - span)
        out["occluded"][start : start + span] = True
    return out


def time_batched_against_baseline(
    source: Path, sizes: tuple[tuple[int, int], ...], repeats: int
) -> list[tuple[int, int, float, float, float, float]]:
    """For each (tracks, frames): seconds of the baseline (one run; a second where it is
    quick) and of ``fuse_tracks`` (median of ``repeats``), and the largest difference
    between their outputs: rotation (rad, as rotations) and translation (m)."""
    from ram_core.body.rotations import axis_angle_distance
    from ram_core.motion.combiner import CombinerConfig
    from ram_core.motion.fusion import fuse_tracks
    from ram_core.motion.predictor import PredictorConfig

    predictor, combiner = PredictorConfig(), CombinerConfig()
    rows = []
    for tracks, length in sizes:
        print(f"running: {tracks} x {length} frames, baseline and batched ...", file=sys.stderr)
        table = many_tracks_table(source, tracks, length)
        baseline_runs = []
        while not baseline_runs or (len(baseline_runs) < 2 and sum(baseline_runs) < 2.0):
            started = time.perf_counter()
            expected = reference_fuse_tracks(table, predictor, combiner)
            baseline_runs.append(time.perf_counter() - started)
        batched_runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            got = fuse_tracks(table, predictor, combiner)
            batched_runs.append(time.perf_counter() - started)
        rotation = max(
            float(
                axis_angle_distance(
                    got[name].astype(np.float64), expected[name].astype(np.float64)
                ).max()
            )
            for prefix in ("", "pred_", "recon_")
            for name in (f"{prefix}global_orient", f"{prefix}body_pose")
        )
        translation = max(
            float(np.abs(got[name].astype(np.float64) - expected[name]).max())
            for name in ("transl", "pred_transl", "recon_transl")
        )
        rows.append(
            (
                tracks,
                length,
                min(baseline_runs),
                statistics.median(batched_runs),
                rotation,
                translation,
            )
        )
    return rows


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(ROOT / "demo" / "three_people.mp4"))
    parser.add_argument(
        "--quick", action="store_true", help="24 frames of the clip, tracks up to 1,000 frames"
    )
    parser.add_argument("--out", default=str(RESULTS / "combiner.md"))
    args = parser.parse_args()

    from ram_core.eval.ablations import machine_summary

    video = Path(args.video)
    lengths = QUICK_LENGTHS if args.quick else FULL_LENGTHS
    repeats = 3 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="ram-bench-combiner-") as work_name:
        work = Path(work_name)
        print("running: the lite pipeline on the clip ...", file=sys.stderr)
        pipeline_s, frames = timed_pipeline(video, work / "clip.ram", 24 if args.quick else None)
        track_frames = add_occlusion_edit(work / "clip.ram")
        recombine_s = time_recombine(work / "clip.ram", repeats)
        command_s = time_combine_command(work / "clip.ram")
        by_length = []
        for length in lengths:
            print(f"running: re-combining a {length}-frame track ...", file=sys.stderr)
            result = long_track_result(work / "clip.ram", work / f"len{length}.ram", length)
            add_occlusion_edit(result)
            by_length.append((length, time_recombine(result, repeats)))
        batched = time_batched_against_baseline(
            work / "clip.ram", QUICK_BATCHES if args.quick else FULL_BATCHES, repeats
        )

    clip = video.relative_to(ROOT) if video.is_relative_to(ROOT) else video
    lines = [
        "# Combiner re-run benchmark",
        "",
        f"Machine: {machine_summary()}. Clip: `{clip}`, {frames} frames"
        f"{' (quick mode: first 24)' if args.quick else ''}. Reproduce: "
        f"`.venv/bin/python benchmarks/bench_combiner.py{' --quick' if args.quick else ''}`.",
        "",
        "## Re-run against a whole pipeline run (same clip, same run)",
        "",
        "| what | seconds |",
        "|---|---:|",
        f"| lite pipeline, no preview ({frames} frames) | {pipeline_s:.2f} |",
        f"| `recombine_result` after an occlusion edit, in-process (median of {repeats}) | "
        f"{recombine_s:.3f} |",
        f"| `ram-core combine` as a new process (Python start-up included) | {command_s:.2f} |",
        f"| **pipeline / re-run (in-process)** | **{pipeline_s / recombine_s:.0f}x** |",
        "",
        f"The edited result holds every track of the clip (longest: {track_frames} frames); "
        "the re-run reads the table, applies the edit log, runs the Predictor and Combiner "
        "on every track and writes `combined.npz`.",
        "",
        "## Re-run against track length",
        "",
        "| frames in the track | seconds (median) | ms per 100 frames |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {n:,} | {s:.3f} | {100_000 * s / n:.2f} |" for n, s in by_length]
    lines += [
        "",
        "One track, the clip's longest played forth and back, an occlusion edit over 10% of "
        f"it. The pipeline at this run's speed ({frames / pipeline_s:.1f} frames/s) would "
        f"take {by_length[-1][0] * pipeline_s / frames:.0f} s for the "
        f"{by_length[-1][0]:,}-frame video.",
        "",
    ]
    lines += [
        "## Batched against the per-track loop (same run)",
        "",
        "| tracks x frames | per-track loop, s | `fuse_tracks`, s (median) | speed-up "
        "| largest difference: rotation (rad), translation (m) |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {n} x {length:,} | {old:.3f} | {new:.3f} | {old / new:.0f}x | {rot:.1e}, {tr:.1e} |"
        for n, length, old, new, rot, tr in batched
    ]
    lines += [
        "",
        "The clip's tracks played forth and back from different offsets, each with an "
        "occluded stretch over 10% of it. The per-track loop is the implementation "
        "`fuse_tracks` replaced (kept in this script as the baseline: each track on its own, "
        "rotation matrices, a Python loop over frames); `fuse_tracks` runs the frames' "
        "recursion once for all tracks and joints side by side, on quaternions. Its "
        f"median is of {repeats} runs, the loop's time the faster of up to two. The "
        "differences are between the two outputs (float32 columns).",
        "",
    ]
    table = "\n".join(lines)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print(table)
    _plot(out.with_suffix(".png"), pipeline_s, recombine_s, frames, by_length)
    return 0


def _plot(path: Path, pipeline_s: float, recombine_s: float, frames: int, by_length: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(["pipeline", "Combiner re-run"], [pipeline_s, recombine_s], color=["#888", "#3b7dd8"])
    left.set_yscale("log")
    left.set_ylabel("seconds (log)")
    left.set_title(f"Same clip, {frames} frames ({pipeline_s / recombine_s:.0f}x)")
    lengths = np.array([n for n, _ in by_length], dtype=float)
    seconds = np.array([s for _, s in by_length])
    right.loglog(lengths, seconds, "o-", color="#3b7dd8", label="Combiner re-run (measured)")
    right.loglog(lengths, lengths * pipeline_s / frames, "--", color="#888",
                 label="pipeline at this run's speed")  # fmt: skip
    right.set_xlabel("frames in the track")
    right.set_ylabel("seconds")
    right.set_title("Re-run time against track length")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
