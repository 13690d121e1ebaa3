"""``ram-core train memformer|predictor|combiner``: the training commands.

``add_train_parser(subparsers)`` adds the command to ``ram-core``'s parser and
``run_train(args)`` runs it (exit code, ``ram_core.io.protocol.ExitCode``). torch is
imported only when a training runs. The MemFormer's training lives in
``ram_core.train.memformer`` (``train_memformer_command(args)``).

Examples::

    ram-core train predictor --format amass --data AMASS/CMU --steps 20000 \\
        --checkpoint predictor.pt --export learned_predictor.npz
    ram-core train predictor --format scenes --data benchmarks/scenes/crossing ... \\
        --cache recon --export learned_predictor.npz
    ram-core train combiner --format 3dpw --data 3DPW/sequenceFiles/train \\
        --predictor-weights learned_predictor.npz --export learned_gate.npz

The exported ``.npz`` is what a run's config names: ``predictor: {kind: learned, weights:
FILE}``, ``combiner: {gate: learned, gate_weights: FILE}``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ram_core.errors import BadInputError, MissingModelError
from ram_core.io.protocol import ExitCode

TRAIN_TARGETS = ("memformer", "predictor", "combiner")
DATA_FORMATS = ("amass", "3dpw", "scenes")


def add_train_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``train`` to a parser's subcommands; returns its parser."""
    train = subparsers.add_parser("train", help="train a learned part (needs torch)")
    train.add_argument("target", choices=TRAIN_TARGETS, help="what to train")
    train.add_argument("--data", nargs="+", default=[], metavar="PATH", help="files or folders")
    train.add_argument(
        "--format",
        dest="data_format",
        default="scenes",
        choices=DATA_FORMATS,
        help="amass: .npz motions; 3dpw: sequence .pkl files; scenes: benchmark scene "
        "folders (reconstructed with the lite pipeline) or result folders (default)",
    )
    train.add_argument("--steps", type=int, default=2000, help="optimisation steps in all")
    train.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="default: the target's own (predictor 64, combiner 32, memformer 8)",
    )
    train.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate; default: the target's own (1e-3, 3e-3, 1e-4)",
    )
    train.add_argument("--checkpoint", default=None, metavar="FILE", help="checkpoint file")
    train.add_argument(
        "--resume", action="store_true", help="continue from --checkpoint where it exists"
    )
    train.add_argument("--export", default=None, metavar="FILE", help="the numpy .npz to write")
    train.add_argument("--progress", default="bar", choices=("bar", "none"))
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="where scenes' reconstructions are kept (default: a temporary folder)",
    )
    train.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="memformer: a run config (YAML) whose thmr section sets the network and the "
        "memory, as the runs that will use the MemFormer have them",
    )
    train.add_argument(
        "--predictor-weights",
        default=None,
        metavar="FILE",
        help="combiner: train the gate for this learned Predictor (default: the analytic one)",
    )
    return train


def run_train(args: argparse.Namespace) -> int:
    """Run ``ram-core train``; BadInputError for bad data or settings, MissingModelError
    (exit 3) without PyTorch."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise MissingModelError(
            "ram-core train needs PyTorch, which is not installed (tools/setup.sh --full)"
        )
    if args.target == "memformer":
        from ram_core.train.memformer import train_memformer_command

        return train_memformer_command(args)
    if (
        args.steps < 0
        or (args.batch_size is not None and args.batch_size < 1)
        or (args.lr is not None and args.lr <= 0)
    ):
        raise BadInputError("--steps must be >= 0, --batch-size >= 1 and --lr > 0")
    if args.resume and not args.checkpoint:
        raise BadInputError("--resume needs --checkpoint FILE")
    if not args.data:
        raise BadInputError(f"train {args.target} needs --data PATH...")
    with tempfile.TemporaryDirectory(prefix="ram-train-") as scratch:
        from ram_core.train.motion_data import load_motion_clips

        clips = load_motion_clips(args.data, args.data_format, args.cache or scratch)
        if not clips:
            raise BadInputError(f"no motion found in {', '.join(args.data)}")
        # Each trainer has its own batch size and learning rate unless they are given.
        given = {"batch_size": args.batch_size, "lr": args.lr}
        options = {
            "steps": args.steps,
            **{name: value for name, value in given.items() if value is not None},
            "checkpoint": args.checkpoint,
            "resume": args.resume,
            "progress": args.progress == "bar",
            "seed": args.seed,
            "export": args.export,
        }
        try:
            if args.target == "predictor":
                from ram_core.train.predictor import PredictorTrainConfig, train_predictor

                _, result = train_predictor(PredictorTrainConfig(), clips, **options)
            else:
                from ram_core.motion.learned import load_learned_weights
                from ram_core.train.combiner import GateTrainConfig, train_combiner

                learned = None
                if args.predictor_weights:
                    learned = load_learned_weights(args.predictor_weights, "predictor")
                _, result = train_combiner(
                    GateTrainConfig(), clips, learned_predictor=learned, **options
                )
        except ValueError as exc:  # settings that do not fit the data or the checkpoint
            raise BadInputError(str(exc)) from exc
    last = result.losses[-1] if result.losses else float("nan")
    print(
        f"trained the {args.target} to step {result.final_step} (from {result.start_step}); "
        f"last loss {last:.5g}" + (f"; exported {Path(args.export)}" if args.export else "")
    )
    return ExitCode.OK
