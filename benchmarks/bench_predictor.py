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

The learned Predictor (``ram_core.motion.learned``) joins as a row with its exported
weights, ``--learned-weights FILE``; ``--train-learned FILE`` first trains one on the
first set's reconstructions (``ram_core.train.predictor``, ``--train-steps`` steps) and
exports it there. With a learned row the second scene set (held out: never trained on)
gets a table of its own. ``--cache DIR`` keeps the reconstructions for the next run:

    .venv/bin/python benchmarks/bench_predictor.py --cache /tmp/recon \
        --train-learned benchmarks/results/learned_predictor.npz --train-steps 1500
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
    from ram_core.train.motion_data import recon_motion

    return [recon_motion(result.track(int(track_id))) for track_id in result.track_ids()]


def joints_of(pose: np.ndarray) -> np.ndarray:
    """(N, 24, 3) axis-angle -> (N, 24, 3) pelvis-centred joints on the built-in skeleton."""
    from ram_core.body.rotations import axis_angle_to_matrix
    from ram_core.body.skeleton import forward_kinematics_matrices

    joints, _ = forward_kinematics_matrices(axis_angle_to_matrix(pose), np.zeros(3))
    return joints - joints[..., :1, :]


def fill(pose, transl, observed, config, learned=None) -> np.ndarray:
    """The combined pose with the gate shut on unobserved frames. ``learned``: the learned
    Predictor's weights when ``config`` names one (read once, not per stretch)."""
    from ram_core.motion.combiner import combine_track

    gate = observed.astype(np.float64)
    filled, _, _, _ = combine_track(pose, transl, gate, observed, config, learned)
    return filled


def hold(pose: np.ndarray, observed: np.ndarray) -> np.ndarray:
    last = np.maximum.accumulate(np.where(observed, np.arange(len(observed)), 0))
    return pose[last]


def evaluate(
    tracks, fps: float, variants: dict, learned=None
) -> dict[str, dict[float, list[float]]]:
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
                    weights = learned if config.kind == "learned" else None
                    filled[name] = fill(pose, transl, hidden, config, weights)
                for name, poses in filled.items():
                    ours = joints_of(poses[start : start + length])
                    error = np.linalg.norm(ours - truth, axis=-1).mean()
                    errors[name].setdefault(seconds, []).append(1000.0 * float(error))
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default=str(ROOT / "benchmarks" / "scenes"))
    parser.add_argument("--frames", type=int, help="only the first N frames of each scene")
    parser.add_argument("--cache", help="keep (and reuse) the scenes' reconstructions here")
    parser.add_argument("--learned-weights", help="a learned Predictor's exported .npz")
    parser.add_argument(
        "--train-learned", help="train a learned Predictor on the first set, export it here"
    )
    parser.add_argument("--train-steps", type=int, default=1500)
    parser.add_argument("--results", default=str(RESULTS), help="where the table goes")
    args = parser.parse_args()
    if args.learned_weights and args.train_learned:
        parser.error("give --learned-weights or --train-learned, not both")
    results = Path(args.results)

    from ram_core.eval.bench_scenes import list_scenes
    from ram_core.io.result import load_result
    from ram_core.motion.predictor import PredictorConfig
    from ram_core.train.motion_data import reconstruct_scene

    current = PredictorConfig()
    variants = {
        "constant velocity, damped 0.9 (before)": dataclasses.replace(
            current, damping=0.9, max_velocity_gap=5, relax_frames=0.0
        ),
        "current Predictor": current,
    }
    learned_path = args.learned_weights or args.train_learned
    scenes = [p for p in list_scenes(args.scenes) if learned_path or p.name in FIRST_SET]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        results_of = {}
        for path in scenes:
            print(f"reconstructing {path.name} (lite pipeline) ...", file=sys.stderr)
            results_of[path.name] = reconstruct_scene(path, cache, args.frames)
        learned = None
        if learned_path:
            learned = _learned_weights(args, [results_of[n] for n in FIRST_SET if n in results_of])
            variants["learned Predictor"] = dataclasses.replace(
                current, kind="learned", weights=str(learned_path)
            )
        sets = {"first": [n for n in results_of if n in FIRST_SET]}
        if learned_path:
            sets["held_out"] = [n for n in results_of if n not in FIRST_SET]
        totals_of = {}
        for label, names in sets.items():
            totals: dict[str, dict[float, list[float]]] = {n: {} for n in ("hold", *variants)}
            for name in names:
                result = load_result(results_of[name])
                fps = float(result.manifest["source_video"]["fps"])
                errors = evaluate(track_motions(result), fps, variants, learned)
                for variant, by_length in errors.items():
                    for seconds, values in by_length.items():
                        totals[variant].setdefault(seconds, []).extend(values)
            totals_of[label] = (names, totals)

    names, totals = totals_of["first"]
    lines = [
        "# The Predictor against holding the last pose",
        "",
        "Mean joint error (mm, pelvis-centred) over the hidden frames, against the "
        "reconstruction that was hidden; stretches of the lite reconstructions of the "
        f"first scene set ({', '.join(names)}), every {STRIDE} frames, "
        f"{HISTORY} observed frames before each. Reproduce: "
        "`.venv/bin/python benchmarks/bench_predictor.py`.",
        "",
        *_table(totals),
    ]
    if "held_out" in totals_of:
        held_names, held_totals = totals_of["held_out"]
        source = f"`{args.train_learned}`, trained " if args.train_learned else ""
        lines += [
            f"The learned Predictor ({source}on the first set's reconstructions, "
            f"{'--train-steps ' + str(args.train_steps) if args.train_learned else 'given'}) "
            "has seen the first set; the second set is held out "
            f"({', '.join(held_names)}):",
            "",
            *_table(held_totals),
        ]
    table = "\n".join(lines)
    results.mkdir(parents=True, exist_ok=True)
    (results / "predictor.md").write_text(table)
    print(table)
    _plot(totals, results)


def _table(totals: dict[str, dict[float, list[float]]]) -> list[str]:
    header = " | ".join(f"{s:g} s" for s in LENGTHS_S)
    lines = [f"| hidden for | {header} |", "|---|" + "---:|" * len(LENGTHS_S)]
    for name, by_length in totals.items():
        cells = " | ".join(
            f"{np.mean(by_length[s]):.1f}" if by_length.get(s) else "-" for s in LENGTHS_S
        )
        lines.append(f"| {name} | {cells} |")
    counts = " | ".join(str(len(totals["hold"].get(s, []))) for s in LENGTHS_S)
    return [*lines, f"| stretches | {counts} |", ""]


def _learned_weights(args, first_set_results: list[Path]):
    """The learned Predictor's weights: given, or trained now on the first set only."""
    from ram_core.motion.learned import load_learned_weights

    if args.train_learned:
        from ram_core.train.motion_data import result_clips
        from ram_core.train.predictor import PredictorTrainConfig, train_predictor

        clips = [clip for path in first_set_results for clip in result_clips(path)]
        frames = sum(len(c) for c in clips)
        print(
            f"training the learned Predictor on {len(clips)} clips ({frames} frames) of the "
            "first set ...",
            file=sys.stderr,
        )
        train_predictor(
            PredictorTrainConfig(),
            clips,
            steps=args.train_steps,
            progress=True,
            export=args.train_learned,
        )
    return load_learned_weights(args.learned_weights or args.train_learned, "predictor")


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
