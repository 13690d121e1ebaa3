"""``ram-core eval``: tracking metrics of a tracker's output against ground truth.

``ram-core eval mot GT.txt PRED.txt [--format table|json]`` on MOTChallenge text files,
``ram-core eval posetrack GT.json PRED.json`` on PoseTrack annotation files (box tracks).
The metrics are py-motmetrics' (see ``ram_core.eval.metrics``); MOTP is printed in its
convention (mean 1 - IoU, lower is better) beside the mean IoU of the matches.
Malformed files raise ``BadInputError`` (exit 2) with one line naming file and line.

``ram-core eval bench [--scenes DIR] [--scene NAME ...] [--variants a,b] [--format
table|json] [--output FILE]`` runs the ablation variants (``ram_core.eval.ablations``) on the
synthetic benchmark scenes (``ram_core.eval.bench_scenes``) and prints the table; with no scenes
it exits 2 and names the command that renders them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import IO

from ram_core.errors import BadInputError
from ram_core.eval.datasets import read_mot_challenge, read_posetrack
from ram_core.eval.metrics import MotMetrics, TrackedBoxes, evaluate_mot
from ram_core.io.progress import PROGRESS_MODES, Progress

# (field, label, kind): what the table shows, in order; kind picks the number format.
_TABLE_ROWS = (
    ("mota", "MOTA", "percent"),
    ("idf1", "IDF1", "percent"),
    ("idp", "IDP", "percent"),
    ("idr", "IDR", "percent"),
    ("motp", "MOTP (mean 1-IoU)", "fraction"),
    ("motp_iou", "MOTP (mean IoU)", "fraction"),
    ("precision", "precision", "percent"),
    ("recall", "recall", "percent"),
    ("num_switches", "ID switches", "count"),
    ("num_fragmentations", "fragmentations", "count"),
    ("num_false_positives", "false positives", "count"),
    ("num_misses", "misses", "count"),
    ("num_objects", "ground-truth boxes", "count"),
    ("num_predictions", "predicted boxes", "count"),
    ("num_unique_objects", "ground-truth tracks", "count"),
    ("mostly_tracked", "mostly tracked", "count"),
    ("partially_tracked", "partially tracked", "count"),
    ("mostly_lost", "mostly lost", "count"),
    ("num_frames", "frames", "count"),
)


def add_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``eval`` and its benchmarks to the command line's subcommands."""
    evaluate = subparsers.add_parser("eval", help="tracking metrics against ground truth")
    # The nested parsers share the parent's class, so usage errors keep ram-core's form.
    benchmarks = evaluate.add_subparsers(dest="benchmark", required=True)
    for name, help_text, suffix in (
        ("mot", "MOTChallenge text files (frame, id, left, top, width, height, ...)", "txt"),
        ("posetrack", "PoseTrack 2018/2021 annotation json (box tracks)", "json"),
    ):
        parser = benchmarks.add_parser(name, help=help_text)
        parser.add_argument("gt", help=f"ground truth (.{suffix})")
        parser.add_argument("pred", help=f"the tracker's output (.{suffix})")
        parser.add_argument("--format", default="table", choices=("table", "json"))
        parser.add_argument(
            "--iou", type=float, default=0.5, help="least box IoU of a match (default 0.5)"
        )
        parser.add_argument("--progress", default="none", choices=PROGRESS_MODES)
        if name == "mot":
            parser.add_argument(
                "--gt-min-confidence",
                type=float,
                default=None,
                help="drop ground-truth rows whose confidence is lower (MOT16/17/20 ground "
                "truth marks boxes to ignore with 0: use 1); default keeps every row",
            )
    _add_bench_parser(benchmarks)
    return evaluate


def _add_bench_parser(benchmarks: argparse._SubParsersAction) -> None:
    from ram_core.eval.ablations import VARIANTS
    from ram_core.eval.bench_scenes import DEFAULT_SCENES_DIR

    bench = benchmarks.add_parser(
        "bench", help="the ablation table on the synthetic benchmark scenes (lite backend)"
    )
    bench.add_argument(
        "--scenes",
        default=str(DEFAULT_SCENES_DIR),
        help=f"folder of scenes (default {DEFAULT_SCENES_DIR}, relative to the current folder)",
    )
    bench.add_argument(
        "--scene",
        action="append",
        default=None,
        metavar="NAME",
        help="a scene of --scenes, or a path to a scene folder or to a clip with X_gt.npz "
        "beside it (repeat for several; default: every scene)",
    )
    bench.add_argument(
        "--variants", default=None, help=f"comma-separated, of: {', '.join(VARIANTS)} (default all)"
    )
    bench.add_argument("--format", default="table", choices=("table", "json"))
    bench.add_argument("--output", default=None, help="also write the table or JSON here")
    bench.add_argument(
        "--iou", type=float, default=0.5, help="least box IoU of a match (default 0.5)"
    )
    bench.add_argument(
        "--min-visible",
        type=float,
        default=0.5,
        help="people less visible than this are ignored by the MOT figures (default 0.5)",
    )
    bench.add_argument(
        "--max-frames", type=int, default=None, help="run and score only the first N frames"
    )
    bench.add_argument("--config", default=None, help="YAML file with stage settings")
    bench.add_argument("--progress", default="bar", choices=PROGRESS_MODES)


def _read_pair(args: argparse.Namespace, progress: Progress) -> tuple[TrackedBoxes, TrackedBoxes]:
    if args.benchmark == "mot":
        gt = read_mot_challenge(args.gt)
        if args.gt_min_confidence is not None:
            kept = gt.with_min_confidence(args.gt_min_confidence)
            progress.info(
                f"kept {len(kept.boxes)} of {len(gt.boxes)} ground-truth rows "
                f"(confidence >= {args.gt_min_confidence:g})"
            )
            gt = kept
        return gt.boxes, read_mot_challenge(args.pred).boxes
    return read_posetrack(args.gt).boxes, read_posetrack(args.pred).boxes


def _json_ready(metrics: MotMetrics) -> dict[str, float | int | None]:
    """Strict JSON has no NaN: an undefined ratio (nothing to divide by) becomes null."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v
        for k, v in metrics.as_dict().items()
    }


def format_table(metrics: MotMetrics) -> str:
    """The metrics as aligned text lines, one per figure."""
    values = metrics.as_dict()
    width = max(len(label) for _, label, _ in _TABLE_ROWS)
    lines = []
    for field, label, kind in _TABLE_ROWS:
        value = values[field]
        if kind == "count":
            text = f"{value:d}"
        elif not math.isfinite(value):
            text = "n/a"
        elif kind == "percent":
            text = f"{100.0 * value:.1f}%"
        else:
            text = f"{value:.3f}"
        lines.append(f"{label:<{width}}  {text}")
    return "\n".join(lines)


def check_output_file(path: str | Path) -> Path:
    """BadInputError unless ``path`` can be written as a file (checked before long work)."""
    target = Path(path)
    if target.is_dir():
        raise BadInputError(f"--output {target} is a folder")
    if not target.parent.is_dir():
        raise BadInputError(f"--output {target}: folder {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise BadInputError(f"--output {target}: folder {target.parent} is not writable")
    return target


def write_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    target = check_output_file(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def run_bench(args: argparse.Namespace, progress: Progress, out: IO[str] | None = None) -> int:
    """Run ``ram-core eval bench``: every chosen variant on every chosen scene, then the table."""
    from ram_core.config import load_config
    from ram_core.eval.ablations import (
        BenchSettings,
        format_report,
        machine_summary,
        parse_variants,
        report_document,
        run_ablations,
    )
    from ram_core.eval.bench_scenes import resolve_scenes

    stream = out or sys.stdout
    try:
        settings = BenchSettings(
            min_visible_fraction=args.min_visible,
            iou_threshold=args.iou,
            max_frames=args.max_frames,
        )
    except ValueError as exc:
        raise BadInputError(f"{exc} (--min-visible, --iou, --max-frames)") from None
    variants = parse_variants(args.variants)
    base_config = load_config(args.config)
    scenes = resolve_scenes(args.scenes, args.scene)
    if args.output is not None:
        check_output_file(args.output)
    progress.info(
        f"{len(variants)} variant(s) on {len(scenes)} scene(s), lite backend on the CPU: "
        f"{', '.join(s.name for s in scenes)}"
    )
    scores = run_ablations(
        scenes, variants, settings, base_config=base_config, progress=progress
    )
    document = report_document(scores, scenes, variants, settings, "lite", machine_summary())
    text = json.dumps(document) if args.format == "json" else format_report(document)
    progress.close()
    print(text, file=stream)
    stream.flush()
    if args.output is not None:
        progress.done(str(write_atomically(args.output, text + "\n")))
    return 0


def run_eval(args: argparse.Namespace, progress: Progress, out: IO[str] | None = None) -> int:
    """Run ``ram-core eval``; prints the metrics on ``out`` (stdout) and returns exit code 0."""
    if args.benchmark == "bench":
        return run_bench(args, progress, out)
    stream = out or sys.stdout
    if not 0.0 < args.iou <= 1.0:
        raise BadInputError(f"--iou must be in (0, 1], got {args.iou}")
    gt, pred = _read_pair(args, progress)
    metrics = evaluate_mot(gt, pred, iou_threshold=args.iou)
    if args.format == "json":
        record = {
            "benchmark": args.benchmark,
            "gt": str(args.gt),
            "pred": str(args.pred),
            "iou_threshold": args.iou,
            "motp_convention": "motp = mean (1 - IoU) over matches; motp_iou = 1 - motp",
            "metrics": _json_ready(metrics),
        }
        print(json.dumps(record), file=stream)
    else:
        print(f"{args.benchmark}: {args.pred} against {args.gt} (IoU >= {args.iou:g})", file=stream)
        print(format_table(metrics), file=stream)
    stream.flush()
    return 0
