"""Compute py-motmetrics' own figures for the MOT fixtures our metrics are checked against.

Run in a separate environment (py-motmetrics 1.4.0 breaks on numpy 2 and pandas 2; it is
never a dependency of ram_core):

    python3 -m venv .venv-motmetrics
    .venv-motmetrics/bin/pip install "numpy<2" "pandas<2" motmetrics==1.4.0 scipy
    .venv-motmetrics/bin/python tools/motmetrics_reference.py

It copies the two real sequences py-motmetrics ships (TUD-Campus, TUD-Stadtmitte: the
MOT15 ground truth and a tracker's output, MOT15-2D text format) to tests/fixtures/mot/,
writes one seeded synthetic sequence beside them that exercises crossings, ID swaps, gaps,
reused IDs and boxes near the IoU threshold, and stores py-motmetrics' figures for all
three in tests/fixtures/motmetrics_reference.json. The sequences are loaded and compared
exactly as py-motmetrics' own test of these files does (``compare_to_groundtruth`` with
IoU distance, ``distth=0.5``, no confidence filter).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import motmetrics as mm
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SHIPPED = ("TUD-Campus", "TUD-Stadtmitte")
SYNTHETIC = "synthetic-crossings"
METRICS = (
    "mota", "motp", "idf1", "idp", "idr", "precision", "recall", "num_frames", "num_objects",
    "num_predictions", "num_unique_objects", "num_matches", "num_switches",
    "num_false_positives", "num_misses", "num_fragmentations", "mostly_tracked",
    "partially_tracked", "mostly_lost", "idtp", "idfp", "idfn",
)  # fmt: skip


def _mot_line(frame: int, track_id: int, box_xywh: np.ndarray) -> str:
    x, y, w, h = box_xywh
    return f"{frame},{track_id},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,-1,-1,-1"


def write_synthetic(folder: Path, seed: int = 7, frames: int = 60, people: int = 7) -> None:
    """A crowd walking across each other and a tracker that errs in every way it can."""
    rng = np.random.default_rng(seed)
    start = rng.uniform([0, 150], [560, 250], size=(people, 2))
    velocity = rng.uniform([-9, -1.5], [9, 1.5], size=(people, 2))
    size = rng.uniform([45, 110], [70, 190], size=(people, 2))
    enter = rng.integers(0, frames // 3, size=people)
    leave = rng.integers(2 * frames // 3, frames + 1, size=people)
    gt_lines, pred_lines = [], []
    next_pred_id = 100
    pred_id = {p: p + 1 for p in range(people)}
    for f in range(1, frames + 1):
        for p in range(people):
            if not enter[p] <= f < leave[p]:
                continue
            box = np.concatenate([start[p] + velocity[p] * f, size[p]])
            gt_lines.append(_mot_line(f, p + 1, box))
            roll = rng.random()
            if roll < 0.08:
                continue  # a miss, usually inside a track: a fragmentation
            if roll < 0.11:
                pred_id[p] = next_pred_id  # the tracker loses the person and starts anew
                next_pred_id += 1
            jitter = rng.normal(0.0, 4.0, size=4)
            if rng.random() < 0.1:
                jitter[:2] += rng.choice([-1, 1], size=2) * size[p] * 0.2  # near IoU 0.5
            pred_lines.append(_mot_line(f, pred_id[p], box + jitter))
        if f % 15 == 0:
            a, b = rng.choice(people, size=2, replace=False)
            pred_id[a], pred_id[b] = pred_id[b], pred_id[a]  # an identity swap
        for _ in range(rng.poisson(0.4)):
            clutter = np.concatenate([rng.uniform([0, 100], [600, 300]), rng.uniform(30, 120, 2)])
            pred_lines.append(_mot_line(f, 900 + int(rng.integers(0, 5)), clutter))
    # One clutter ID per frame at most: a tracker never reports one ID twice in a frame.
    seen, unique_pred = set(), []
    for line in pred_lines:
        key = tuple(line.split(",")[:2])
        if key not in seen:
            seen.add(key)
            unique_pred.append(line)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gt.txt").write_text("\n".join(gt_lines) + "\n")
    (folder / "test.txt").write_text("\n".join(unique_pred) + "\n")


def reference_figures(folder: Path) -> dict[str, float]:
    gt = mm.io.loadtxt(str(folder / "gt.txt"), fmt="mot15-2D")
    test = mm.io.loadtxt(str(folder / "test.txt"), fmt="mot15-2D")
    accumulator = mm.utils.compare_to_groundtruth(gt, test, "iou", distth=0.5)
    summary = mm.metrics.create().compute(accumulator, metrics=list(METRICS), name=folder.name)
    return {name: float(summary[name].iloc[0]) for name in METRICS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURES / "motmetrics_reference.json")
    args = parser.parse_args()
    data = Path(mm.__file__).parent / "data"
    for name in SHIPPED:
        (FIXTURES / "mot" / name).mkdir(parents=True, exist_ok=True)
        for file in ("gt.txt", "test.txt"):
            shutil.copyfile(data / name / file, FIXTURES / "mot" / name / file)
    write_synthetic(FIXTURES / "mot" / SYNTHETIC)
    figures = {name: reference_figures(FIXTURES / "mot" / name) for name in (*SHIPPED, SYNTHETIC)}
    record = {
        "source": f"py-motmetrics {mm.__version__}, compare_to_groundtruth(iou, distth=0.5)",
        "motp_convention": "mean of 1 - IoU over matched pairs",
        "sequences": figures,
    }
    args.out.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    for name, values in figures.items():
        print(name, {k: round(v, 6) for k, v in values.items()})


if __name__ == "__main__":
    main()
