"""The lite person detectors frame by frame, without tracking: SSDLite (the default) against
YOLOv4-tiny (``detector.kind: yolov4_tiny``).

Every frame of every rendered scene is detected alone. A person counts when they are in the
frame and at least half visible; they are found when a detection pairs with their full box
(one to one per frame, IoU >= 0.5), as the tracking benchmark's recall by height counts
them. A false positive is a detection that pairs with nobody in the frame, however hidden.
Each detector runs in a fresh process, so its peak memory is its own; the real clip
(``benchmarks/data/vtest.avi``, 768 x 576, fetched by ``bench_real_clip.py``) gives the time
per frame at that size.

    .venv/bin/python benchmarks/bench_detectors.py [--scenes DIR ...]

Writes benchmarks/results/detectors.md and detectors.png (recall by person height).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SCENES = ROOT / "benchmarks" / "scenes"
REAL_CLIP = ROOT / "benchmarks" / "data" / "vtest.avi"
REAL_CLIP_FRAMES = 100
KINDS = ("ssdlite", "yolov4_tiny")


def _worker(kind: str, scene_dirs: list[str], frames_per_scene: int, clip_frames: int) -> dict:
    """Detects every frame; returns per-scene counts, time per frame and peak memory."""
    from scipy.optimize import linear_sum_assignment

    from ram_core.detect.boxes import clip_box, iou_matrix
    from ram_core.detect.lite import DetectorConfig, make_lite_detector
    from ram_core.eval.ablations import HEIGHT_BINS_PX, recall_by_height
    from ram_core.eval.bench_scenes import resolve_scenes
    from ram_core.video.reader import iter_frames

    detector = make_lite_detector(DetectorConfig(kind=kind, allow_hog_fallback=False))
    scenes = {}
    seconds = frames_seen = 0.0
    for folder in scene_dirs:
        for scene in resolve_scenes(folder, None):
            gt = scene.gt
            rows: dict[str, list] = {"frame": [], "box_xyxy": []}
            false_positives = 0
            full = clip_box(gt.box_full_xyxy, gt.width, gt.height)
            frames = min(gt.num_frames, frames_per_scene)
            for frame in iter_frames(scene.video_path, 0, frames):
                t0 = time.perf_counter()
                found = detector.detect(frame)
                seconds += time.perf_counter() - t0
                frames_seen += 1
                boxes = np.array([d.box_xyxy for d in found]).reshape(-1, 4)
                rows["frame"] += [frame.index] * len(boxes)
                rows["box_xyxy"] += list(boxes)
                present = np.flatnonzero(gt.in_frame[frame.index])
                paired = 0
                if len(boxes) and present.size:
                    iou = iou_matrix(boxes, full[frame.index, present])
                    r, c = linear_sum_assignment(-iou)
                    paired = int(np.count_nonzero(iou[r, c] >= 0.5))
                false_positives += len(boxes) - paired
            table = {
                "frame": np.asarray(rows["frame"], dtype=np.int64),
                "box_xyxy": np.asarray(rows["box_xyxy"], dtype=np.float64).reshape(-1, 4),
            }
            table["occluded"] = np.zeros(len(table["frame"]), dtype=bool)
            by_height = recall_by_height(table, gt, frames)
            scenes[f"{Path(folder).name}/{scene.name}"] = {
                "by_height": by_height,
                "false_positives": false_positives,
                "frames": frames,
            }
    clip_seconds = None
    if REAL_CLIP.is_file() and clip_frames > 0:
        t0 = time.perf_counter()
        for frame in iter_frames(REAL_CLIP, 0, clip_frames):
            detector.detect(frame)
        clip_seconds = time.perf_counter() - t0
    return {
        "kind": kind,
        "scenes": scenes,
        "ms_per_frame": 1000 * seconds / max(frames_seen, 1),
        "real_clip_ms_per_frame": (
            None if clip_seconds is None else 1000 * clip_seconds / clip_frames
        ),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "height_bins": [list(b) for b in HEIGHT_BINS_PX],
    }


def run_kind(kind: str, scene_dirs: list[Path], frames_per_scene: int, clip_frames: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(frames_per_scene), str(clip_frames),
         *map(str, scene_dirs)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _bins(run: dict) -> list[tuple[int, int]]:
    totals = np.zeros((len(run["height_bins"]), 2), dtype=np.int64)
    for scene in run["scenes"].values():
        totals += np.asarray(scene["by_height"], dtype=np.int64)
    return [tuple(map(int, row)) for row in totals]


def _label(low: float, high: float | None) -> str:
    return f"{low:.0f}+ px" if high is None or high == float("inf") else f"{low:.0f}-{high:.0f} px"


def _share(found: int, counted: int) -> str:
    return f"{100 * found / counted:.1f}% ({found}/{counted})" if counted else "-"


def _shown(folder: Path) -> str:
    return str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else str(folder)


def report(runs: list[dict], scene_dirs: list[Path]) -> str:
    labels = [_label(low, high) for low, high in runs[0]["height_bins"]]
    lines = [
        "# The lite person detectors, frame by frame (no tracking)",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, 2 cores. "
        f"Scenes: {', '.join(_shown(d) for d in scene_dirs)}. "
        "A person counts in a frame when at least half visible, and is found when a "
        "detection pairs with their full box at IoU >= 0.5. Reproduce: "
        "`.venv/bin/python benchmarks/bench_detectors.py`.",
        "",
        "## Recall by person height (full box), all scenes",
        "",
        "| detector | " + " | ".join(labels) + " | false positives / frame | ms / frame "
        "(scenes) | ms / frame (real clip, 768 x 576) | peak RSS (MB) |",
        "|---|" + "---:|" * (len(labels) + 4),
    ]
    for run in runs:
        frames = sum(s["frames"] for s in run["scenes"].values())
        fp = sum(s["false_positives"] for s in run["scenes"].values())
        clip = run["real_clip_ms_per_frame"]
        lines.append(
            f"| {run['kind']} | "
            + " | ".join(_share(*b) for b in _bins(run))
            + f" | {fp / max(frames, 1):.2f} | {run['ms_per_frame']:.0f} | "
            + ("-" if clip is None else f"{clip:.0f}")
            + f" | {run['peak_mb']:.0f} |"
        )
    lines += [
        "",
        "## Recall per scene (all heights) and false positives",
        "",
        "| scene | " + " | ".join(f"{run['kind']}" for run in runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for name in runs[0]["scenes"]:
        cells = []
        for run in runs:
            scene = run["scenes"][name]
            found = sum(b[0] for b in scene["by_height"])
            counted = sum(b[1] for b in scene["by_height"])
            cells.append(f"{_share(found, counted)}, {scene['false_positives']} FP")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "`detectors.png`: recall by person height.", ""]
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [_label(low, high) for low, high in runs[0]["height_bins"]]
    x = np.arange(len(labels))
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, run in enumerate(runs):
        recall = [f / c if c else np.nan for f, c in _bins(run)]
        ax.bar(x + (k - (len(runs) - 1) / 2) * width, recall, width, label=run["kind"])
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("recall (IoU >= 0.5)")
    ax.set_xlabel("person height in the image")
    ax.set_title("Person detectors, frame by frame, on the rendered scenes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--scenes", nargs="+", type=Path, default=[SCENES])
    parser.add_argument("--frames-per-scene", type=int, default=10**6)
    parser.add_argument("--clip-frames", type=int, default=REAL_CLIP_FRAMES)
    args = parser.parse_args()
    if args.worker:
        kind, frames, clip_frames, *folders = args.worker
        print(json.dumps(_worker(kind, folders, int(frames), int(clip_frames))))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    scene_dirs = [d.resolve() for d in args.scenes]
    runs = []
    for kind in KINDS:
        print(f"running: {kind} ...", file=sys.stderr)
        runs.append(run_kind(kind, scene_dirs, args.frames_per_scene, args.clip_frames))
    text = report(runs, scene_dirs)
    (RESULTS / "detectors.md").write_text(text)
    plot(runs, RESULTS / "detectors.png")
    print(text)


if __name__ == "__main__":
    main()
