"""BlazePose's full landmark model against its lite one: cost per crop, speed on the real
clip, and tracking and pose on the rendered scenes.

The lite backend runs the full model by default; ``segmenter: {model: lite}`` takes the lite
one (from the ``@mediapipe/pose`` npm tarball, ``ram-core weights download
blazepose_landmark_lite``). This measures what the choice gives and costs:
  1. the model alone on LiteRT: milliseconds of CPU and of wall time per crop, a batch of 4
     (the segmenter's ``max_batch``), on 1 and 2 threads;
  2. the real street clip (``bench_real_clip.py``'s ``vtest.avi``), the first N and 4N frames,
     each model in a fresh process, taking turns: frames per second, CPU seconds, tracks,
     person-frames, peak memory (there is no ground truth for this clip);
  3. each scene folder given (``--scenes``, repeatable; default ``benchmarks/scenes`` when it
     is there), the ``full`` variant with each model: MOTA, IDF1, ID switches, recall and
     MPJPE per scene and their means.
Writes benchmarks/results/pose_models.md.

    .venv/bin/python benchmarks/bench_pose_models.py [--scenes DIR ...] [--frames N] [--turns N]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_real_clip import fetch_clip, run_in_fresh_process
from bench_sam2_segfollow import cpu_name

from ram_core.config import config_from_dict
from ram_core.eval.ablations import (
    BenchSettings,
    parse_variants,
    run_ablations,
    table_row,
)
from ram_core.eval.bench_scenes import resolve_scenes
from ram_core.segment.blazepose import DEFAULT_MAX_BATCH, INPUT_SIZE
from ram_core.segment.lite import POSE_MODELS, default_model_path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_SCENES = ROOT / "benchmarks" / "scenes"
MODELS = tuple(POSE_MODELS)  # ("full", "lite"): the default first
CROP_CALLS = 25


def crop_cost(model: str, threads: int) -> tuple[float, float]:
    """Milliseconds of (CPU, wall) per crop of the model alone, a batch of max_batch."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(default_model_path(model)), num_threads=threads)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, [DEFAULT_MAX_BATCH, INPUT_SIZE, INPUT_SIZE, 3])
    interpreter.allocate_tensors()
    batch = np.random.default_rng(0).random(
        (DEFAULT_MAX_BATCH, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32
    )
    interpreter.set_tensor(index, batch)
    interpreter.invoke()  # the first call sets up XNNPACK
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(CROP_CALLS):
        interpreter.set_tensor(index, batch)
        interpreter.invoke()
    crops = CROP_CALLS * DEFAULT_MAX_BATCH
    return (
        1000 * (time.process_time() - cpu) / crops,
        1000 * (time.perf_counter() - wall) / crops,
    )


def sections(model: str) -> dict:
    return {"segmenter": {"model": model}}


def clip_runs(frames: list[int], turns: int) -> dict[tuple[str, int], list[dict]]:
    clip = fetch_clip()
    runs: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for turn in range(turns):
            for count in frames:
                for model in MODELS:
                    note = f"running: clip, {model}, {count} frames, turn {turn + 1}"
                    print(note, file=sys.stderr)
                    out = Path(tmp) / f"{model}_{count}_{turn}.ram"
                    run = run_in_fresh_process(clip, out, count, sections(model))
                    runs.setdefault((model, count), []).append(run)
    return runs


def scene_scores(folders: list[Path], max_frames: int | None) -> list[tuple[str, dict]]:
    """Per scene (``folder/scene``), each model's table row (``table_row``)."""
    settings = BenchSettings(max_frames=max_frames)
    variants = parse_variants("full")
    rows: dict[str, dict] = {}
    for folder in folders:
        scenes = resolve_scenes(folder)
        for model in MODELS:
            print(f"running: {folder}, {len(scenes)} scenes, {model} ...", file=sys.stderr)
            config = config_from_dict(sections(model))
            for score in run_ablations(scenes, variants, settings, base_config=config):
                key = f"{folder.name}/{score.scene}"
                rows.setdefault(key, {})[model] = table_row(score)
    return list(rows.items())


def _pct(value: float | None) -> str:
    return "-" if value is None or np.isnan(value) else f"{100 * value:.1f}"


def _mm(value: float | None) -> str:
    return "-" if value is None or np.isnan(value) else f"{value:.0f}"


def report(costs, runs, scores, folders, turns) -> list[str]:
    lines = [
        "# BlazePose's landmark model: full (the default) against lite",
        "",
        f"Machine: {cpu_name()}, Python "
        f"{platform.python_version()}, {platform.platform()}. Reproduce: "
        "`.venv/bin/python benchmarks/bench_pose_models.py`.",
        "",
        f"## The model alone (LiteRT, batch of {DEFAULT_MAX_BATCH}, random input)",
        "",
        "| model | threads | CPU ms per crop | wall ms per crop |",
        "|---|---:|---:|---:|",
    ]
    for (model, threads), (cpu, wall) in costs.items():
        lines.append(f"| {model} | {threads} | {cpu:.1f} | {wall:.1f} |")
    lines += [
        "",
        f"## The real clip (`vtest.avi`), each run in a fresh process, {turns} turns",
        "",
        "Medians of the turns; the models took turns, so the machine's drift falls on both.",
        "",
        "| model | frames | frames/s | CPU s | tracks | person-frames | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (model, count), model_runs in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        fps = statistics.median(count / r["wall_s"] for r in model_runs)
        cpu = statistics.median(r["cpu_s"] for r in model_runs)
        last = model_runs[-1]
        lines.append(
            f"| {model} | {count} | {fps:.2f} | {cpu:.1f} | {last['tracks']} | "
            f"{last['person_frames']} | {statistics.median(r['peak_mb'] for r in model_runs):.0f} |"
        )
    if scores:
        names = ", ".join(f"`{f}`" for f in folders)
        lines += [
            "",
            f"## Rendered scenes ({names}), variant `full`",
            "",
            "MOTA / IDF1 / ID switches / recall in %, MPJPE in mm (pelvis-centred, frames where "
            "a track pairs with the person).",
            "",
            "| scene | "
            + " | ".join(f"{m}: MOTA / IDF1 / sw / recall / MPJPE" for m in MODELS)
            + " |",
            "|---|" + "---|" * len(MODELS),
        ]
        totals = {m: [] for m in MODELS}
        for key, by_model in scores:
            cells = []
            for model in MODELS:
                row = by_model[model]
                totals[model].append(row)
                cells.append(
                    f"{_pct(row['mota'])} / {_pct(row['idf1'])} / {row['id_switches']:.0f} / "
                    f"{_pct(row['recall'])} / {_mm(row['mpjpe_mm'])}"
                )
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        means = []
        for model in MODELS:
            rows = totals[model]

            def mean(column: str, rows=rows) -> float:
                values = [r[column] for r in rows if r[column] is not None]
                return float(np.nanmean(values)) if values else float("nan")

            switches = sum(r["id_switches"] for r in rows)
            means.append(
                f"**{_pct(mean('mota'))} / {_pct(mean('idf1'))} / {switches:.0f} / "
                f"{_pct(mean('recall'))} / {_mm(mean('mpjpe_mm'))}**"
            )
        lines.append(f"| **mean ({len(totals[MODELS[0]])} scenes; switches summed)** | "
                     + " | ".join(means) + " |")  # fmt: skip
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=Path, action="append", help="a folder of scenes")
    parser.add_argument("--frames", type=int, default=100, help="the short clip run (long: 4x)")
    parser.add_argument("--turns", type=int, default=2, help="clip runs of each model")
    parser.add_argument("--scene-frames", type=int, default=None, help="score only the first N")
    args = parser.parse_args()
    folders = args.scenes or ([DEFAULT_SCENES] if DEFAULT_SCENES.is_dir() else [])
    costs = {(m, t): crop_cost(m, t) for m in MODELS for t in (1, 2)}
    runs = clip_runs([args.frames, 4 * args.frames], args.turns)
    scores = scene_scores(folders, args.scene_frames) if folders else []
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = "\n".join(report(costs, runs, scores, folders, args.turns))
    (RESULTS / "pose_models.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
