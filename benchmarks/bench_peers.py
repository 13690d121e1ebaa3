"""Our tracking against other trackers on the same detections: the `trackers` package.

`trackers` (PyPI, Apache-2.0) holds clean-room SORT, ByteTrack, OC-SORT and BoT-SORT. Each
runs on the lite backend's own person detections (SSDLite with tiles, every frame, scores
down to 0.1 so that ByteTrack's second, low-score association has something to use), in its
own environment (`.venv-peers`, made by `bash tools/setup_peers.sh`: the package wants the
non-headless OpenCV and numpy 2). Their tracks are scored exactly as ours (MOTA, IDF1, ID
switches, recall against the full boxes of people at least half visible); our variants'
figures come from `benchmarks/results/ablations.json` (`ram-core eval bench`), run on the
same scenes. "detector alone": the share of counted people that a detection of score >= 0.5
covers (IoU >= 0.5), the ceiling of every box-only tracker here.

    .venv/bin/python benchmarks/bench_peers.py [--scenes benchmarks/scenes] [--frames N]

Writes benchmarks/results/peers.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PEERS = ("SORTTracker", "ByteTrackTracker", "OCSORTTracker", "BoTSORTTracker")
OUR_VARIANTS = ("full", "no_segfollow", "detect_every_frame")
DETECTION_FLOOR = 0.1


def _worker(video: str, detections_path: str, out_path: str, fps: float) -> None:
    """In .venv-peers: every peer tracker over the clip; rows saved per tracker."""
    import cv2
    import supervision as sv
    import trackers

    stored = np.load(detections_path)
    frames, boxes, scores = stored["frame"], stored["box_xyxy"], stored["score"]
    out: dict[str, np.ndarray] = {}
    for name in PEERS:
        tracker = getattr(trackers, name)(frame_rate=fps)
        capture = cv2.VideoCapture(video)
        rows = []
        index = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            here = frames == index
            detections = sv.Detections(
                xyxy=boxes[here].astype(np.float32).reshape(-1, 4),
                confidence=scores[here].astype(np.float32),
                class_id=np.zeros(int(here.sum()), dtype=int),
            )
            tracked = tracker.update(detections, frame=bgr)
            for box, track_id in zip(tracked.xyxy, tracked.tracker_id, strict=True):
                if track_id is not None and int(track_id) >= 0:
                    rows.append((index, int(track_id), *map(float, box)))
            index += 1
        capture.release()
        table = np.array(rows, dtype=np.float64).reshape(-1, 6)
        out[f"{name}_frame"] = table[:, 0].astype(np.int64)
        out[f"{name}_track_id"] = table[:, 1].astype(np.int64)
        out[f"{name}_box_xyxy"] = table[:, 2:]
    np.savez(out_path, **out)


def detect_every_frame(scene, frames: int) -> dict[str, np.ndarray]:
    """The lite detector on every frame, scores down to DETECTION_FLOOR."""
    from ram_core.detect.lite import DetectorConfig, make_lite_detector
    from ram_core.video.reader import iter_frames

    detector = make_lite_detector(DetectorConfig(score_threshold=DETECTION_FLOOR))
    rows = []
    for frame in iter_frames(scene.video_path):
        if frame.index >= frames:
            break
        rows += [(frame.index, d.score, *d.box_xyxy) for d in detector.detect(frame)]
    table = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return {"frame": table[:, 0].astype(np.int64), "score": table[:, 1], "box_xyxy": table[:, 2:]}


def detector_recall(detections: dict[str, np.ndarray], gt, frames: int) -> float:
    """Share of counted people (>= 50% visible) a detection of score >= 0.5 covers."""
    from ram_core.eval.ablations import recall_by_height

    strong = detections["score"] >= 0.5
    rows = {
        "frame": detections["frame"][strong],
        "track_id": np.zeros(int(strong.sum()), dtype=np.int64),
        "box_xyxy": detections["box_xyxy"][strong],
    }
    pairs = recall_by_height(rows, gt, frames)
    found, total = (sum(p[i] for p in pairs) for i in (0, 1))
    return found / total if total else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default=str(ROOT / "benchmarks" / "scenes"))
    parser.add_argument("--frames", type=int, help="only the first N frames of each scene")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        video, detections, out, fps = args.worker
        _worker(video, detections, out, float(fps))
        return
    if not PEERS_PYTHON.is_file():
        sys.exit("error: .venv-peers is missing; run `bash tools/setup_peers.sh` first")

    from ram_core.eval.ablations import score_tracking
    from ram_core.eval.bench_scenes import list_scenes, load_scene

    ours_path = RESULTS / "ablations.json"
    ours = json.loads(ours_path.read_text()) if ours_path.is_file() else {"results": []}
    # Our figures are for whole scenes: with --frames they would not compare.
    ours_rows = (
        {} if args.frames else {(r["scene"], r["variant"]): r["row"] for r in ours["results"]}
    )
    lines = [
        "# Our tracking against the `trackers` package, on the same detections",
        "",
        "MOTA / IDF1 / ID switches / recall, each scene; peers on the lite detector's boxes "
        f"(every frame, scores >= {DETECTION_FLOOR}); ours from `ablations.json`. "
        "Reproduce: `bash tools/setup_peers.sh && .venv/bin/python benchmarks/bench_peers.py`.",
        "",
        "| scene | tracker | MOTA | IDF1 | ID sw. | recall |",
        "|---|---|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for path in list_scenes(args.scenes):
            scene = load_scene(path)
            frames = min(scene.gt.num_frames, args.frames or scene.gt.num_frames)
            print(f"{scene.name}: detecting ...", file=sys.stderr)
            detections = detect_every_frame(scene, frames)
            det_file, out_file = Path(tmp) / "det.npz", Path(tmp) / "peers.npz"
            np.savez(det_file, **detections)
            subprocess.run(
                [str(PEERS_PYTHON), __file__, "--worker", str(scene.video_path), str(det_file),
                 str(out_file), str(scene.fps)],
                check=True, cwd=ROOT,
            )  # fmt: skip
            peers = np.load(out_file)
            for variant in OUR_VARIANTS:
                row = ours_rows.get((scene.name, variant))
                if row:
                    lines.append(
                        f"| {scene.name} | ours: {variant} | {_pct(row['mota'])} | "
                        f"{_pct(row['idf1'])} | {row['id_switches']:.0f} | "
                        f"{_pct(row.get('recall'))} |"
                    )
            for name in PEERS:
                tracks = {
                    "frame": peers[f"{name}_frame"],
                    "track_id": peers[f"{name}_track_id"],
                    "box_xyxy": peers[f"{name}_box_xyxy"],
                }
                mot = score_tracking(tracks, scene.gt, frames)
                lines.append(
                    f"| {scene.name} | {name.removesuffix('Tracker')} | {_pct(mot.mota)} | "
                    f"{_pct(mot.idf1)} | {mot.num_switches} | {_pct(mot.recall)} |"
                )
            recall = detector_recall(detections, scene.gt, frames)
            lines.append(f"| {scene.name} | detector alone | | | | {_pct(recall)} |")
    lines.append("")
    table = "\n".join(lines)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "peers.md").write_text(table)
    print(table)


def _pct(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{100 * value:.1f}%"


if __name__ == "__main__":
    main()
