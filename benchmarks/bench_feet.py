"""Foot skate before and after the foot clean-up, on the rendered benchmark scenes.

    .venv/bin/python benchmarks/bench_feet.py [--scenes benchmarks/scenes] [--frames 96]

Runs the lite pipeline on each scene (first ``--frames`` frames) with the clean-up off, so
the result holds the world frame, the contact flags and the unplanted motion, then plants
the feet as the pipeline does (``ram_core.motion.feet.plant_feet``, default settings) and
compares, on the contact frames:

- skate: how far a foot in contact moves over the floor from one frame to the next (cm);
- soles: how far the sole of a foot in contact is from z = 0 (cm);
- image shift: how far the joints move on the image (px), median and 95th percentile;
- ankle error against the truth's ankles on the image (px), before and after;
- contact precision and recall against contacts found the same way on the truth's feet
  (rows paired with true people frame by frame, as the ablations pair them).

The contact thresholds were chosen on camera_pan, crossing and hidden_person; the other
scenes are held out. Writes ``benchmarks/results/feet.md`` and ``feet.png`` (one person's
ankle paths over the floor, before and after).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ram_core.body.skeleton import REST_JOINTS_M, forward_kinematics  # noqa: E402
from ram_core.config import RunConfig  # noqa: E402
from ram_core.errors import BadInputError  # noqa: E402
from ram_core.eval.ablations import match_tracks_to_people  # noqa: E402
from ram_core.eval.bench_scenes import list_scenes, load_scene  # noqa: E402
from ram_core.io.result import load_result  # noqa: E402
from ram_core.motion.feet import (  # noqa: E402
    LEG_JOINTS,
    FootConfig,
    detect_contacts,
    plant_feet,
    sole_heights,
)
from ram_core.pipeline import run_pipeline  # noqa: E402

ANKLES = [leg[2] for leg in LEG_JOINTS]
# The scenes the contact thresholds were chosen on; every other scene is held out.
TUNING = ("camera_pan", "crossing", "hidden_person")


def joints_of(tracks: dict[str, np.ndarray]) -> np.ndarray:
    joints, _ = forward_kinematics(
        tracks["global_orient"], tracks["body_pose"], tracks["transl"], REST_JOINTS_M
    )
    return joints


def to_world(joints: np.ndarray, camera_to_world: np.ndarray) -> np.ndarray:
    return joints @ camera_to_world[:3, :3].T + camera_to_world[:3, 3]


def skate_cm(world: np.ndarray, contacts: np.ndarray, tracks: dict[str, np.ndarray]) -> float:
    """Mean floor distance (cm) a foot in contact moves between consecutive frames."""
    consecutive = (np.diff(tracks["track_id"]) == 0) & (np.diff(tracks["frame"]) == 1)
    steps = []
    for foot, ankle in enumerate(ANKLES):
        both = consecutive & contacts[1:, foot] & contacts[:-1, foot]
        steps.append(np.linalg.norm(np.diff(world[:, ankle, :2], axis=0), axis=1)[both])
    steps = np.concatenate(steps)
    return 100 * float(steps.mean()) if steps.size else float("nan")


def matched_people(tracks: dict[str, np.ndarray], gt) -> np.ndarray:
    """(N,) the true person each row is paired with (-1: none), by the ablations' own
    per-frame pairing of boxes (``match_tracks_to_people``)."""
    pairs = match_tracks_to_people(tracks, gt.box_visible_xyxy, gt.visible_fraction > 0)
    by_row = {(frame, track): person for (frame, person), track in pairs.items()}
    return np.array(
        [
            by_row.get((int(frame), int(track)), -1)
            for frame, track in zip(tracks["frame"], tracks["track_id"], strict=True)
        ],
        dtype=np.int64,
    )


def truth_rows(tracks, gt, fps: float, camera_centre: np.ndarray):
    """Per row: the paired true person's contacts (N, 2) and ankle pixels (N, 2, 2), and
    whether the row is paired (N,)."""
    people = matched_people(tracks, gt)
    matched = people >= 0
    contacts = np.zeros((len(people), 2), dtype=bool)
    pixels = np.full((len(people), 2, 2), np.nan)
    for person in np.unique(people[matched]):
        path = gt.joints_world[:, person].astype(np.float64)
        seen = np.flatnonzero(np.isfinite(path).all(axis=(1, 2)))
        truth = np.zeros((len(path), 2), dtype=bool)
        truth[seen] = detect_contacts(path[seen], camera_centre, fps, FootConfig())
        rows = np.flatnonzero(people == person)
        frames = tracks["frame"][rows]
        contacts[rows] = truth[frames]
        uv = gt.joints_cam[frames, person][:, ANKLES].astype(np.float64) @ gt.K.T.astype(float)
        pixels[rows] = uv[..., :2] / uv[..., 2:]
    return contacts, pixels, matched


def run_scene(scene, frames: int, work: Path) -> dict:
    config = RunConfig()
    config = dataclasses.replace(
        config,
        pipeline=dataclasses.replace(config.pipeline, preview=False),
        feet=FootConfig(enabled=False),
    )
    out = work / f"{scene.name}.ram"
    run_pipeline(scene.video_path, out, backend="lite", end=frames, config=config)
    result = load_result(out)
    manifest, before = result.manifest, result.tracks
    camera_to_world = np.array(manifest["world"]["camera_to_world"])
    fps, focal = manifest["source_video"]["fps"], manifest["camera"]["fx"]
    started = time.perf_counter()
    after = plant_feet(before, camera_to_world, focal, fps, FootConfig())
    seconds = time.perf_counter() - started
    contacts = after["foot_contact"]
    joints_before, joints_after = joints_of(before), joints_of(after)
    world_before = to_world(joints_before, camera_to_world)
    world_after = to_world(joints_after, camera_to_world)
    camera = manifest["camera"]
    intrinsics = np.array(
        [[camera["fx"], 0, camera["cx"]], [0, camera["fy"], camera["cy"]], [0, 0, 1.0]]
    )

    def project(joints):
        uv = joints @ intrinsics.T
        return uv[..., :2] / uv[..., 2:]

    shift = np.linalg.norm(project(joints_after) - project(joints_before), axis=-1)
    centre = -scene.gt.R_world_to_cam[0].T.astype(float) @ scene.gt.t_world_to_cam[0]
    truth_contacts, truth_ankles, matched = truth_rows(before, scene.gt, fps, centre)
    ankle_error = [
        np.linalg.norm(project(j)[:, ANKLES] - truth_ankles, axis=-1)[matched]
        for j in (joints_before, joints_after)
    ]
    estimated = contacts[matched]
    truth = truth_contacts[matched]
    return {
        "rows": len(before["track_id"]),
        "contact": float(contacts.mean()),
        "precision": float((estimated & truth).sum() / max(estimated.sum(), 1)),
        "recall": float((estimated & truth).sum() / max(truth.sum(), 1)),
        "skate_before": skate_cm(world_before, contacts, before),
        "skate_after": skate_cm(world_after, contacts, after),
        "soles_before": 100 * float(np.median(np.abs(sole_heights(world_before))[contacts])),
        "soles_after": 100 * float(np.median(np.abs(sole_heights(world_after))[contacts])),
        "shift_median": float(np.median(shift)),
        "shift_p95": float(np.percentile(shift, 95)),
        "ankle_before": float(np.nanmedian(ankle_error[0])),
        "ankle_after": float(np.nanmedian(ankle_error[1])),
        "ms_per_1000_rows": 1000 * seconds / max(len(before["track_id"]), 1) * 1000,
        "plot": (world_before, world_after, contacts, before),
    }


def plot(path: Path, name: str, data) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    world_before, world_after, contacts, tracks = data
    track = np.bincount(tracks["track_id"], weights=contacts.any(axis=1)).argmax()
    rows = tracks["track_id"] == track
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharex=True, sharey=True)
    for axis, world, title in ((axes[0], world_before, "before"), (axes[1], world_after, "after")):
        for foot, (ankle, colour) in enumerate(
            zip(ANKLES, ("tab:blue", "tab:orange"), strict=True)
        ):
            ankle_path = world[rows, ankle, :2]
            axis.plot(*ankle_path.T, color=colour, lw=0.8, label=("left", "right")[foot] + " ankle")
            planted = contacts[rows, foot]
            axis.scatter(*ankle_path[planted].T, color=colour, s=8)
        axis.set_title(f"{name}, track {track}: {title} the clean-up")
        axis.set_xlabel("x (m)")
        axis.set_aspect("equal", adjustable="box")
    axes[0].set_ylabel("y (m)")
    axes[0].legend(loc="best", fontsize=8)
    figure.suptitle("Ankles over the floor; dots: frames in contact")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=Path, default=REPO / "benchmarks" / "scenes")
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks/results/feet.md")
    args = parser.parse_args()
    try:
        folders = list_scenes(args.scenes)
    except BadInputError as exc:
        sys.exit(str(exc))
    rows = []
    with tempfile.TemporaryDirectory(prefix="ram-bench-feet-") as work:
        for folder in folders:
            scene = load_scene(folder)
            result = run_scene(scene, min(args.frames, scene.frame_count), Path(work))
            rows.append((scene.name, result))
            print(scene.name, {k: v for k, v in result.items() if k != "plot"}, flush=True)
    lines = [
        "# Foot skate before and after the foot clean-up",
        "",
        f"Lite pipeline, first {args.frames} frames of each scene, default `feet` settings; "
        "everything on the frames a foot is in contact. Skate: cm a foot in contact moves "
        "over the floor per frame. Soles: median |height| of a contacting sole over z = 0. "
        "Image shift: how far the clean-up moves the joints on the image. Ankle error: "
        "median distance on the image to the truth's ankles. Contacts against the truth's "
        "feet, found the same way. camera_pan's camera turns, which the world frame does not "
        "follow yet: its feet move in the world as the camera turns.",
        "",
        "| scene | rows | in contact | precision | recall | skate cm before | after "
        "| soles cm before | after | image shift px median | p95 | ankle err px before "
        "| after | ms / 1000 rows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        label = name if name in TUNING else f"{name} (held out)"
        lines.append(
            f"| {label} | {r['rows']} | {r['contact']:.0%} | {r['precision']:.2f} "
            f"| {r['recall']:.2f} | {r['skate_before']:.1f} | {r['skate_after']:.1f} "
            f"| {r['soles_before']:.1f} | {r['soles_after']:.1f} | {r['shift_median']:.1f} "
            f"| {r['shift_p95']:.1f} | {r['ankle_before']:.1f} | {r['ankle_after']:.1f} "
            f"| {r['ms_per_1000_rows']:.0f} |"
        )
    for label, chosen in (
        ("tuning scenes", [r for n, r in rows if n in TUNING]),
        ("held-out scenes", [r for n, r in rows if n not in TUNING]),
    ):
        if chosen:
            lines.append(
                f"\n{label.capitalize()}: median skate "
                f"{np.nanmedian([r['skate_before'] for r in chosen]):.1f} -> "
                f"{np.nanmedian([r['skate_after'] for r in chosen]):.1f} cm per contact frame, "
                f"image shift p95 {np.median([r['shift_p95'] for r in chosen]):.1f} px, "
                f"contact precision {np.median([r['precision'] for r in chosen]):.2f}."
            )
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    picked = max(rows, key=lambda row: row[1]["contact"])
    plot(args.output.with_suffix(".png"), picked[0], picked[1]["plot"])


if __name__ == "__main__":
    main()
