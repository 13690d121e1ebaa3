"""The Predictor against holding the last pose, by how long a person stays hidden.

Motion: the lite reconstructions of the first set of rendered scenes (the pipeline is run on
each once). In every track, stretches that were observed throughout are cut out: the first
``HISTORY`` frames stay observed, the next L frames are hidden (as if the person were behind
someone), and the Combiner's recursive path (``combiner.combine_track``, what the pipeline
and Blender run) fills them. The error is the mean joint distance, pelvis-centred, between
the filled pose and the reconstruction that was hidden, at L = 0.25, 0.5, 1 and 2 s.

Variants, in the same run: hold the last pose; the Predictor as it was (constant angular
velocity from the last two valid frames up to 5 apart, damped by 0.9 a frame, no pull
toward the track's usual pose); the Predictor with its current settings (no angular
velocity, the body relaxing toward the usual pose).
Writes benchmarks/results/predictor.md and predictor.png.

    .venv/bin/python benchmarks/bench_predictor.py [--scenes benchmarks/scenes]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# The scenes thresholds were chosen on; the second set (small_people, back_views,
# light_clothes, long_occlusion) is left for the held-out check.
FIRST_SET = (
    "crossing", "hidden_person", "hidden_pillar", "lookalike", "fast_motion", "enter_leave",
    "camera_pan",
)  # fmt: skip
HISTORY = 12
LENGTHS_S = (0.25, 0.5, 1.0, 2.0)
STRIDE = 6


def track_motions(result) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per track: recon pose (T, 24, 3), recon transl (T, 3), observed (T,), frame order."""
    tracks = []
    for track_id in result.track_ids():
        rows = result.track(int(track_id))
        pose = np.concatenate(
            [rows["recon_global_orient"][:, None], rows["recon_body_pose"]], axis=1
        ).astype(np.float64)
        observed = rows["recon_valid"] & ~rows["occluded"]
        tracks.append((pose, rows["recon_transl"].astype(np.float64), observed))
    return tracks


def joints_of(pose: np.ndarray) -> np.ndarray:
    """(N, 24, 3) axis-angle -> (N, 24, 3) pelvis-centred joints on the built-in skeleton."""
    from ram_core.body.rotations import axis_angle_to_matrix
    from ram_core.body.skeleton import forward_kinematics_matrices

    joints, _ = forward_kinematics_matrices(axis_angle_to_matrix(pose), np.zeros(3))
    return joints - joints[..., :1, :]


def fill(pose, transl, observed, config) -> np.ndarray:
    """The combined pose with the gate shut on unobserved frames."""
    from ram_core.motion.combiner import combine_track

    filled, _, _, _ = combine_track(pose, transl, observed.astype(np.float64), observed, config)
    return filled


def hold(pose: np.ndarray, observed: np.ndarray) -> np.ndarray:
    last = np.maximum.accumulate(np.where(observed, np.arange(len(observed)), 0))
    return pose[last]


def evaluate(tracks, fps: float, variants: dict) -> dict[str, dict[float, list[float]]]:
    errors: dict[str, dict[float, list[float]]] = {name: {} for name in ("hold", *variants)}
    for seconds in LENGTHS_S:
        length = max(1, round(seconds * fps))
        for pose, transl, observed in tracks:
            T = len(observed)
            for start in range(HISTORY, T - length + 1, STRIDE):
                if not observed[start - HISTORY : start + length].all():
                    continue
                hidden = observed.copy()
                hidden[start : start + length] = False
                truth = joints_of(pose[start : start + length])
                filled = {"hold": hold(pose, hidden)}
                for name, config in variants.items():
                    filled[name] = fill(pose, transl, hidden, config)
                for name, poses in filled.items():
                    ours = joints_of(poses[start : start + length])
                    error = np.linalg.norm(ours - truth, axis=-1).mean()
                    errors[name].setdefault(seconds, []).append(1000.0 * float(error))
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default=str(ROOT / "benchmarks" / "scenes"))
    parser.add_argument("--frames", type=int, help="only the first N frames of each scene")
    args = parser.parse_args()
    results = RESULTS

    from ram_core.config import PipelineConfig, RunConfig
    from ram_core.eval.bench_scenes import list_scenes, load_scene
    from ram_core.io.result import load_result
    from ram_core.motion.predictor import PredictorConfig
    from ram_core.pipeline import run_pipeline

    current = PredictorConfig()
    variants = {
        "constant velocity, damped 0.9 (before)": dataclasses.replace(
            current, damping=0.9, max_velocity_gap=5, relax_frames=0.0
        ),
        "current Predictor": current,
    }
    scenes = [p for p in list_scenes(args.scenes) if p.name in FIRST_SET]
    totals: dict[str, dict[float, list[float]]] = {n: {} for n in ("hold", *variants)}
    with tempfile.TemporaryDirectory() as tmp:
        for path in scenes:
            scene = load_scene(path)
            print(f"running the pipeline on {scene.name} ...", file=sys.stderr)
            out = Path(tmp) / f"{scene.name}.ram"
            config = RunConfig(
                pipeline=PipelineConfig(preview=False, focal_px=float(scene.gt.K[0, 0]))
            )
            run_pipeline(scene.video_path, out, backend="lite", end=args.frames, config=config)
            errors = evaluate(track_motions(load_result(out)), scene.fps, variants)
            for name, by_length in errors.items():
                for seconds, values in by_length.items():
                    totals[name].setdefault(seconds, []).extend(values)

    header = " | ".join(f"{s:g} s" for s in LENGTHS_S)
    lines = [
        "# The Predictor against holding the last pose",
        "",
        "Mean joint error (mm, pelvis-centred) over the hidden frames, against the "
        "reconstruction that was hidden; stretches of the lite reconstructions of the "
        f"first scene set ({', '.join(p.name for p in scenes)}), every {STRIDE} frames, "
        f"{HISTORY} observed frames before each. Reproduce: "
        "`.venv/bin/python benchmarks/bench_predictor.py`.",
        "",
        f"| hidden for | {header} |",
        "|---|" + "---:|" * len(LENGTHS_S),
    ]
    for name, by_length in totals.items():
        cells = " | ".join(
            f"{np.mean(by_length[s]):.1f}" if by_length.get(s) else "-" for s in LENGTHS_S
        )
        lines.append(f"| {name} | {cells} |")
    counts = " | ".join(str(len(totals["hold"].get(s, []))) for s in LENGTHS_S)
    lines += [f"| stretches | {counts} |", ""]
    table = "\n".join(lines)
    results.mkdir(parents=True, exist_ok=True)
    (results / "predictor.md").write_text(table)
    print(table)
    _plot(totals, results)


def _plot(totals: dict[str, dict[float, list[float]]], results: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for name, by_length in totals.items():
        lengths = [s for s in LENGTHS_S if by_length.get(s)]
        axes.plot(lengths, [np.mean(by_length[s]) for s in lengths], marker="o", label=name)
    axes.set_xlabel("time hidden (s)")
    axes.set_ylabel("mean joint error while hidden (mm)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(results / "predictor.png", dpi=110)


if __name__ == "__main__":
    main()
