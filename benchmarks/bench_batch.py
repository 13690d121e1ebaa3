"""Many clips (`ram-core batch`): clips per minute with one worker, with a process pool of
two, and on a local Ray, and what Ray costs per clip.

The clips are cuts of the demo clip (``--frames`` each, at different starts), run on the
lite backend without previews, each configuration into a fresh output folder through
``ram_core.batch.run_batch``, the engine's start-up included (process spawning, Ray's
start). Per clip, the worker's own time (``run``: loading the models and running the
pipeline) is what a single `ram-core run` spends; the rest of the wall time is the engine's.

Overhead per clip = (wall time x clips at once - the workers' time) / clips: the time the
workers were not running a clip (start-up, scheduling, results coming back, the tail where
one worker waits for the other). Each configuration runs ``--repeats`` times and the
fastest counts (other work on the machine only ever slows a run down).

The engines' own cost per clip is measured apart, on clips that fail at once (a video
that does not exist: ``run_clip`` returns in microseconds), one at a time: the time
between the first and the last clip's end over N - 1, so start-up (spawning workers,
starting Ray) drops out; it is given on its own (the wait for the first clip's end).
Writes benchmarks/results/batch.md.

    .venv/bin/python benchmarks/bench_batch.py [--clips 8] [--frames 24] [--repeats 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ram_core.io.progress import NoProgress

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEMO_CLIP = ROOT / "demo" / "three_people.mp4"


@dataclass(frozen=True)
class Row:
    label: str
    at_once: int
    wall_s: float
    worker_s: float
    clips: int

    @property
    def clips_per_minute(self) -> float:
        return 60.0 * self.clips / self.wall_s

    @property
    def overhead_per_clip_s(self) -> float:
        return (self.wall_s * self.at_once - self.worker_s) / self.clips


def make_clips(folder: Path, count: int, frames: int) -> list[Path]:
    """``count`` cuts of the demo clip, ``frames`` long, starting at spread-out frames."""
    import cv2

    from ram_core.video.reader import iter_frames, probe_video

    info = probe_video(DEMO_CLIP)
    last_start = info.frame_count - frames
    if last_start < 0:
        raise SystemExit(f"--frames {frames}: the demo clip has only {info.frame_count}")
    clips = []
    for i in range(count):
        start = (i * 11) % (last_start + 1)
        path = folder / f"clip_{i:02d}.mp4"
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        writer = cv2.VideoWriter(str(path), fourcc, info.fps, (info.width, info.height))
        for frame in iter_frames(DEMO_CLIP, start, start + frames):
            writer.write(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
        writer.release()
        clips.append(path)
    return clips


def settings():
    from ram_core import batch
    from ram_core.config import PipelineConfig, RunConfig

    return batch.RunSettings("lite", "cpu", RunConfig(pipeline=PipelineConfig(preview=False)))


def timed_batch(
    label: str, at_once: int, engine, clips: list[Path], scratch: Path, repeats: int = 1
) -> Row:
    """The fastest of ``repeats`` batches of ``clips``, each into a fresh folder."""
    from ram_core import batch

    best = None
    for attempt in range(repeats):
        out = Path(tempfile.mkdtemp(dir=scratch, prefix="out-"))
        jobs = batch.plan_batch(clips, out, settings())
        print(f"{label} ({attempt + 1}/{repeats}) ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        summary = batch.run_batch(jobs, settings(), engine, out)
        wall_s = time.perf_counter() - started
        outcomes = [summary.outcome(job) for job in jobs]
        failed = [o.reason for o in outcomes if o.status != batch.STATUS_OK]
        if failed:
            raise SystemExit(f"{label}: {len(failed)} clips did not run: {failed[0]}")
        row = Row(label, at_once, wall_s, sum(o.run_s for o in outcomes), len(jobs))
        if best is None or row.wall_s < best.wall_s:
            best = row
    return best


class ClipClock(NoProgress):
    """A progress reporter that notes when each clip ends (and says nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[float] = []

    def advance(self, n: int = 1) -> None:
        self.ends.append(time.perf_counter())

    def error(self, message: str, exit_code: int) -> None:
        pass  # the failed clips are counted from the outcomes


def engine_cost_s(engine, count: int, scratch: Path) -> tuple[float, float]:
    """(seconds per clip, seconds to the first clip's end) of ``engine`` alone, on
    ``count`` clips that fail at once: per clip is the time between the first and the last
    clip's end over ``count - 1``, so the start-up drops out."""
    from ram_core import batch

    out = Path(tempfile.mkdtemp(dir=scratch, prefix="empty-"))
    missing = [scratch / f"missing_{i:03d}.mp4" for i in range(count)]
    jobs = batch.plan_batch(missing, out, settings())
    clock = ClipClock()
    started = time.perf_counter()
    summary = batch.run_batch(jobs, settings(), engine, out, clock)
    assert all(summary.outcome(job).status == batch.STATUS_FAILED for job in jobs)
    return (clock.ends[-1] - clock.ends[0]) / (count - 1), clock.ends[0] - started


def format_table(
    rows: list[Row], frames: int, repeats: int, costs: list[str], load: tuple[float, float]
) -> str:
    lines = [
        "# Many clips: one worker, a process pool and local Ray (`ram-core batch`)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python "
        f"{platform.python_version()}. {rows[0].clips} clips of {frames} frames (cuts of "
        "the demo clip), lite backend, no previews; wall time includes the engine's start; "
        f"the fastest of {repeats} runs. Load average (1 min) before and after: "
        f"{load[0]:.1f}, {load[1]:.1f} (above 0 when other work shared the CPUs).",
        "",
        "| engine | clips at once | wall s | clips / min | worker s per clip | "
        "overhead s per clip |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.label} | {row.at_once} | {row.wall_s:.1f} | {row.clips_per_minute:.1f} | "
            f"{row.worker_s / row.clips:.2f} | {row.overhead_per_clip_s:.2f} |"
        )
    lines += [
        "",
        "The engines' own cost, on clips that fail at once (one at a time):",
        "",
        "| engine | per clip ms | start-up s (to the first clip's end) |",
        "|---|---:|---:|",
        *costs,
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8, help="how many clips (default 8)")
    parser.add_argument("--frames", type=int, default=24, help="frames per clip (default 24)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per engine (default 2)")
    parser.add_argument(
        "--empty-clips", type=int, default=40, help="clips for the engines' cost (default 40)"
    )
    args = parser.parse_args()

    from ram_core import batch

    engines = [
        ("pool, 1 worker (the default)", 1, batch.PoolEngine(1)),
        ("pool, 2 workers", 2, batch.PoolEngine(2)),
    ]
    has_ray = importlib.util.find_spec("ray") is not None
    if has_ray:
        engines += [
            ("Ray local, 2 CPUs", 2, batch.RayEngine("local", 2)),
            ("Ray local, 1 CPU", 1, batch.RayEngine("local", 1)),
        ]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as scratch_name:
        scratch = Path(scratch_name)
        clips_dir = scratch / "clips"
        clips_dir.mkdir()
        clips = make_clips(clips_dir, args.clips, args.frames)
        # The first run reads the models from disk; every configuration then finds them cached.
        timed_batch("warm-up", 1, batch.PoolEngine(1), clips[:1], scratch)
        rows = [
            timed_batch(label, at_once, engine, clips, scratch, args.repeats)
            for label, at_once, engine in engines
        ]
        costs = []
        for label, _, engine in (engines[0], engines[-1]) if has_ray else engines[:1]:
            print(f"engine cost: {label} ...", file=sys.stderr, flush=True)
            per_clip_s, start_s = engine_cost_s(engine, args.empty_clips, scratch)
            costs.append(f"| {label} | {1000 * per_clip_s:.1f} | {start_s:.2f} |")
        if not has_ray:
            costs.append("| Ray: not installed here (pip install -e '.[cluster]') | | |")
    load = (load_before, os.getloadavg()[0])
    table = format_table(rows, args.frames, args.repeats, costs, load)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "batch.md").write_text(table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
