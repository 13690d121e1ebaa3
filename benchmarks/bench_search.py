"""Searching around hidden people between detections: what it finds, and what it costs.

Between the detector's regular frames (every K = 5) SegFollow carries people on their masks;
while someone is hidden, the pipeline also runs the detector in windows around where they
may come back (``pipeline.search_every``, SegFollow's ``search_regions``). This runs the
rendered benchmark scenes with no search, a search every second frame (the default) and
every frame, and times the real clip (``vtest.avi``, 300 frames, a fresh process per run,
the settings taking turns) the same ways. Writes ``benchmarks/results/search.md``.

    .venv/bin/python benchmarks/bench_search.py [--scenes DIR ...] [--frames N] [--turns N]

The default scenes are ``benchmarks/scenes`` (rendered by ``tools/make_bench_scenes.py``);
folders missing scenes are skipped with a note.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_real_clip import fetch_clip, run_in_fresh_process  # noqa: E402

from ram_core.config import PipelineConfig, RunConfig  # noqa: E402
from ram_core.errors import BadInputError  # noqa: E402
from ram_core.eval.ablations import (  # noqa: E402
    BenchSettings,
    parse_variants,
    run_ablations,
    table_row,
)
from ram_core.eval.bench_scenes import list_scenes, load_scene  # noqa: E402
from ram_core.io.progress import make_progress  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SETTINGS = {"no search": 0, "every 2nd frame (default)": 2, "every frame": 1}


def score_scenes(
    folders: list[Path], max_frames: int | None
) -> tuple[dict[str, dict[str, dict]], list[str]]:
    """{scene label: {setting: table row}} and notes on folders without scenes. A label is
    the folder's name and the scene's."""
    scores: dict[str, dict[str, dict]] = {}
    notes = []
    progress = make_progress("bar")
    for folder in folders:
        try:
            paths = list_scenes(folder)
        except BadInputError:
            notes.append(f"`{folder}`: no scenes, skipped")
            continue
        scenes = [load_scene(path) for path in paths]
        for setting, every in SETTINGS.items():
            config = RunConfig(pipeline=PipelineConfig(search_every=every))
            for score in run_ablations(
                scenes, parse_variants("full"), BenchSettings(max_frames=max_frames),
                base_config=config,
                progress=progress,
            ):  # fmt: skip
                label = f"{folder.name}/{score.scene}"
                scores.setdefault(label, {})[setting] = table_row(score)
    return scores, notes


def time_clip(frames: int, turns: int) -> dict[str, list[dict]]:
    clip = fetch_clip()
    runs: dict[str, list[dict]] = {setting: [] for setting in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for turn in range(turns):
            for setting, every in SETTINGS.items():
                print(f"real clip, turn {turn + 1}/{turns}: {setting} ...", file=sys.stderr)
                out = Path(tmp) / f"{turn}-{every}.ram"
                sections = {"pipeline": {"search_every": every}}
                runs[setting].append(run_in_fresh_process(clip, out, frames, sections))
    return runs


def cell(row: dict[str, float]) -> str:
    return f"{100 * row['mota']:.1f} / {100 * row['idf1']:.1f} / {row['id_switches']:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="*", type=Path, default=[ROOT / "benchmarks" / "scenes"])
    parser.add_argument("--frames", type=int, default=300, help="real-clip frames per run")
    parser.add_argument("--turns", type=int, default=2, help="real-clip runs of each setting")
    parser.add_argument("--scene-frames", type=int, default=None, help="first frames of a scene")
    args = parser.parse_args()

    scores, notes = score_scenes(args.scenes, args.scene_frames)
    runs = time_clip(args.frames, args.turns)

    names = list(SETTINGS)
    lines = [
        "# Searching around hidden people between detections",
        "",
        "Reproduce: `.venv/bin/python benchmarks/bench_search.py --scenes "
        + " ".join(str(p) for p in args.scenes)
        + "`. Lite backend, 2 cores; the detector every 5 frames in every setting.",
        "",
        "## Scenes: MOTA / IDF1 / ID switches (`eval bench`, variant `full`)",
        "",
        "| scene | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, row in scores.items():
        lines.append(f"| {label} | " + " | ".join(cell(row[n]) for n in names) + " |")
    if scores:
        means = []
        for name in names:
            rows = [row[name] for row in scores.values()]
            mota = statistics.fmean(r["mota"] for r in rows)
            idf1 = statistics.fmean(r["idf1"] for r in rows)
            switches = sum(r["id_switches"] for r in rows)
            means.append(f"**{100 * mota:.1f} / {100 * idf1:.1f} / {switches:.0f}**")
        lines.append("| **mean (switches: sum)** | " + " | ".join(means) + " |")
    lines += [f"- {note}" for note in notes]
    lines += [
        "",
        f"## Real clip: {args.frames} frames of `vtest.avi`, turns of each setting: {args.turns}",
        "",
        "Median wall time of the whole run in a fresh process; searches: the seconds the "
        "searches took, summed.",
        "",
        "| setting | seconds | frames/s | time against no search | searching (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    base = statistics.median(r["wall_s"] for r in runs[names[0]])
    for name in names:
        wall = statistics.median(r["wall_s"] for r in runs[name])
        search = statistics.median(r["timings"]["stages"].get("search", 0.0) for r in runs[name])
        speed = args.frames / wall
        lines.append(f"| {name} | {wall:.1f} | {speed:.1f} | {wall / base:.2f}x | {search:.1f} |")
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "search.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
