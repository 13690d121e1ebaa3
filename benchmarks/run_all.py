"""Runs every benchmark of the project and writes BENCHMARKS.md at the repository root.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only NAME,...]

Each benchmark runs in its own process, one after the other (they time themselves, so
nothing else of ours runs beside them): the lite pipeline (stage speed, detection interval,
memory against length), the Blender import (in ``.venv-blender``), the Combiner re-run,
SegFollow on SAM2 (when ``bench_sam2_segfollow.py`` is there) and the ablation table
(``ram-core eval bench`` on the default scenes). Each writes its table to
``benchmarks/results/``; this script gathers them with the machine they ran on, the
headline ratios (each measured within one run) and the plots. A benchmark that fails is
reported as failed in BENCHMARKS.md, with the end of its output, and the others still run.

``--quick`` makes every benchmark small (a 24-frame clip, short tracks, the first 24 frames
of each scene): minutes instead of the better part of an hour, for checking the machinery.
Its tables, plots and report go to ``benchmarks/results/quick/`` (report:
``benchmarks/results/quick/BENCHMARKS.md``); the full results and BENCHMARKS.md are left as
they were, even for the scripts that always write into ``benchmarks/results/`` (their
files there are put back after each quick run).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REPORT = ROOT / "BENCHMARKS.md"
QUICK_RESULTS = RESULTS / "quick"
PYTHON = ROOT / ".venv" / "bin" / "python"
BLENDER_PYTHON = ROOT / ".venv-blender" / "bin" / "python"
BLENDER52_PYTHON = ROOT / ".venv-blender52" / "bin" / "python"
DEMO_CLIP = ROOT / "demo" / "three_people.mp4"
QUICK_CLIP_FRAMES = 24
QUICK_SCENE_FRAMES = 24
# Rendered apart from the tuning scenes and never tuned on (seed 23, the set before, has
# since been tuned on):
# .venv/bin/python tools/make_bench_scenes.py --seed 57 --out benchmarks/scenes-heldout \
#     --scenes crossing,hidden_person,hidden_pillar,lookalike,long_occlusion
HELDOUT_SCENES = ROOT / "benchmarks" / "scenes-heldout"
OUTPUT_TAIL_LINES = 25


@dataclass
class Benchmark:
    """One benchmark script: how to run it (full and quick) and what it writes."""

    name: str
    title: str
    command: list[str]
    quick_args: list[str]
    tables: list[Path]
    plots: list[Path] = field(default_factory=list)
    required_file: Path | None = None
    """The benchmark is skipped (and says so) when this file does not exist."""
    data: list[Path] = field(default_factory=list)
    """Other files it writes into the results folder (kept apart in quick mode too)."""

    @property
    def outputs(self) -> list[Path]:
        return [*self.tables, *self.plots, *self.data]


@dataclass
class Outcome:
    benchmark: Benchmark
    returncode: int | None  # None: skipped
    seconds: float
    output_tail: str
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def benchmarks(quick_clip: Path) -> list[Benchmark]:
    ablations_json = RESULTS / "ablations.json"
    return [
        Benchmark(
            "lite_pipeline",
            "Lite pipeline: speed per stage, detection interval, memory against video length",
            [str(PYTHON), "benchmarks/bench_lite_pipeline.py"],
            ["--video", str(quick_clip)],
            [RESULTS / "lite_pipeline.md"],
            [RESULTS / "lite_pipeline.png"],
        ),
        Benchmark(
            "blender_import",
            "Blender import: bulk keys against keyframe_insert",
            [str(BLENDER_PYTHON), "benchmarks/bench_blender_import.py"],
            ["--tracks", "2", "--frames", "300", "--insert-frames", "30"],
            [RESULTS / "blender_import.md"],
            required_file=BLENDER_PYTHON,
        ),
        Benchmark(
            "combiner",
            "Combiner re-run against the whole pipeline and against track length",
            [str(PYTHON), "benchmarks/bench_combiner.py"],
            ["--quick"],
            [RESULTS / "combiner.md"],
            [RESULTS / "combiner.png"],
        ),
        Benchmark(
            "artist_loop",
            "The artist's loop in Blender 5.2: Combiner re-run, ID swap, one overlay frame",
            [str(BLENDER52_PYTHON), "benchmarks/bench_artist_loop.py"],
            ["--tracks", "2", "--frames", "300", "--repeats", "2"],
            [RESULTS / "artist_loop.md"],
            required_file=BLENDER52_PYTHON,
        ),
        Benchmark(
            "retarget",
            "Retarget time in Blender 5.2: one track onto four rigs",
            [str(BLENDER52_PYTHON), "benchmarks/bench_retarget.py"],
            ["--frames", "60"],
            [RESULTS / "retarget.md"],
            required_file=BLENDER52_PYTHON,
        ),
        Benchmark(
            "masks",
            "Mask label images: the numpy-only PNG codec Blender reads with, against OpenCV",
            [str(PYTHON), "benchmarks/bench_masks.py"],
            ["--repeats", "5"],
            [RESULTS / "masks.md"],
        ),
        Benchmark(
            "sam2_segfollow",
            "SegFollow on streamed SAM2 (CPU, small test configuration)",
            [str(PYTHON), "benchmarks/bench_sam2_segfollow.py"],
            ["--lengths", "10", "20"],
            [RESULTS / "sam2_segfollow.md"],
            [RESULTS / "sam2_segfollow.png"],
            required_file=ROOT / "benchmarks" / "bench_sam2_segfollow.py",
        ),
        Benchmark(
            "world",
            "The shot's world frame (floor, camera height and pitch) against the scenes' truth",
            [str(PYTHON), "benchmarks/bench_world.py"],
            ["--frames", str(QUICK_SCENE_FRAMES)],
            [RESULTS / "world.md"],
            required_file=ROOT / "benchmarks" / "scenes" / "crossing" / "scene.json",
        ),
        Benchmark(
            "feet",
            "Foot skate before and after the foot clean-up, on the rendered scenes",
            [str(PYTHON), "benchmarks/bench_feet.py"],
            ["--frames", str(QUICK_SCENE_FRAMES)],
            [RESULTS / "feet.md"],
            [RESULTS / "feet.png"],
            required_file=ROOT / "benchmarks" / "scenes" / "crossing" / "scene.json",
        ),
        Benchmark(
            "predictor",
            "The Predictor against holding the last pose, by time hidden (the learned one "
            "trained on the first scene set, judged on the held-out second)",
            [
                *(str(PYTHON), "benchmarks/bench_predictor.py", "--train-steps", "600"),
                *("--train-learned", str(Path(tempfile.gettempdir()) / "ram_predictor.npz")),
            ],
            ["--frames", str(QUICK_SCENE_FRAMES)],
            [RESULTS / "predictor.md"],
            [RESULTS / "predictor.png"],
            required_file=ROOT / "benchmarks" / "scenes" / "crossing" / "scene.json",
        ),
        Benchmark(
            "real_clip",
            "The lite pipeline on a real street clip (OpenCV's vtest.avi from Debian)",
            [str(PYTHON), "benchmarks/bench_real_clip.py"],
            ["--frames", str(QUICK_CLIP_FRAMES)],
            [RESULTS / "real_clip.md"],
            [RESULTS / "real_clip.png"],
        ),
        Benchmark(
            "pose_models",
            "BlazePose's landmark model, full against lite: cost, the real clip, the scenes",
            [str(PYTHON), "benchmarks/bench_pose_models.py"],
            [
                *("--frames", str(QUICK_CLIP_FRAMES), "--turns", "1"),
                *("--scene-frames", str(QUICK_SCENE_FRAMES)),
            ],
            [RESULTS / "pose_models.md"],
        ),
        Benchmark(
            "search",
            "Searching around hidden people between detections: scenes and the real clip",
            [str(PYTHON), "benchmarks/bench_search.py"],
            ["--scene-frames", str(QUICK_SCENE_FRAMES), "--frames", "24", "--turns", "1"],
            [RESULTS / "search.md"],
            required_file=ROOT / "benchmarks" / "scenes" / "crossing" / "scene.json",
        ),
        Benchmark(
            "detectors",
            "The lite person detectors frame by frame: SSDLite against YOLOv4-tiny",
            [str(PYTHON), "benchmarks/bench_detectors.py"],
            ["--frames-per-scene", "6", "--clip-frames", "6"],
            [RESULTS / "detectors.md"],
            [RESULTS / "detectors.png"],
            required_file=ROOT / "benchmarks" / "scenes" / "crossing" / "scene.json",
        ),
        Benchmark(
            "batch",
            "Many clips: one worker, a process pool and local Ray (`ram-core batch`)",
            [str(PYTHON), "benchmarks/bench_batch.py"],
            ["--clips", "4", "--frames", "12"],
            [RESULTS / "batch.md"],
        ),
        Benchmark(
            "thmr",
            "T-HMR: crops per second, and the Memory Cache and MemFormer against the backbone",
            [str(PYTHON), "benchmarks/bench_thmr.py"],
            ["--quick"],
            [RESULTS / "thmr.md"],
            [RESULTS / "thmr.png"],
        ),
        Benchmark(
            "camera_motion",
            "A turning camera's rotations and focal length against synthetic truth",
            [str(PYTHON), "benchmarks/bench_camera_motion.py"],
            ["--frames", str(QUICK_SCENE_FRAMES)],
            [RESULTS / "camera_motion.md"],
        ),
        Benchmark(
            "ablations",
            "Ablations on the synthetic scenes (`ram-core eval bench`)",
            [
                *(str(PYTHON), "-m", "ram_core", "eval", "bench", "--progress", "none"),
                *("--format", "json", "--output", str(ablations_json)),
            ],
            ["--max-frames", str(QUICK_SCENE_FRAMES)],
            [RESULTS / "ablations.md"],
            [RESULTS / "ablations.png"],
            data=[ablations_json],
        ),
        Benchmark(
            "heldout",
            "Held-out scenes (seed 57), scored once after the tuning: SegFollow against the "
            "IoU baseline",
            [
                *(str(PYTHON), "-m", "ram_core", "eval", "bench", "--progress", "none"),
                *("--scenes", str(HELDOUT_SCENES), "--variants", "full,no_segfollow"),
                *("--output", str(RESULTS / "heldout.md")),
            ],
            ["--max-frames", str(QUICK_SCENE_FRAMES)],
            [RESULTS / "heldout.md"],
            required_file=HELDOUT_SCENES / "crossing" / "scene.json",
        ),
        Benchmark(
            "peers",
            "Our tracking against SORT, ByteTrack, OC-SORT and BoT-SORT on the same detections",
            [str(PYTHON), "benchmarks/bench_peers.py"],
            ["--frames", str(QUICK_SCENE_FRAMES)],
            [RESULTS / "peers.md"],
            required_file=ROOT / ".venv-peers" / "bin" / "python",
        ),
    ]


# --------------------------------------------------------------------------- machine


def _read_proc(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_lines() -> list[str]:
    memory = _read_proc("/proc/meminfo", "MemTotal")
    memory_gb = f"{int(memory.split()[0]) / 1024**2:.1f} GB" if memory else "unknown"
    packages = ("numpy", "torch", "opencv-python-headless", "ai-edge-litert", "sam2")
    return [
        f"- CPU: {_read_proc('/proc/cpuinfo', 'model name') or platform.processor()}, "
        f"{os.cpu_count()} logical CPUs; RAM {memory_gb}; no GPU used",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}; "
        + ", ".join(f"{p} {_version(p)}" for p in packages),
        f"- Date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
    ]


# --------------------------------------------------------------------------- running


def make_quick_clip(target: Path, frames: int) -> Path:
    """The first ``frames`` frames of the demo clip."""
    import cv2

    from ram_core.video.reader import iter_frames, probe_video

    info = probe_video(DEMO_CLIP)
    writer = cv2.VideoWriter(
        str(target), cv2.VideoWriter_fourcc(*"mp4v"), info.fps, (info.width, info.height)
    )
    for frame in iter_frames(DEMO_CLIP, 0, frames):
        writer.write(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return target


def run_benchmark(benchmark: Benchmark, quick: bool, timeout_s: float) -> Outcome:
    if benchmark.required_file is not None and not benchmark.required_file.exists():
        missing = benchmark.required_file.relative_to(ROOT)
        return Outcome(benchmark, None, 0.0, "", f"skipped: {missing} does not exist")
    command = benchmark.command + (benchmark.quick_args if quick else [])
    print(f"== {benchmark.name}: {' '.join(command)}", file=sys.stderr, flush=True)
    saved = {path: path.read_bytes() for path in benchmark.outputs if path.is_file()}
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        code, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = -1
        output = f"{_text(exc.stdout)}{_text(exc.stderr)}\n(stopped after {timeout_s:.0f} s)"
    finally:
        if quick:
            _set_aside(benchmark.outputs, saved)
    seconds = time.perf_counter() - started
    tail = "\n".join(_meaningful(output).splitlines()[-OUTPUT_TAIL_LINES:])
    print(f"   exit {code} after {seconds:.0f} s", file=sys.stderr, flush=True)
    return Outcome(benchmark, code, seconds, tail)


def _set_aside(outputs: list[Path], saved: dict[Path, bytes]) -> None:
    """Quick mode: move what a benchmark wrote into the quick folder and put the full
    results back as they were."""
    QUICK_RESULTS.mkdir(parents=True, exist_ok=True)
    for path in outputs:
        quick_copy = QUICK_RESULTS / path.name
        quick_copy.unlink(missing_ok=True)
        if path.is_file() and path.read_bytes() != saved.get(path):
            os.replace(path, quick_copy)
        if path in saved:
            path.write_bytes(saved[path])


def placed(path: Path, quick: bool) -> Path:
    """Where a result file lives in this mode."""
    return QUICK_RESULTS / path.name if quick else path


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _meaningful(output: str) -> str:
    """The output without native (LiteRT / TF Lite, absl) log lines."""
    noise = re.compile(r"^(W0000|I0000|INFO: Created TensorFlow|WARNING: All log messages)")
    return "\n".join(line for line in output.splitlines() if not noise.match(line))


# --------------------------------------------------------------------------- ablations


def write_ablation_outputs(document: dict, quick: bool) -> None:
    """ablations.md (the table) and ablations.png (the mean over scenes per variant), in
    the results folder of this mode."""
    from ram_core.eval.ablations import format_report

    command = ".venv/bin/ram-core eval bench" + (
        f" --max-frames {QUICK_SCENE_FRAMES}" if quick else ""
    )
    text = "\n".join(
        [
            "# Ablations (`ram-core eval bench`)",
            "",
            f"Reproduce: `{command}`.",
            "",
            format_report(document),
            "",
        ]
    )
    placed(RESULTS / "ablations.md", quick).write_text(text, encoding="utf-8")
    plot_ablations(document, placed(RESULTS / "ablations.png", quick))


def plot_ablations(document: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("mota", "MOTA (%)", 100.0),
        ("idf1", "IDF1 (%)", 100.0),
        ("mpjpe_mm", "MPJPE (mm)", 1.0),
        ("hidden_mpjpe_mm", "MPJPE hidden (mm)", 1.0),
        ("fps", "frames per second", 1.0),
    )
    means = document["mean"]
    names = [m["variant"] for m in means]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.8))
    for axis, (key, label, scale) in zip(axes, panels, strict=True):
        values = [
            (m["row"][key] * scale) if m["row"][key] is not None else float("nan") for m in means
        ]
        bars = axis.bar(range(len(names)), values, color="#3b7dd8")
        if names and names[0] == "full":
            bars[0].set_color("#d8683b")
        axis.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        axis.set_title(label, fontsize=10)
    fig.suptitle(f"Ablations, mean over {len(document['scenes'])} scene(s) (lite backend)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- headlines


def _search(path: Path, pattern: str) -> re.Match | None:
    if not path.is_file():
        return None
    return re.search(pattern, path.read_text(encoding="utf-8"))


def _lite_pipeline_headlines(folder: Path) -> list[str]:
    lines = []
    found = _search(folder / "lite_pipeline.md", r"\*\*speed-up\*\* \| ([\d.]+)x")
    if found:
        lines.append(f"Detector every 5 frames instead of every frame: **{found[1]}x** faster.")
    found = _search(folder / "lite_pipeline.md", r"\*\*ratio\*\* \| ([\d.]+)x \| \| ([\d.]+)x")
    if found:
        lines.append(
            f"A {found[1]}x longer video of the same people: **{found[2]}x** the peak memory."
        )
    return lines


def _blender_headlines(folder: Path) -> list[str]:
    found = _search(folder / "blender_import.md", r"Ratio .*?\*\*(\d+)x\*\*")
    return [f"Bulk key import against `keyframe_insert`: **{found[1]}x** faster."] if found else []


def _combiner_headlines(folder: Path) -> list[str]:
    pattern = r"\*\*pipeline / re-run \(in-process\)\*\* \| \*\*(\d+)x"
    found = _search(folder / "combiner.md", pattern)
    if not found:
        return []
    return [f"Re-running the Combiner after an edit instead of the pipeline: **{found[1]}x**."]


def _artist_loop_headlines(folder: Path) -> list[str]:
    path = folder / "artist_loop.md"
    lines = []
    found = _search(path, r"(\d+) tracks x (\d+) frames")
    one = _search(path, r"`ram.rerun_combiner\(track=0\)`, one track edited \| ([\d.]+) \|")
    every = _search(path, r"`ram.rerun_combiner\(track=0\)`, every track edited \| ([\d.]+) \|")
    if found and one and every:
        lines.append(
            f"`ram.rerun_combiner` on {found[1]} tracks x {found[2]} frames in Blender: "
            f"**{float(one[1]) / 1000:.2f} s** after an edit of one track, "
            f"**{float(every[1]) / 1000:.2f} s** after edits of every track."
        )
    ratio = _search(path, r"Batched Predictor \+ Combiner: ([\d.]+)x faster")
    if ratio:
        lines.append(f"Batched Predictor + Combiner against the per-track loop: **{ratio[1]}x**.")
    return lines


def _retarget_headlines(folder: Path) -> list[str]:
    path = folder / "retarget.md"
    frames = _search(path, r"One track of (\d+) frames")
    mixamo = _search(path, r"\| A-pose rig, Mixamo names.*?\| (\d+) \| ([\d.]+) \|")
    rigify = _search(path, r"\| Rigify, generated.*?\| (\d+) \| ([\d.]+) \|")
    if not (frames and mixamo and rigify):
        return []
    return [
        f"Retarget of {frames[1]} frames: **{mixamo[2]} s** onto a plain rig, "
        f"**{rigify[2]} s** onto Rigify (evaluated frame by frame)."
    ]


def _world_headlines(folder: Path) -> list[str]:
    found = _search(
        folder / "world.md",
        r"With the guessed focal length: median \|height error\| ([\d.]+) m, median "
        r"\|pitch error\| ([\d.]+) deg",
    )
    if not found:
        return []
    return [
        f"World frame on the rendered scenes (guessed focal): camera height off by "
        f"**{found[1]} m**, pitch by **{found[2]} deg** (medians)."
    ]


def _feet_headlines(folder: Path) -> list[str]:
    found = _search(
        folder / "feet.md",
        r"Held-out scenes: median skate ([\d.]+) -> ([\d.]+) cm per contact frame, image "
        r"shift p95 ([\d.]+) px",
    )
    if not found:
        return []
    return [
        f"Foot clean-up on the held-out scenes: skate **{found[1]} -> {found[2]} cm** per "
        f"contact frame, the image moving **{found[3]} px** (95th percentile)."
    ]


def _camera_motion_headlines(folder: Path) -> list[str]:
    path = folder / "camera_motion.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    rows = re.findall(
        r"^\| (\d+) \| (\d+) \| (\d+) \| (\d+) \| ([+-][\d.]+)% \| ([\d.]+) \|",
        text,
        flags=re.MULTILINE,
    )
    if not rows:
        return []
    focal = max(abs(float(r[4])) for r in rows)
    rotation = max(float(r[5]) for r in rows)
    return [
        f"Turning camera (synthetic, 10-30 deg): focal length within **{focal:.1f}%**, "
        f"rotation within **{rotation:.2f} deg**."
    ]


def _predictor_headlines(folder: Path) -> list[str]:
    path = folder / "predictor.md"
    hold = _search(path, r"\| hold \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|")
    ours = _search(path, r"\| current Predictor \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|")
    if not (hold and ours):
        return []
    pairs = ", ".join(f"{ours[i]} vs {hold[i]}" for i in range(1, 5))
    return [
        f"Joint error while hidden 0.25 / 0.5 / 1 / 2 s, the Predictor vs holding the last "
        f"pose: **{pairs} mm**."
    ]


def _learned_predictor_headlines(folder: Path) -> list[str]:
    """The held-out table's learned row (the second table of predictor.md)."""
    path = folder / "predictor.md"
    if not path.is_file():
        return []
    held_out = path.read_text(encoding="utf-8").partition("held out")[2]
    row = r"\| {} \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|"
    learned = re.search(row.format("learned Predictor"), held_out)
    ours = re.search(row.format("current Predictor"), held_out)
    if not (learned and ours):
        return []
    pairs = ", ".join(f"{learned[i]} vs {ours[i]}" for i in range(1, 5))
    return [
        f"Held-out scenes, hidden 0.25 / 0.5 / 1 / 2 s: the learned Predictor (trained on the "
        f"first set) vs the analytic one: **{pairs} mm**."
    ]


def _thmr_headlines(folder: Path) -> list[str]:
    found = _search(
        folder / "thmr.md",
        r"\| hmr2 \| 1 \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \|.*\| ([\d.]+%) \|",
    )
    if not found:
        return []
    return [
        f"T-HMR at full size (ViT-H, CPU): **{float(found[2]) / 1000:.2f} s** per crop for the "
        f"backbone; Memory Cache + MemFormer add **{found[3]}** of it."
    ]


def _batch_headlines(folder: Path) -> list[str]:
    path = folder / "batch.md"
    one = _search(path, r"\| pool, 1 worker[^|]*\| 1 \| [\d.]+ \| ([\d.]+) \|")
    two = _search(path, r"\| pool, 2 workers \| 2 \| [\d.]+ \| ([\d.]+) \|")
    # The engines' own cost: the second table, whose rows have two numbers.
    ray = _search(path, r"(?m)^\| Ray local, 1 CPU \| ([\d.]+) \| ([\d.]+) \|$")
    lines = []
    if one and two:
        lines.append(
            f"`ram-core batch`, a pool of 2 against 1 worker: **{two[1]} vs {one[1]}** clips "
            "per minute (short clips)."
        )
    if ray:
        lines.append(f"Local Ray's start-up: **{ray[2]} s** per batch, {ray[1]} ms per clip.")
    return lines


def _real_clip_headlines(folder: Path) -> list[str]:
    path = folder / "real_clip.md"
    turns = _search(
        path,
        r"\n\| now \| (\d+) \| [\d.]+ \| ([\d.]+) \|.*\n\| (\w+) \| \d+ \| [\d.]+ \| ([\d.]+) \|",
    )
    if turns:
        lines = [
            f"Lite pipeline on a real 768x576 street clip: **{turns[2]} frames/s** (median "
            f"of {turns[1]} turns; {turns[4]} at {turns[3]} in the same run)."
        ]
        memory = _search(path, r"\*\*(\d+) / (\d+)\*\* \| \| \| \| \| \*\*([\d.]+)x\*\*")
        if memory:
            lines.append(
                f"Real clip, {memory[1]} against {memory[2]} frames: **{memory[3]}x** the peak "
                "memory."
            )
        return lines
    speed = _search(path, r"\*\*whole pipeline\*\* \| [\d.]+ \| ([\d.]+) \|")
    memory = _search(path, r"\*\*(\d+) / (\d+)\*\* \| \| \| \| \| \*\*([\d.]+)x\*\*")
    lines = []
    if speed:
        lines.append(f"Lite pipeline on a real 768x576 street clip: **{speed[1]} frames/s**.")
    if memory:
        lines.append(
            f"Real clip, {memory[1]} against {memory[2]} frames: **{memory[3]}x** the peak memory."
        )
    return lines


def _sam2_headlines(folder: Path) -> list[str]:
    found = _search(folder / "sam2_segfollow.md", r"\*\*SegFollow logic\*\*.*?\*\*([\d.]+%)\*\*")
    return [f"SegFollow's own logic on SAM2: **{found[1]}** of a step."] if found else []


def _ablation_headlines(document: dict | None) -> list[str]:
    if not document:
        return []
    rows = {m["variant"]: m["row"] for m in document["mean"]}
    full = rows.get("full")
    if not full:
        return []
    lines = []

    def delta(variant: str, key: str, scale: float, unit: str) -> str | None:
        if variant not in rows or rows[variant][key] is None or full[key] is None:
            return None
        return f"{scale * (full[key] - rows[variant][key]):+.1f}{unit}"

    for variant in ("no_segfollow", "no_memory", "detect_every_frame"):
        mota, idf1 = delta(variant, "mota", 100, " pt"), delta(variant, "idf1", 100, " pt")
        switches = delta(variant, "id_switches", 1, "")
        if mota and idf1 and switches:
            lines.append(
                f"`full` minus `{variant}` (mean over scenes): MOTA {mota}, IDF1 {idf1}, "
                f"ID switches {switches}."
            )
    for key, label in (("mpjpe_mm", "MPJPE"), ("hidden_mpjpe_mm", "MPJPE on hidden frames")):
        change = delta("no_predictor", key, 1, " mm")
        if change:
            lines.append(f"`full` minus `no_predictor` (same tracks): {label} {change}.")
    every = rows.get("detect_every_frame")
    if every and every["fps"] and full["fps"]:
        lines.append(
            "Detector every 5 frames against every frame (ablation runs): "
            f"**{full['fps'] / every['fps']:.2f}x** the frame rate."
        )
    return lines


def _heldout_headlines(folder: Path) -> list[str]:
    path = folder / "heldout.md"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    start = re.search(r"^#+ Mean over", text, re.M)
    mean = text[start.start() :] if start else ""
    figures = {}
    for variant in ("full", "no_segfollow"):
        found = re.search(rf"^\| {variant} \| ([\d.]+)% \| ([\d.]+)% \| ([\d.]+) \|", mean, re.M)
        if found:
            figures[variant] = found.groups()
    if len(figures) < 2:
        return []
    (mota, idf1, switches), (base_mota, base_idf1, base_switches) = (
        figures["full"],
        figures["no_segfollow"],
    )
    return [
        "Held-out scenes (seed 57, never tuned on), mean MOTA / IDF1 / ID switches: "
        f"SegFollow **{mota}% / {idf1}% / {switches}** against the IoU baseline's "
        f"{base_mota}% / {base_idf1}% / {base_switches}."
    ]


HEADLINES: dict[str, Callable[[Path], list[str]]] = {
    "heldout": _heldout_headlines,
    "lite_pipeline": _lite_pipeline_headlines,
    "blender_import": _blender_headlines,
    "combiner": _combiner_headlines,
    "artist_loop": _artist_loop_headlines,
    "retarget": _retarget_headlines,
    "world": _world_headlines,
    "feet": _feet_headlines,
    "camera_motion": _camera_motion_headlines,
    "predictor": lambda folder: _predictor_headlines(folder) + _learned_predictor_headlines(folder),
    "thmr": _thmr_headlines,
    "batch": _batch_headlines,
    "real_clip": _real_clip_headlines,
    "sam2_segfollow": _sam2_headlines,
}


# --------------------------------------------------------------------------- report


def _section_body(text: str) -> str:
    """A result file under a section here: its own title dropped, headings one level down."""
    lines = text.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    body = "\n".join(lines).strip()
    return re.sub(r"^(#+) ", lambda m: "#" + m[1] + " ", body, flags=re.MULTILINE)


def report(
    outcomes: list[Outcome],
    quick: bool,
    total_s: float,
    ablations: dict | None,
    report_path: Path,
) -> str:
    lines = ["# Benchmarks", ""]
    if quick:
        lines += [
            "**Quick mode** (`--quick`): every benchmark shrunk to check the machinery. "
            "These figures are not the ones to quote; `BENCHMARKS.md` at the repository root "
            "(without `--quick`) has them.",
            "",
        ]
    lines += [
        "Produced by one command: "
        f"`.venv/bin/python benchmarks/run_all.py{' --quick' if quick else ''}` "
        f"({total_s / 60:.1f} min on this machine). Absolute times are this machine's; the "
        "ratios are each measured within one run, the figures to compare across machines.",
        "",
        "## Machine",
        "",
        *machine_lines(),
        "",
        "## Headlines (ratios measured in the same run)",
        "",
    ]
    headlines = []
    for outcome in outcomes:
        if outcome.ok and outcome.benchmark.name in HEADLINES:
            headlines += HEADLINES[outcome.benchmark.name](QUICK_RESULTS if quick else RESULTS)
        if outcome.ok and outcome.benchmark.name == "ablations":
            headlines += _ablation_headlines(ablations)
    lines += [f"- {h}" for h in headlines] or ["- (no benchmark finished)"]
    lines += [
        "",
        "## Runs",
        "",
        "| benchmark | status | minutes |",
        "|---|---|---:|",
    ]
    for outcome in outcomes:
        status = (
            outcome.note
            if outcome.returncode is None
            else "ok"
            if outcome.ok
            else f"**failed** (exit {outcome.returncode})"
        )
        lines.append(f"| {outcome.benchmark.name} | {status} | {outcome.seconds / 60:.1f} |")
    for outcome in outcomes:
        bench = outcome.benchmark
        lines += ["", f"## {bench.title}", ""]
        if outcome.returncode is None:
            lines += [f"Not run: {outcome.note}."]
            continue
        command = " ".join(
            Path(c).relative_to(ROOT).as_posix() if c.startswith(str(ROOT)) else c
            for c in bench.command + (bench.quick_args if quick else [])
        )
        lines += [f"Command: `{command}`.", ""]
        if not outcome.ok:
            lines += [
                f"**This benchmark failed** (exit {outcome.returncode}); the end of its output:",
                "",
                "```",
                outcome.output_tail or "(no output)",
                "```",
            ]
            continue
        for table in (placed(t, quick) for t in bench.tables):
            if table.is_file():
                lines += [_section_body(table.read_text(encoding="utf-8")), ""]
            else:
                lines += [f"(it wrote no `{table.relative_to(ROOT)}`)", ""]
        for plot in (placed(p, quick) for p in bench.plots):
            if plot.is_file():
                relative = plot.relative_to(report_path.parent).as_posix()
                lines += [f"![{plot.stem}]({relative})", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs (minutes)")
    parser.add_argument("--only", default=None, help="comma-separated benchmark names")
    parser.add_argument(
        "--timeout", type=float, default=3 * 3600, help="seconds one benchmark may take"
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ram-run-all-") as work:
        quick_clip = make_quick_clip(Path(work) / "clip24.mp4", QUICK_CLIP_FRAMES)
        chosen = benchmarks(quick_clip)
        if args.only:
            names = set(args.only.split(","))
            unknown = names - {b.name for b in chosen}
            if unknown:
                parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
            chosen = [b for b in chosen if b.name in names]
        outcomes = [run_benchmark(b, args.quick, args.timeout) for b in chosen]
    ablations = None
    ablations_json = placed(RESULTS / "ablations.json", args.quick)
    for outcome in outcomes:
        if outcome.benchmark.name == "ablations" and outcome.ok:
            ablations = json.loads(ablations_json.read_text(encoding="utf-8"))
            write_ablation_outputs(ablations, args.quick)
    total_s = time.perf_counter() - started
    report_path = QUICK_RESULTS / "BENCHMARKS.md" if args.quick else REPORT
    write_atomically(report_path, report(outcomes, args.quick, total_s, ablations, report_path))
    failed = [o.benchmark.name for o in outcomes if o.returncode not in (0, None)]
    print(
        f"wrote {report_path.relative_to(ROOT)} in {total_s / 60:.1f} min"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
