"""``ram-core``: the command line the Blender add-on and people use.

Exit codes and progress events are those of ``ram_core.io.protocol``: 0 ok; 2 bad input or
usage; 3 a model, weight file or body model is missing; 130 cancelled; 1 internal error.
Every failure is one line on stderr (and an ``error`` event with ``--progress json``), never
a traceback, and never a half-written result.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback

from ram_core import __version__
from ram_core.errors import BadInputError, CancelledError, MissingModelError, RamError
from ram_core.io.progress import (
    BarProgress,
    JsonProgress,
    NoProgress,
    Progress,
    make_progress,
)
from ram_core.io.protocol import BACKENDS, DEVICES, PROGRESS_MODES, ExitCode
from ram_core.io.quiet import native_stderr_hidden


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors get our one-line form."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInputError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="ram-core",
        description="Recover the 3D motion of every person in a video (RAM).",
    )
    parser.add_argument("--version", action="version", version=f"ram-core {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)

    run = commands.add_parser("run", help="video -> result folder (OUT.ram)")
    run.add_argument("video", help="the video file")
    run.add_argument("-o", "--output", required=True, help="result folder to write (NAME.ram)")
    run.add_argument("--backend", default="auto", choices=BACKENDS)
    run.add_argument("--device", default="auto", choices=DEVICES)
    run.add_argument("--start", type=int, default=0, help="first frame (default 0)")
    run.add_argument("--end", type=int, default=None, help="stop before this frame")
    run.add_argument("--config", default=None, help="YAML file with stage settings")
    run.add_argument("--progress", default="bar", choices=PROGRESS_MODES)
    run.add_argument("--no-preview", action="store_true", help="skip preview.mp4/.png")
    run.add_argument(
        "--verbose",
        action="store_true",
        help="let third-party libraries (MediaPipe, TensorFlow Lite) log to stderr",
    )

    combine = commands.add_parser(
        "combine", help="re-run the Predictor and Combiner with the artist's edits"
    )
    combine.add_argument("result", help="a result folder (NAME.ram)")
    combine.add_argument(
        "--config",
        default=None,
        help="YAML file whose predictor/combiner settings replace the ones the run recorded",
    )
    combine.add_argument("--progress", default="bar", choices=PROGRESS_MODES)

    from ram_core.eval.evaluate import add_eval_parser
    from ram_core.train.cli import add_train_parser

    add_eval_parser(commands)
    add_train_parser(commands)
    _add_weights_parser(commands)
    _add_batch_parser(commands)
    return parser


def _add_batch_parser(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser(
        "batch",
        help="many videos -> OUT_DIR/<clip>.ram each (a local process pool, or Ray)",
        description="Run every clip as `ram-core run` would, into OUT_DIR/<clip name>.ram; "
        "complete results are skipped, failures go into OUT_DIR/summary.json.",
    )
    batch.add_argument("inputs", nargs="+", metavar="INPUT", help="video files or folders of them")
    batch.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="results folder")
    batch.add_argument("--backend", default="auto", choices=BACKENDS)
    batch.add_argument("--device", default="auto", choices=DEVICES)
    batch.add_argument("--config", default=None, help="YAML file with stage settings")
    batch.add_argument(
        "--workers",
        type=int,
        default=None,
        help="clips at once: processes of the local pool (default 1), or the CPUs of "
        "--ray local (default all)",
    )
    batch.add_argument(
        "--ray",
        default=None,
        metavar="local|auto|ADDRESS",
        help="run one Ray task per clip: local (Ray on this machine), auto (the cluster this "
        "machine is in) or an address (ray://HOST:10001)",
    )
    batch.add_argument("--progress", default="bar", choices=PROGRESS_MODES)
    batch.add_argument("--no-preview", action="store_true", help="skip preview.mp4/.png")
    batch.add_argument(
        "--verbose", action="store_true", help="let third-party libraries log to stderr"
    )


_WEIGHTS_DIR_HELP = (
    "weights folder (default: $RAM_WEIGHTS_DIR, else $RAM_HOME/weights, else the platform's "
    "cache folder, ~/.cache/ram/weights on Linux)"
)


def _add_weights_parser(commands: argparse._SubParsersAction) -> None:
    weights = commands.add_parser("weights", help="list, download or check the model weights")
    actions = weights.add_subparsers(
        dest="weights_command", required=True, parser_class=_ArgumentParser
    )
    listing = actions.add_parser("list", help="every model: licence, size, presence, hash")
    listing.add_argument("--format", default="text", choices=("text", "json"))
    listing.add_argument("--dir", default=None, help=_WEIGHTS_DIR_HELP)
    listing.set_defaults(progress="none")
    download = actions.add_parser(
        "download", help="fetch weights (default: what the full backend needs)"
    )
    download.add_argument("names", nargs="*", metavar="NAME", help="models to fetch")
    download.add_argument("--all", action="store_true", help="fetch every model in the table")
    download.add_argument(
        "--offline", action="store_true", help="never use the network; report what is missing"
    )
    download.add_argument("--dir", default=None, help=_WEIGHTS_DIR_HELP)
    download.add_argument("--progress", default="bar", choices=PROGRESS_MODES)
    verify = actions.add_parser("verify", help="hash downloaded weights and compare")
    verify.add_argument("names", nargs="*", metavar="NAME", help="models (default: all present)")
    verify.add_argument("--dir", default=None, help=_WEIGHTS_DIR_HELP)
    verify.add_argument("--progress", default="bar", choices=PROGRESS_MODES)


def _command_run(args: argparse.Namespace, progress: Progress) -> int:
    import dataclasses

    from ram_core.config import load_config
    from ram_core.pipeline import run_pipeline

    config = load_config(args.config)
    if args.no_preview:
        config = dataclasses.replace(
            config, pipeline=dataclasses.replace(config.pipeline, preview=False)
        )
    out = run_pipeline(
        args.video,
        args.output,
        backend=args.backend,
        device=args.device,
        start=args.start,
        end=args.end,
        config=config,
        progress=progress,
    )
    progress.done(str(out))
    return ExitCode.OK


def _command_combine(args: argparse.Namespace, progress: Progress) -> int:
    from ram_core.motion.recombine import recombine_result

    predictor = combiner = None
    if args.config is not None:  # else the settings recorded in the result's manifest
        from ram_core.config import load_config

        config = load_config(args.config)
        predictor, combiner = config.predictor, config.combiner
    written = recombine_result(args.result, predictor, combiner)
    progress.done(str(written))
    return ExitCode.OK


def _command_batch(args: argparse.Namespace, progress: Progress) -> int:
    import dataclasses

    from ram_core import batch
    from ram_core.config import load_config

    config = load_config(args.config)
    if args.no_preview:
        config = dataclasses.replace(
            config, pipeline=dataclasses.replace(config.pipeline, preview=False)
        )
    settings = batch.RunSettings(backend=args.backend, device=args.device, config=config)
    engine: batch.Engine = (
        batch.RayEngine(args.ray, args.workers)
        if args.ray is not None
        else batch.PoolEngine(1 if args.workers is None else args.workers)
    )
    jobs = batch.plan_batch(args.inputs, args.output, settings)
    # Clips, not frames, and every clip's line: the frame bar and the rate limit would not do.
    if isinstance(progress, BarProgress):
        progress = batch.ClipBarProgress()
    elif isinstance(progress, JsonProgress):
        progress = JsonProgress(interval_s=0.0)
    try:
        summary = batch.run_batch(jobs, settings, engine, args.output, progress)
        if summary.exit_code != ExitCode.OK:
            progress.error(summary.failure_line(), summary.exit_code)
            return summary.exit_code
        progress.done(str(summary.path))
        return ExitCode.OK
    finally:
        progress.close()


def _command_weights(args: argparse.Namespace, progress: Progress) -> int:
    import json

    from ram_core.models import weights

    if args.weights_command == "list":
        folder = weights.weights_dir(args.dir)
        statuses = weights.model_statuses(args.dir)
        if args.format == "json":
            document = {
                "weights_dir": str(folder),
                "default_full_models": list(weights.DEFAULT_FULL_MODELS),
                "models": [status.as_json() for status in statuses],
            }
            print(json.dumps(document, indent=2))
        else:
            print(weights.format_model_table(statuses, folder))
        return ExitCode.OK
    names = list(args.names)
    for name in names:
        weights.get_model(name)  # an unknown name is a usage error before any work starts
    # Downloads and hashing count bytes: the frame-counting bar would mislabel them.
    if isinstance(progress, BarProgress):
        progress = weights.ByteBarProgress()
    try:
        if args.weights_command == "download":
            return _weights_download(args, names, progress)
        return _weights_verify(args, names, progress)
    finally:
        progress.close()


def _weights_download(args: argparse.Namespace, names: list[str], progress: Progress) -> int:
    from ram_core.models import weights

    if args.all and names:
        raise BadInputError("give model names or --all, not both")
    if args.all:
        names = [model.name for model in weights.list_models()]
    names = names or list(weights.DEFAULT_FULL_MODELS)
    if args.offline:
        missing = []
        for name in names:
            try:
                weights.download(name, args.dir, progress, offline=True)
            except MissingModelError as exc:
                missing.append(str(exc))
        if missing:
            raise MissingModelError("; ".join(missing))
    else:
        for name in names:
            weights.download(name, args.dir, progress)
    progress.done(str(weights.weights_dir(args.dir)))
    return ExitCode.OK


def _weights_verify(args: argparse.Namespace, names: list[str], progress: Progress) -> int:
    from ram_core.models import weights

    folder = weights.weights_dir(args.dir)
    if not names:
        names = [m.name for m in weights.list_models() if (folder / m.filename).is_file()]
        if not names:
            raise MissingModelError(
                f"no weights in {folder}: run `ram-core weights download` to fetch the "
                "full backend's models"
            )
    failed = []
    for name in names:
        report = weights.verify(name, args.dir, progress)
        line = f"{'ok' if report.ok else report.status}: {name}: {report.detail}"
        if isinstance(progress, JsonProgress):
            progress.info(line)
        else:
            progress.close()
            print(line)
        if not report.ok:
            failed.append(f"{report.detail}; run `{weights.fetch_command(name, args.dir)}`")
    if failed:
        raise MissingModelError("; ".join(failed))
    progress.done(str(folder))
    return ExitCode.OK


def _raise_cancelled(signum: int, _frame: object) -> None:
    raise CancelledError(f"cancelled by signal {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    # The add-on stops us with SIGTERM: unwind like Ctrl-C so temporary output is removed.
    signal.signal(signal.SIGTERM, _raise_cancelled)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    except RamError as exc:  # a usage error
        NoProgress().error(str(exc), exc.exit_code)
        return exc.exit_code
    # Native libraries' logs are hidden unless asked for; ours still reach stderr.
    with native_stderr_hidden(args.command in ("run", "batch") and not args.verbose):
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    progress: Progress = NoProgress()
    # Made here, inside the hiding, so its handler writes to the terminal.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        progress = make_progress(args.progress)
        if args.command == "run":
            return _command_run(args, progress)
        if args.command == "weights":
            return _command_weights(args, progress)
        if args.command == "batch":
            return _command_batch(args, progress)
        if args.command == "train":
            from ram_core.train.cli import run_train

            return run_train(args)
        if args.command == "eval":
            from ram_core.eval.evaluate import run_eval

            return run_eval(args, progress)
        return _command_combine(args, progress)
    except KeyboardInterrupt:
        progress.error("cancelled", ExitCode.CANCELLED)
        return ExitCode.CANCELLED
    except RamError as exc:
        progress.error(str(exc), exc.exit_code)
        return exc.exit_code
    except Exception as exc:  # an internal error: one line, the details only on request
        if os.environ.get("RAM_DEBUG"):
            traceback.print_exc()
        message = f"internal error: {type(exc).__name__}: {exc} (set RAM_DEBUG=1 for details)"
        progress.error(message, ExitCode.INTERNAL)
        return ExitCode.INTERNAL
    finally:
        progress.close()


if __name__ == "__main__":
    sys.exit(main())
