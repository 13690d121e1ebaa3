"""``ram-core eval``: tracking metrics of a tracker's output against ground truth.

``ram-core eval mot GT.txt PRED.txt [--format table|json]`` on MOTChallenge text files,
``ram-core eval posetrack GT.json PRED.json`` on PoseTrack annotation files (box tracks).
The metrics are py-motmetrics' (see ``ram_core.metrics``); MOTP is printed in its
convention (mean 1 - IoU, lower is better) beside the mean IoU of the matches.
Malformed files raise ``BadInputError`` (exit 2) with one line naming file and line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import IO

from .datasets import read_mot_challenge, read_posetrack
from .errors import BadInputError
from .metrics import MotMetrics, TrackedBoxes, evaluate_mot
from .progress import PROGRESS_MODES, Progress

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
    return evaluate


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


def run_eval(args: argparse.Namespace, progress: Progress, out: IO[str] | None = None) -> int:
    """Run ``ram-core eval``; prints the metrics on ``out`` (stdout) and returns exit code 0."""
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
