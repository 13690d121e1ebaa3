"""Many clips in one command (``ram-core batch``): a folder of videos becomes a folder of
``.ram`` results, on this machine (a process pool) or on a Ray cluster (one task per clip).

Every clip runs ``run_pipeline`` exactly as ``ram-core run`` does, so each result is the
same, array for array, as a single run with the same settings. Workers send back only a
small ``ClipOutcome``; each writes its own result into the output folder, which on a
cluster must therefore be a filesystem every node and the driver share (same paths).

Nothing lost, nothing done twice:

- ``plan_batch`` skips a clip whose result is already complete: its manifest and tracks
  read, it was made from this very file (same path, size in frames and pixels, frame rate,
  the whole clip, not modified since) and with the same settings.
- A clip that fails (bad file, missing model, a crash of its worker) is recorded and the
  others go on. ``OUT_DIR/summary.json`` (rewritten atomically as clips end, at most every
  ``SUMMARY_INTERVAL_S``, and at the end) holds one entry per clip: status, reason, exit
  code, timings, track count.
- Ctrl-C or SIGTERM cancels the running clips: each unwinds its ``ResultWriter``, which
  deletes its temporary folder; a worker that does not unwind in time is killed and the
  clip's temporary folders are removed. A result appears only by its final rename.

Exit status of the batch: 0 when every clip is done (run or skipped); else the most serious
failure's code: 1 (an internal error) before 3 (a model missing) before 2 (bad input);
130 when cancelled.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ram_core.config import RunConfig, config_to_dict
from ram_core.errors import BadInputError, CancelledError, MissingModelError, RamError
from ram_core.io.atomic import atomic_file
from ram_core.io.progress import BarProgress, NoProgress, Progress
from ram_core.io.protocol import ExitCode

SUMMARY_FILE_NAME = "summary.json"
SUMMARY_FORMAT = "ram-batch-summary"
SUMMARY_VERSION = 1
RESULT_SUFFIX = ".ram"
# What a folder given as an input is searched for (its own files, not its subfolders: a
# result folder's preview.mp4 must never become a clip).
VIDEO_SUFFIXES = (
    ".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".mts",
    ".m2ts", ".3gp",
)  # fmt: skip

STATUS_OK = "ok"
STATUS_SKIPPED = "skipped"
STATUS_FAILED = "failed"
STATUS_CANCELLED = "cancelled"
STATUS_PENDING = "pending"

# How long cancelled clips get to unwind (delete their temporary folders) before their
# workers are killed and the driver deletes the folders. Unwinding takes well under a
# second (at most one frame in flight); through Ray Client a running task is not
# interrupted at all, only killed.
UNWIND_TIMEOUT_S = 5.0
# A clip whose worker process died this many times is failed rather than tried again.
MAX_WORKER_DEATHS = 2
# How often the driver wakes while it waits, so Ctrl-C is handled promptly.
POLL_S = 0.5
# The summary is rewritten at most this often while clips end (it grows with the batch:
# once per clip would write it N times over), and always at the end.
SUMMARY_INTERVAL_S = 2.0
# Severity order of failed clips' exit codes: the batch exits with the first one present.
_EXIT_PRECEDENCE = (ExitCode.INTERNAL, ExitCode.MISSING_MODEL, ExitCode.BAD_INPUT)


@dataclass(frozen=True)
class RunSettings:
    """What every clip is run with: the arguments ``ram-core run`` would get."""

    backend: str = "auto"
    device: str = "auto"
    config: RunConfig = field(default_factory=RunConfig)


@dataclass(frozen=True)
class ClipJob:
    """One input video and the result folder it becomes.

    ``skip_reason`` is set when the result is already complete (the clip is not run);
    ``existing_track_count`` is then that result's number of tracks. ``rerun_reason`` says
    why a result already there is not complete and is made again.
    """

    video: Path
    output: Path
    skip_reason: str | None = None
    existing_track_count: int | None = None
    rerun_reason: str | None = None

    @property
    def name(self) -> str:
        return self.video.name


@dataclass(frozen=True)
class ClipOutcome:
    """What a worker reports for one clip (small: the result itself is on disk).

    ``run_s``: wall time in the worker, loading the models included; ``pipeline_timings``:
    the manifest's ``timings_s`` (total, frames, seconds per stage).
    """

    status: str
    reason: str | None = None
    exit_code: int | None = None
    run_s: float | None = None
    track_count: int | None = None
    pipeline_timings: dict[str, Any] | None = None
    host: str | None = None


ClipRunner = Callable[[ClipJob, RunSettings], ClipOutcome]
"""Runs one clip in a worker; ``run_clip`` unless a test injects another."""


# ------------------------------------------------------------------------ planning


def find_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """The clips the inputs name, in order, each once: a file as given (whatever its
    suffix: it may be a video with an unusual name, and a bad one fails alone), a folder
    as the video files directly inside it, sorted by name.

    A path that does not exist is kept (its clip fails with a clear reason). Raises
    BadInputError for a folder with no videos in it.
    """
    videos: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                child
                for child in path.iterdir()
                if child.is_file()
                and not child.name.startswith(".")
                and child.suffix.lower() in VIDEO_SUFFIXES
            )
            if not found:
                raise BadInputError(
                    f"no videos ({', '.join(VIDEO_SUFFIXES)}) in folder {path} (subfolders "
                    "are not searched)"
                )
        else:
            found = [path]
        for video in found:
            resolved = video.resolve()
            if resolved not in seen:
                seen.add(resolved)
                videos.append(resolved)
    return videos


def result_path(out_dir: Path, video: Path) -> Path:
    """``OUT_DIR/<clip name>.ram``: the file name without its suffix."""
    return out_dir / f"{video.stem}{RESULT_SUFFIX}"


def plan_batch(
    inputs: Sequence[str | Path], out_dir: str | Path, settings: RunSettings
) -> list[ClipJob]:
    """One job per clip, in input order; a clip whose result is complete is marked skipped.

    Raises BadInputError (before any work) for no inputs, a folder without videos, two
    clips that would write the same result, or an output folder that is a file.
    """
    if not inputs:
        raise BadInputError("give at least one video file or folder")
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"output {out_dir} exists and is not a folder; pick another -o")
    jobs: list[ClipJob] = []
    claimed: dict[Path, Path] = {}
    for video in find_videos(inputs):
        output = result_path(out_dir, video)
        if output in claimed:
            raise BadInputError(
                f"{claimed[output]} and {video} would both write {output}; rename one of "
                "them or run them into separate output folders"
            )
        claimed[output] = video
        found = existing_result(output, video, settings)
        if found is None:
            jobs.append(ClipJob(video, output))
        elif found.complete:
            jobs.append(ClipJob(video, output, found.reason, found.track_count))
        else:
            jobs.append(ClipJob(video, output, rerun_reason=found.reason))
    return jobs


@dataclass(frozen=True)
class ExistingResult:
    """What is already where a clip's result goes: complete or not, and why."""

    complete: bool
    reason: str
    track_count: int | None = None


def existing_result(output: Path, video: Path, settings: RunSettings) -> ExistingResult | None:
    """The result already at ``output`` (None when there is none) and whether it is
    complete for ``video`` (an absolute path) run with ``settings``.

    Complete: the result reads (manifest and tracks), it was made from this very file
    (same resolved path; same frame count, size and frame rate; the whole clip; the file
    not modified after the result was made) with the same settings (config, and the
    backend unless ``auto``). An incomplete result is run again and replaced, as
    ``ram-core run`` would replace it (never one holding the artist's edits: that clip
    fails saying so).
    """
    from ram_core.io.result import ResultFormatError, load_result
    from ram_core.motion.learned import LearnedWeightsError
    from ram_core.motion.recombine import learned_models_record
    from ram_core.video.reader import probe_video

    if not output.exists():
        return None

    def incomplete(reason: str) -> ExistingResult:
        return ExistingResult(False, reason)

    try:
        manifest = load_result(output, apply_edits=False).manifest
    except ResultFormatError as exc:
        return incomplete(f"the result there does not read ({exc})")
    source = manifest.get("source_video") or {}
    if source.get("path") != str(video):
        return incomplete(f"the result there was made from {source.get('path')}")
    try:
        info = probe_video(video)
        modified = video.stat().st_mtime
        created = datetime.datetime.fromisoformat(manifest["created"]).timestamp()
    except (BadInputError, OSError, KeyError, TypeError, ValueError):
        return incomplete("the video or the result's creation time cannot be read")
    recorded = tuple(source.get(k) for k in ("frame_count", "width", "height", "fps"))
    if recorded != (info.frame_count, info.width, info.height, info.fps):
        return incomplete("the video is not the one the result was made from")
    if (source.get("start"), source.get("end")) != (0, info.frame_count):
        return incomplete("the result holds only part of the video")
    # The manifest's time is cut to the second; a later change is a second or more later.
    if modified > created + 1.0:
        return incomplete("the video changed after the result was made")
    try:
        models, fields = learned_models_record(settings.config.predictor, settings.config.combiner)
    except LearnedWeightsError as exc:
        return incomplete(f"the learned parts' weights cannot be read ({exc})")
    # A run records a learned part's weights as its copy inside the result, and their hash.
    expected = config_to_dict(settings.config)
    for section, values in fields.items():
        expected[section].update(values)
    if manifest.get("config") != _as_json(expected):
        return incomplete("the result was made with other settings")
    recorded_models = manifest.get("learned_models") or {}
    if {k: v["sha256"] for k, v in models.items()} != {
        k: v.get("sha256") for k, v in recorded_models.items() if isinstance(v, dict)
    }:
        return incomplete("the result was made with other learned weights")
    made_by = (manifest.get("backend") or {}).get("name")
    if settings.backend != "auto" and made_by != settings.backend:
        return incomplete(f"the result was made by the {made_by} backend")
    tracks = manifest.get("tracks")
    count = len(tracks) if isinstance(tracks, list) else None
    return ExistingResult(True, "complete result already there", count)


def _as_json(document: Any) -> Any:
    """``document`` as it reads back from a JSON file (tuples become lists)."""
    return json.loads(json.dumps(document))


# ------------------------------------------------------------------------ one clip


def run_clip(job: ClipJob, settings: RunSettings) -> ClipOutcome:
    """Runs one clip in a worker, exactly as ``ram-core run`` does, and reports it.

    Errors become a failed outcome (never an exception), so one clip cannot stop the
    others; a cancellation (KeyboardInterrupt, as Ray delivers it) unwinds the pipeline,
    which deletes its temporary folder, and propagates.
    """
    from ram_core.io.result import MANIFEST_FILE_NAME
    from ram_core.pipeline import run_pipeline

    host = socket.gethostname()
    started = time.perf_counter()
    try:
        out = run_pipeline(
            job.video,
            job.output,
            backend=settings.backend,
            device=settings.device,
            config=settings.config,
            progress=NoProgress(),
        )
        manifest = json.loads((out / MANIFEST_FILE_NAME).read_text(encoding="utf-8"))
    except CancelledError as exc:
        return ClipOutcome(STATUS_CANCELLED, str(exc), ExitCode.CANCELLED, host=host)
    except RamError as exc:
        return ClipOutcome(
            STATUS_FAILED, str(exc), exc.exit_code, time.perf_counter() - started, host=host
        )
    except Exception as exc:  # a bug in one clip must not stop the others
        reason = f"internal error: {type(exc).__name__}: {exc}"
        return ClipOutcome(
            STATUS_FAILED, reason, ExitCode.INTERNAL, time.perf_counter() - started, host=host
        )
    return ClipOutcome(
        STATUS_OK,
        run_s=time.perf_counter() - started,
        track_count=len(manifest.get("tracks", [])),
        pipeline_timings=manifest.get("timings_s"),
        host=host,
    )


def remove_temporary_folders(output: Path) -> list[Path]:
    """Delete what a killed writer of ``output`` left: ``ResultWriter``'s temporary
    siblings ``NAME.ram.tmp-<pid>-<random>``. Returns what was removed."""
    removed = []
    for stray in output.parent.glob(f"{output.name}.tmp-*"):
        shutil.rmtree(stray, ignore_errors=True)
        removed.append(stray)
    return removed


# ------------------------------------------------------------------------ engines


@dataclass(frozen=True)
class PoolEngine:
    """``workers`` local processes (spawned: no state inherited from the driver)."""

    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise BadInputError(f"--workers must be at least 1, got {self.workers}")

    def describe(self) -> dict[str, Any]:
        return {"engine": "pool", "workers": self.workers}


@dataclass(frozen=True)
class RayEngine:
    """One Ray task per clip. ``address``: ``local`` (an in-process Ray on this machine
    with ``num_cpus`` CPUs, default all), ``auto`` (the cluster this machine belongs to) or
    a cluster address (``ray://HOST:10001``, ``HOST:6379``)."""

    address: str = "local"
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.num_cpus is not None and self.address != "local":
            raise BadInputError(
                "--workers sets the CPUs of --ray local only; a cluster's size is its own"
            )
        if self.num_cpus is not None and self.num_cpus < 1:
            raise BadInputError(f"--workers must be at least 1, got {self.num_cpus}")

    def describe(self) -> dict[str, Any]:
        return {"engine": "ray", "ray_address": self.address, "num_cpus": self.num_cpus}


Engine = PoolEngine | RayEngine
Report = Callable[[ClipJob, ClipOutcome], None]


# ------------------------------------------------------------------------ the batch


@dataclass
class BatchSummary:
    """The outcome of every clip, in input order; ``path``: where ``summary.json`` is."""

    path: Path
    jobs: list[ClipJob]
    outcomes: dict[Path, ClipOutcome]
    engine: dict[str, Any]
    settings: RunSettings
    started: str
    wall_s: float = 0.0
    cancelled: bool = False

    def outcome(self, job: ClipJob) -> ClipOutcome:
        if job.output in self.outcomes:
            return self.outcomes[job.output]
        return ClipOutcome(STATUS_CANCELLED if self.cancelled else STATUS_PENDING)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(
            (STATUS_OK, STATUS_SKIPPED, STATUS_FAILED, STATUS_CANCELLED, STATUS_PENDING), 0
        )
        for job in self.jobs:
            counts[self.outcome(job).status] += 1
        return counts

    def failed(self) -> list[tuple[ClipJob, ClipOutcome]]:
        return [(j, self.outcome(j)) for j in self.jobs if self.outcome(j).status == STATUS_FAILED]

    @property
    def exit_code(self) -> int:
        if self.cancelled:
            return ExitCode.CANCELLED
        codes = {outcome.exit_code for _, outcome in self.failed()}
        for code in _EXIT_PRECEDENCE:
            if code in codes:
                return code
        return ExitCode.INTERNAL if codes else ExitCode.OK

    def failure_line(self) -> str:
        """One sentence for stderr: how many failed, the first one's reason, where to look."""
        failed = self.failed()
        first_job, first = failed[0]
        return (
            f"{len(failed)} of {len(self.jobs)} clips failed (first: {first_job.name}: "
            f"{first.reason}); see {self.path}"
        )

    def to_json(self) -> dict[str, Any]:
        clips = []
        for job in self.jobs:
            outcome = self.outcome(job)
            tracks = job.existing_track_count if job.skip_reason else outcome.track_count
            clips.append(
                {
                    "video": str(job.video),
                    "result": str(job.output),
                    "status": outcome.status,
                    "reason": outcome.reason,
                    "rerun_reason": job.rerun_reason,
                    "exit_code": outcome.exit_code,
                    "track_count": tracks,
                    "timings_s": {
                        "run": _rounded(outcome.run_s),
                        "pipeline": outcome.pipeline_timings,
                    },
                    "host": outcome.host,
                }
            )
        return {
            "format": SUMMARY_FORMAT,
            "version": SUMMARY_VERSION,
            "started": self.started,
            "wall_s": round(self.wall_s, 3),
            **self.engine,
            "backend": self.settings.backend,
            "device": self.settings.device,
            "counts": self.counts(),
            "exit_code": int(self.exit_code),
            "clips": clips,
            "config": config_to_dict(self.settings.config),
        }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def write_summary(summary: BatchSummary) -> Path:
    """``summary.json``, replaced atomically (a reader never sees half of it)."""
    with atomic_file(summary.path, "w", encoding="utf-8") as stream:
        json.dump(summary.to_json(), stream, indent=1)
        stream.write("\n")
    return summary.path


def run_batch(
    jobs: Sequence[ClipJob],
    settings: RunSettings,
    engine: Engine,
    out_dir: str | Path,
    progress: Progress | None = None,
    runner: ClipRunner = run_clip,
) -> BatchSummary:
    """Runs every job not skipped on ``engine``; returns the summary, also written to
    ``OUT_DIR/summary.json`` as clips end and at the end.

    Progress: one stage ``clips`` (total: every clip), advanced as each one ends, and an
    info line per clip. Ctrl-C or SIGTERM (CancelledError) cancels the running clips,
    writes the summary (unfinished clips: ``cancelled``) and raises CancelledError.
    ``runner`` replaces ``run_clip`` (tests: a worker that crashes).
    """
    progress = progress or NoProgress()
    to_run = [job for job in jobs if job.skip_reason is None]
    # Ray is reached first: a cluster that cannot be reached fails the command before
    # anything is written.
    ray = _start_ray(engine) if to_run and isinstance(engine, RayEngine) else None
    try:
        return _run_jobs(jobs, to_run, settings, engine, Path(out_dir), progress, runner, ray)
    finally:
        if ray is not None:
            ray.shutdown()


def _run_jobs(
    jobs: Sequence[ClipJob],
    to_run: list[ClipJob],
    settings: RunSettings,
    engine: Engine,
    out_dir: Path,
    progress: Progress,
    runner: ClipRunner,
    ray: Any,
) -> BatchSummary:
    out = out_dir.resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"output folder {out} cannot be made: {exc}") from None
    summary = BatchSummary(
        path=out / SUMMARY_FILE_NAME,
        jobs=list(jobs),
        outcomes={},
        engine=engine.describe(),
        settings=settings,
        started=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    started = time.perf_counter()
    progress.stage("clips", total=len(summary.jobs))

    last_written = -SUMMARY_INTERVAL_S

    def report(job: ClipJob, outcome: ClipOutcome) -> None:
        nonlocal last_written
        summary.outcomes[job.output] = outcome
        summary.wall_s = time.perf_counter() - started
        progress.info(_outcome_line(job, outcome))
        progress.advance()
        if summary.wall_s - last_written >= SUMMARY_INTERVAL_S:
            write_summary(summary)
            last_written = summary.wall_s

    for job in summary.jobs:
        if job.skip_reason is not None:
            report(job, ClipOutcome(STATUS_SKIPPED, job.skip_reason))
        elif job.rerun_reason is not None:
            progress.info(f"run again: {job.name}: {job.rerun_reason}")
    write_summary(summary)
    try:
        if ray is not None:
            _run_on_ray(ray, to_run, settings, runner, report)
        elif to_run:
            _run_on_pool(to_run, settings, engine, runner, report)
    except (KeyboardInterrupt, CancelledError):
        summary.cancelled = True
        summary.wall_s = time.perf_counter() - started
        write_summary(summary)
        done = summary.counts()
        raise CancelledError(
            f"cancelled: {done[STATUS_OK]} clips done, {done[STATUS_CANCELLED]} cancelled; "
            f"see {summary.path}"
        ) from None
    summary.wall_s = time.perf_counter() - started
    write_summary(summary)
    return summary


def _outcome_line(job: ClipJob, outcome: ClipOutcome) -> str:
    if outcome.status == STATUS_OK:
        seconds = f", {outcome.run_s:.1f} s" if outcome.run_s is not None else ""
        return f"ok: {job.name} -> {job.output} ({outcome.track_count} tracks{seconds})"
    return f"{outcome.status}: {job.name}: {outcome.reason}"


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """While cancelled clips unwind, a second Ctrl-C or SIGTERM must not cut the clean-up
    short (it is bounded by UNWIND_TIMEOUT_S anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)


# ------------------------------------------------------------------------ the pool


_worker_busy = False
_driver_pid: int | None = None


def _pool_worker_setup() -> None:
    """Runs first in every pool worker.

    Ctrl-C on a terminal reaches the whole process group: workers ignore it and wait for
    the driver, which cancels them with SIGTERM. SIGTERM during a clip raises
    CancelledError there (the pipeline unwinds and deletes its temporary folder); an idle
    worker ends at the driver's shutdown. A worker whose driver has died ends by itself.
    """
    global _driver_pid
    _driver_pid = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _pool_worker_sigterm)
    threading.Thread(target=_watch_driver, name="ram-driver-watch", daemon=True).start()


def _pool_worker_sigterm(signum: int, _frame: object) -> None:
    if _worker_busy:
        raise CancelledError(f"cancelled by signal {signal.Signals(signum).name}")
    if os.getppid() != _driver_pid:
        os._exit(ExitCode.CANCELLED)


def _watch_driver() -> None:
    while os.getppid() == _driver_pid:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _run_in_pool_worker(runner: ClipRunner, job: ClipJob, settings: RunSettings) -> ClipOutcome:
    global _worker_busy
    _worker_busy = True
    try:
        return runner(job, settings)
    finally:
        _worker_busy = False
        if os.getppid() != _driver_pid:  # cancelled because the driver died: nobody to tell
            os._exit(ExitCode.CANCELLED)


def _run_on_pool(
    jobs: list[ClipJob],
    settings: RunSettings,
    engine: PoolEngine,
    runner: ClipRunner,
    report: Report,
) -> None:
    """At most ``workers`` clips in flight, so a crash or a cancel concerns only those.

    A worker that dies (a native crash, the out-of-memory killer) breaks the whole pool,
    and which clip killed it is not known: a fresh pool takes over, and each clip that was
    in flight is run again alone. One that kills its worker when alone has failed.
    """
    context = multiprocessing.get_context("spawn")
    queue = deque(jobs)
    suspects: set[Path] = set()
    while queue:
        executor = ProcessPoolExecutor(
            max_workers=engine.workers, mp_context=context, initializer=_pool_worker_setup
        )
        in_flight: dict[Future, ClipJob] = {}
        try:
            broken = False
            while (queue or in_flight) and not broken:
                while queue and _may_start(queue[0], in_flight, engine.workers, suspects):
                    try:
                        future = executor.submit(_run_in_pool_worker, runner, queue[0], settings)
                    except BrokenProcessPool:  # it broke since the last look: not this clip
                        broken = True
                        break
                    in_flight[future] = queue.popleft()
                done, _ = wait(in_flight, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    if isinstance(future.exception(), BrokenProcessPool):
                        broken = True
                        continue
                    report(in_flight.pop(future), _future_outcome(future))
            if broken:
                again = []
                for future, job in in_flight.items():
                    if future.done() and future.exception() is None:
                        report(job, future.result())  # it ended just before the break
                        continue
                    remove_temporary_folders(job.output)
                    if job.output in suspects:
                        reason = (
                            "its worker process died twice, the second time running it alone "
                            "(killed, out of memory or a native crash)"
                        )
                        report(job, ClipOutcome(STATUS_FAILED, reason, ExitCode.INTERNAL))
                    else:
                        suspects.add(job.output)
                        again.append(job)
                queue.extendleft(reversed(again))
                in_flight.clear()
            executor.shutdown(wait=True)
        except BaseException:
            with _signals_held():
                _cancel_pool(executor, in_flight, report)
            raise


def _may_start(
    job: ClipJob, in_flight: dict[Future, ClipJob], workers: int, suspects: set[Path]
) -> bool:
    """Whether ``job`` may start now: a free worker, and a clip under suspicion of killing
    its worker runs with no other beside it."""
    if not in_flight:
        return True
    if job.output in suspects or any(j.output in suspects for j in in_flight.values()):
        return False
    return len(in_flight) < workers


def _future_outcome(future: Future) -> ClipOutcome:
    error = future.exception()
    if error is None:
        return future.result()
    if isinstance(error, CancelledError):
        return ClipOutcome(STATUS_CANCELLED, str(error), ExitCode.CANCELLED)
    if isinstance(error, RamError):
        return ClipOutcome(STATUS_FAILED, str(error), error.exit_code)
    return ClipOutcome(
        STATUS_FAILED, f"internal error: {type(error).__name__}: {error}", ExitCode.INTERNAL
    )


def _cancel_pool(
    executor: ProcessPoolExecutor, in_flight: dict[Future, ClipJob], report: Report
) -> None:
    # concurrent.futures keeps no public list of its workers; SIGTERM must reach each.
    processes = list(getattr(executor, "_processes", {}).values())
    for process in processes:
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
    executor.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + UNWIND_TIMEOUT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    for future, job in in_flight.items():
        if future.done() and not future.cancelled() and future.exception() is None:
            outcome = future.result()
            if outcome.status != STATUS_CANCELLED:
                report(job, outcome)  # it ended before the cancel reached it
        remove_temporary_folders(job.output)


# ------------------------------------------------------------------------ Ray


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingModelError(
            "--ray needs Ray, which is not installed here: pip install 'ram-core[cluster]' "
            "(or run without --ray for a local process pool)"
        ) from None
    return ray


def gpus_per_clip(settings: RunSettings, cluster_gpus: float) -> int:
    """One GPU per clip when the clip may run the full backend on CUDA and the cluster has
    GPUs; none otherwise (the lite backend runs on the CPU)."""
    wants_cuda = settings.backend != "lite" and settings.device != "cpu"
    return 1 if wants_cuda and cluster_gpus >= 1 else 0


def _start_ray(engine: RayEngine) -> Any:
    """Ray, started (``local``) or connected to (an address); the ``ray`` module."""
    ray = _import_ray()
    # ray.init puts in its own SIGTERM handler, which exits without unwinding; ours
    # cancels the clips and removes their temporary folders.
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        with warnings.catch_warnings():
            # Ray Client warns on stderr before it raises; our error line says the same.
            warnings.simplefilter("ignore", UserWarning)
            if engine.address == "local":
                ray.init(
                    num_cpus=engine.num_cpus or os.cpu_count(),
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
            else:
                ray.init(address=engine.address, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise BadInputError(
            f"cannot start or reach Ray at {engine.address}: {_first_line(exc)}"
        ) from None
    finally:
        if threading.current_thread() is threading.main_thread() and sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
    return ray


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _run_on_ray(
    ray: Any,
    jobs: list[ClipJob],
    settings: RunSettings,
    runner: ClipRunner,
    report: Report,
) -> None:
    """Every clip is submitted at once; Ray's scheduler spreads them over the cluster's
    CPUs (and GPUs, declared per task). A task whose worker dies is retried once by Ray."""
    pending: dict[Any, ClipJob] = {}
    try:
        gpus = gpus_per_clip(settings, ray.cluster_resources().get("GPU", 0))
        task = ray.remote(runner).options(
            num_cpus=1, num_gpus=gpus, max_retries=1, retry_exceptions=False, name="ram-clip"
        )
        pending = {task.remote(job, settings): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in done:
                job = pending.pop(ref)
                report(job, _ray_outcome(ray, ref, job))
    except BaseException:
        with _signals_held():
            _cancel_ray(ray, pending, report)
        raise


def _ray_outcome(ray: Any, ref: Any, job: ClipJob) -> ClipOutcome:
    try:
        return ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        return ClipOutcome(STATUS_CANCELLED, "cancelled", ExitCode.CANCELLED)
    except ray.exceptions.RayError as exc:  # the worker or its node died: not the clip's fault
        return ClipOutcome(
            STATUS_FAILED,
            f"its Ray worker failed: {type(exc).__name__}: {_first_line(exc)}",
            ExitCode.INTERNAL,
        )
    finally:
        # A worker Ray killed and retried left its temporary folder behind.
        remove_temporary_folders(job.output)


def _cancel_ray(ray: Any, pending: dict[Any, ClipJob], report: Report) -> None:
    """A running task gets KeyboardInterrupt (the pipeline unwinds); one that does not end
    in time is killed, and its temporary folders are removed here."""
    if not pending:
        return
    for ref in pending:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=False)
    ready, stuck = ray.wait(list(pending), num_returns=len(pending), timeout=UNWIND_TIMEOUT_S)
    for ref in stuck:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)
    # Their folders are removed once the killed workers can no longer write to them.
    ray.wait(stuck, num_returns=len(stuck), timeout=UNWIND_TIMEOUT_S)
    for ref in ready:
        outcome = _ray_outcome(ray, ref, pending[ref])
        if outcome.status != STATUS_CANCELLED:
            report(pending[ref], outcome)  # it ended before the cancel reached it
    for job in pending.values():
        remove_temporary_folders(job.output)


# ------------------------------------------------------------------------ the terminal


class ClipBarProgress(BarProgress):
    """The tqdm bar of :class:`BarProgress`, counting clips instead of frames."""

    def stage(self, name: str, total: int | None = None) -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(total=total, desc=name, unit="clip", file=self._err, leave=True)
