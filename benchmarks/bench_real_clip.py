"""The lite pipeline on real footage nobody here made: OpenCV's sample street clip.

The clip is ``vtest.avi`` (768 x 576, 10 frames/s, 795 frames; about eight walkers 40-100 px
tall on a campus path, filmed from a first floor), from OpenCV's sample data as Debian ships
it in the ``opencv-doc`` package. It is fetched once with ``apt-get download opencv-doc``
(no root needed) and kept in ``benchmarks/data/`` (not committed).

Runs, each in a fresh process (so peak memory is that run's own):
  1. the first 100 frames and the first 400 frames -> frames per second per stage, and peak
     memory against length (people come and go all the time in this clip);
  2. the first 100 frames with PHALP's 720p minimum box (50 x 100 px scaled to the frame
     height), the detector's filter before -> how many walkers it threw away;
  3. 100 and 400 frames again with every crop of a frame in one BlazePose call (the
     segmenter before ``max_batch``) -> what bounding the call's batch does to the peak;
  4. the first 100 frames a few times, taking turns with the code of an earlier commit
     (``--baseline REV``, checked out in a temporary git worktree) -> frames per second
     now and before, on the same machine in the same run (these machines are noisy, so
     the median of the turns is compared).
Writes benchmarks/results/real_clip.md and real_clip.png (the tracks over frame 60).

    .venv/bin/python benchmarks/bench_real_clip.py

There is no ground truth for this clip: recall by person height is measured on the rendered
scenes (``ram-core eval bench``); here the figures are speed, memory and how many people
get a track.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ram_core.segment.blazepose import DEFAULT_MAX_BATCH

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "benchmarks" / "data"
CLIP = DATA / "vtest.avi"
DEBIAN_PACKAGE = "opencv-doc"
MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
STAGES = (
    "detect", "segment", "segfollow", "reconstruct", "camera_motion", "predict_combine",
    "feet", "preview",
)  # fmt: skip
PHALP_DETECTOR = {
    "min_box_width_px": 50.0,
    "min_box_height_px": 100.0,
    "size_reference_height_px": 720.0,
}


WHOLE_FRAME_BATCH = 64  # more people than any frame of the clip holds
# The code before this stop's changes (the previous stop's last commit).
BASELINE_REVISION = "e03c992"


def fetch_clip() -> Path:
    """``benchmarks/data/vtest.avi``, taken out of Debian's opencv-doc package if absent."""
    if CLIP.is_file():
        return CLIP
    DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=folder, check=True)
        (package,) = Path(folder).glob(f"{DEBIAN_PACKAGE}_*.deb")
        tar = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(package)], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", MEMBER], input=tar, cwd=folder, check=True)
        shutil.move(Path(folder) / MEMBER, CLIP)
    return CLIP


def _worker(video: str, out: str, end: int, sections: str) -> None:
    """Runs one pipeline and prints its timings and this process's peak memory as JSON."""
    from ram_core.config import config_from_dict
    from ram_core.io.result import load_result
    from ram_core.pipeline import run_pipeline

    config = config_from_dict(json.loads(sections))
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF)
    run_pipeline(video, out, backend="lite", end=end, config=config)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = load_result(out)
    rows = len(result.tracks["track_id"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "wall_s": wall,
                "cpu_s": cpu_s,
                "timings": result.manifest["timings_s"],
                "tracks": len(result.track_ids()),
                "person_frames": rows,
                "peak_mb": peak_mb,
            }
        )
    )


def run_in_fresh_process(
    video: Path, out: Path, end: int, sections: dict, code: Path | None = None
) -> dict:
    """One run in a process of its own; ``sections``: config sections, as in a YAML file;
    ``code``: a checkout whose ``ram_core`` runs instead of this one."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", str(video), str(out), str(end),
         json.dumps(sections)],
        capture_output=True, text=True, check=True, cwd=ROOT, env=env,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """The repository at ``revision`` in a temporary git worktree."""
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(tree), revision],
            cwd=ROOT, check=True,
        )  # fmt: skip
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False
            )


def speed_turns(clip: Path, tmp: Path, frames: int, revision: str, turns: int) -> dict:
    """Runs now and at ``revision`` in turns; their runs, by name."""
    runs: dict[str, list[dict]] = {"now": [], revision: []}
    with checkout(revision) as tree:
        for turn in range(turns):
            for name, code in (("now", None), (revision, tree)):
                print(f"running: speed, {name}, turn {turn + 1} of {turns} ...", file=sys.stderr)
                out = tmp / f"speed_{turn}_{name}.ram"
                runs[name].append(run_in_fresh_process(clip, out, frames, {}, code))
                shutil.rmtree(out, ignore_errors=True)
    return runs


def speed_lines(runs: dict[str, list[dict]], frames: int, revision: str) -> list[str]:
    lines = [
        f"## Speed now and at {revision} (first {frames} frames, turns taken in this run)",
        "",
        "Whole pipeline from the backend's start to the written result, preview included. "
        "Median of the turns; the range is the slowest and the fastest turn.",
        "",
        "| code | turns | seconds | frames/s | range (frames/s) | CPU seconds | cores busy |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for name, turns in runs.items():
        totals = [run["timings"]["total"] for run in turns]
        cpu = statistics.median(run["cpu_s"] for run in turns)
        median = statistics.median(totals)
        lines.append(
            f"| {name} | {len(turns)} | {median:.2f} | {fps(frames, median)} | "
            f"{fps(frames, max(totals))}-{fps(frames, min(totals))} | {cpu:.1f} | "
            f"{cpu / statistics.median(run['wall_s'] for run in turns):.2f} |"
        )
    return [*lines, ""]


def fps(frames: int, seconds: float) -> str:
    return f"{frames / seconds:.1f}" if seconds > 0 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=100, help="the short run (long: 4x)")
    parser.add_argument(
        "--baseline",
        default=BASELINE_REVISION,
        help="the commit whose speed is measured beside this code's (default: %(default)s)",
    )
    parser.add_argument("--turns", type=int, default=3, help="speed runs of each code")
    args = parser.parse_args()
    short_n, long_n = args.frames, 4 * args.frames
    if args.worker:
        video, out, end, detector = args.worker
        _worker(video, out, int(end), detector)
        return
    clip = fetch_clip()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"running: {short_n} frames ...", file=sys.stderr)
        short = run_in_fresh_process(clip, tmp / "short.ram", short_n, {})
        shutil.copy(tmp / "short.ram" / "preview.png", RESULTS / "real_clip.png")
        print(f"running: {long_n} frames ...", file=sys.stderr)
        long = run_in_fresh_process(clip, tmp / "long.ram", long_n, {})
        print(f"running: {short_n} frames, PHALP's minimum box ...", file=sys.stderr)
        phalp = run_in_fresh_process(clip, tmp / "phalp.ram", short_n, {"detector": PHALP_DETECTOR})
        # The crops of a frame in one model call, however many people: the baseline.
        whole = {"segmenter": {"max_batch": WHOLE_FRAME_BATCH}}
        print(f"running: {short_n} and {long_n} frames, one call per frame ...", file=sys.stderr)
        short_whole = run_in_fresh_process(clip, tmp / "short_whole.ram", short_n, whole)
        long_whole = run_in_fresh_process(clip, tmp / "long_whole.ram", long_n, whole)
        speed = speed_turns(clip, tmp, short_n, args.baseline, args.turns)

    stages = short["timings"]["stages"]
    total = short["timings"]["total"]
    lines = [
        "# The lite pipeline on a real clip",
        "",
        f"Machine: {platform.machine()}, {platform.python_version()} on "
        f"{platform.platform()}, 2 cores. Clip: OpenCV's `vtest.avi` (Debian "
        f"`{DEBIAN_PACKAGE}`), 768 x 576 at 10 frames/s, about eight walkers 40-100 px "
        "tall. Reproduce: `.venv/bin/python benchmarks/bench_real_clip.py`.",
        "",
        *speed_lines(speed, short_n, args.baseline),
        f"## Per stage, first {short_n} frames (detector every 5 frames)",
        "",
        "Each stage's wall time summed over the run. The detector runs on a thread of its "
        "own and the reconstruction on another, beside the segmenter, so the shares add up "
        "to more than the whole.",
        "",
        "| stage | seconds | frames/s | share of the run |",
        "|---|---:|---:|---:|",
    ]
    for stage in STAGES:
        if stage in stages:
            seconds = stages[stage]
            lines.append(
                f"| {stage} | {seconds:.2f} | {fps(short_n, seconds)} | "
                f"{100 * seconds / total:.0f}% |"
            )
    lines += [
        f"| **whole pipeline** | {total:.2f} | {fps(short_n, total)} | |",
        "",
        "## Memory against length (fresh process each)",
        "",
        "| frames | tracks | person-frames | seconds | frames/s | peak RSS (MB) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for frames, run in ((short_n, short), (long_n, long)):
        lines.append(
            f"| {frames} | {run['tracks']} | {run['person_frames']} | "
            f"{run['timings']['total']:.1f} | {fps(frames, run['timings']['total'])} | "
            f"{run['peak_mb']:.0f} |"
        )
    lines += [
        f"| **{long_n} / {short_n}** | | | | | **{long['peak_mb'] / short['peak_mb']:.2f}x** |",
        "",
        f"## Crops per BlazePose call (same run): at most {DEFAULT_MAX_BATCH}, against a "
        "frame's people in one call",
        "",
        "The interpreter's memory grows with its batch, so with one call per frame the "
        "largest crowd of the clip sets the peak.",
        "",
        "| crops per call | frames | frames/s | peak RSS (MB) | peak against the short run |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, pair in (
        (f"at most {DEFAULT_MAX_BATCH} (now)", (short, long)),
        ("a frame's people, one call (before)", (short_whole, long_whole)),
    ):
        for frames, run in zip((short_n, long_n), pair, strict=True):
            lines.append(
                f"| {label} | {frames} | {fps(frames, run['timings']['total'])} | "
                f"{run['peak_mb']:.0f} | {run['peak_mb'] / pair[0]['peak_mb']:.2f}x |"
            )
    lines += [
        "",
        f"## The detector's minimum box (first {short_n} frames, same run)",
        "",
        "| minimum box | tracks | person-frames | frames/s |",
        "|---|---:|---:|---:|",
        f"| PHALP's 50 x 100 px at 720p (40 x 80 px here), before | {phalp['tracks']} | "
        f"{phalp['person_frames']} | {fps(short_n, phalp['timings']['total'])} |",
        f"| 8 x 32 px in any frame, now | {short['tracks']} | {short['person_frames']} | "
        f"{fps(100, total)} |",
        "",
        "`real_clip.png` shows the tracks (mask, ID, skeleton) over the first run's frames.",
        "",
    ]
    table = "\n".join(lines)
    (RESULTS / "real_clip.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
