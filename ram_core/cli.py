"""``ram-core``: the command line the Blender add-on and people use.

Exit codes: 0 ok; 2 bad input or usage; 3 a model, weight file or body model is missing;
130 cancelled; 1 internal error. Every failure is one line on stderr (and an ``error``
event with ``--progress json``), never a traceback, and never a half-written result.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback

from . import __version__
from .errors import BadInputError, CancelledError, RamError
from .progress import PROGRESS_MODES, NoProgress, Progress, make_progress

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_MISSING_MODEL = 3
EXIT_CANCELLED = 130


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
    run.add_argument("--backend", default="auto", choices=("auto", "full", "lite"))
    run.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    run.add_argument("--start", type=int, default=0, help="first frame (default 0)")
    run.add_argument("--end", type=int, default=None, help="stop before this frame")
    run.add_argument("--config", default=None, help="YAML file with stage settings")
    run.add_argument("--progress", default="bar", choices=PROGRESS_MODES)
    run.add_argument("--no-preview", action="store_true", help="skip preview.mp4/.png")

    combine = commands.add_parser(
        "combine", help="re-run the Predictor and Combiner with the artist's edits"
    )
    combine.add_argument("result", help="a result folder (NAME.ram)")
    combine.add_argument("--config", default=None, help="YAML file with stage settings")
    combine.add_argument("--progress", default="bar", choices=PROGRESS_MODES)

    from .evaluate import add_eval_parser

    add_eval_parser(commands)
    return parser


def _command_run(args: argparse.Namespace, progress: Progress) -> int:
    import dataclasses

    from .config import load_config
    from .pipeline import run_pipeline

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
    return EXIT_OK


def _command_combine(args: argparse.Namespace, progress: Progress) -> int:
    from .config import load_config
    from .recombine import recombine_result

    config = load_config(args.config)
    written = recombine_result(args.result, config.predictor, config.combiner)
    progress.done(str(written))
    return EXIT_OK


def _raise_cancelled(signum: int, _frame: object) -> None:
    raise CancelledError(f"cancelled by signal {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    progress: Progress = NoProgress()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # The add-on stops us with SIGTERM: unwind like Ctrl-C so temporary output is removed.
    signal.signal(signal.SIGTERM, _raise_cancelled)
    try:
        args = build_parser().parse_args(argv)
        progress = make_progress(args.progress)
        if args.command == "run":
            return _command_run(args, progress)
        if args.command == "eval":
            from .evaluate import run_eval

            return run_eval(args, progress)
        return _command_combine(args, progress)
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    except KeyboardInterrupt:
        progress.error("cancelled", EXIT_CANCELLED)
        return EXIT_CANCELLED
    except RamError as exc:
        progress.error(str(exc), exc.exit_code)
        return exc.exit_code
    except Exception as exc:  # an internal error: one line, the details only on request
        if os.environ.get("RAM_DEBUG"):
            traceback.print_exc()
        message = f"internal error: {type(exc).__name__}: {exc} (set RAM_DEBUG=1 for details)"
        progress.error(message, EXIT_INTERNAL)
        return EXIT_INTERNAL
    finally:
        progress.close()


if __name__ == "__main__":
    sys.exit(main())
