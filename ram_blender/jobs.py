"""Subprocesses that speak ram_core's JSON progress events, read on a thread.

No bpy here. ``EventJob`` runs one command (``ram-core run …`` or ``ram-core weights
download …``, both with ``--progress json``); a reader thread turns each stdout line into
an event dict on a ``queue.Queue``; the modal operator (or a test) drains it with
``poll()``. Cancelling sends SIGTERM, which ram-core turns into a clean exit 130 (the
pipeline removes its temporary output; a download keeps its ``.part`` file to resume).
Exit codes and events are ``ram_core.io.protocol``'s; each kind of job words the exit
codes in its own ``ExitMessages``.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ram_core.io.protocol import (
    BACKENDS,
    DEVICES,
    EVENT_DONE,
    EVENT_ERROR,
    EVENT_PROGRESS,
    EVENT_STAGE,
    ExitCode,
    parse_event_line,
)

# How long a cancelled job may take to clean up before it is killed.
_TERMINATE_GRACE_S = 10.0
_STDERR_LINES_KEPT = 20


@dataclass(frozen=True)
class RunRequest:
    """One ``ram-core run``: which Python runs it and with what arguments."""

    python: str
    video: Path
    output: Path
    backend: str = "auto"
    device: str = "auto"
    start: int | None = None
    end: int | None = None
    preview: bool = False
    weights_dir: str = ""
    smpl_model: str = ""

    def command(self) -> list[str]:
        """The argument list for ``subprocess.Popen``."""
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        command = [self.python, "-m", "ram_core", "run", str(self.video), "-o", str(self.output)]
        command += ["--backend", self.backend, "--device", self.device, "--progress", "json"]
        if self.start is not None:
            command += ["--start", str(self.start)]
        if self.end is not None:
            command += ["--end", str(self.end)]
        if not self.preview:
            command.append("--no-preview")
        return command

    def environment(self) -> dict[str, str]:
        """The child's environment: ours, plus where the weights and SMPL model are."""
        extra = {"RAM_WEIGHTS_DIR": self.weights_dir, "RAM_SMPL_MODEL": self.smpl_model}
        return child_environment({name: value for name, value in extra.items() if value})


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment for another Python: without Blender's Python settings, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        # Blender's own Python settings must not leak into another interpreter, and a
        # venv's interpreter must not think it runs inside another venv.
        if name not in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class JobOutcome:
    """How a finished job ended: ``ok``, the exit code, one message for a report."""

    ok: bool
    exit_code: int
    message: str
    result_path: Path | None = None

    @property
    def cancelled(self) -> bool:
        return self.exit_code == ExitCode.CANCELLED


@dataclass(frozen=True)
class ExitMessages:
    """One sentence per documented exit code for one kind of job.

    ``{detail}`` is replaced by the job's own error message (or its last stderr line, or the
    ``no_detail`` words when it said nothing).
    """

    subject: str
    ok: str
    bad_input: str
    missing: str
    failed: str
    cancelled: str
    no_detail: str = "no reason given"

    def for_exit(self, exit_code: int, detail: str) -> str:
        detail = detail.strip()
        template = {
            ExitCode.OK: self.ok,
            ExitCode.BAD_INPUT: self.bad_input,
            ExitCode.MISSING_MODEL: self.missing,
            ExitCode.INTERNAL: self.failed,
            ExitCode.CANCELLED: self.cancelled,
        }.get(exit_code)
        if template is not None:
            return template.format(detail=detail or self.no_detail)
        tail = f" {detail}" if detail else ""
        if exit_code < 0:
            return f"{self.subject} was stopped by signal {-exit_code}.{tail}"
        return f"{self.subject} ended with unexpected exit code {exit_code}.{tail}"


PIPELINE_MESSAGES = ExitMessages(
    subject="The pipeline",
    ok="The pipeline finished.",
    bad_input="The pipeline refused the input: {detail}",
    missing="A model or weight file is missing: {detail}",
    failed="The pipeline failed: {detail}",
    cancelled="The pipeline was cancelled.",
)


def outcome_message(
    exit_code: int,
    error_message: str | None,
    stderr_tail: str,
    messages: ExitMessages = PIPELINE_MESSAGES,
) -> str:
    """One clear sentence for how a job ended."""
    return messages.for_exit(exit_code, error_message or stderr_tail or "")


class EventJob:
    """A running subprocess whose JSON progress events arrive on a queue.

    ``start()`` launches it; ``poll()`` returns the events that arrived (dicts; a line that
    is not JSON becomes ``{"event": "output", "line": …}``); ``finished()`` says whether the
    process ended and its output was read; ``outcome()`` then says how it ended, in the
    words of ``messages``. With ``expects_result`` a success must name its result (the
    ``done`` event's ``result``).
    """

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str] | None = None,
        messages: ExitMessages = PIPELINE_MESSAGES,
        expects_result: bool = False,
    ) -> None:
        self.command = list(command)
        self.env = env
        self.messages = messages
        self.expects_result = expects_result
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stage = ""
        self.done = 0
        self.total: int | None = None
        self.result_path: Path | None = None
        self.error_message: str | None = None
        self._stderr_tail: deque[str] = deque(maxlen=_STDERR_LINES_KEPT)
        self._process: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        self._cancel_requested = False

    def start(self) -> EventJob:
        """Launch the process. Raises OSError when the Python cannot be started."""
        if self._process is not None:
            raise RuntimeError("This job has already started.")
        self._process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=self.env,
            bufsize=1,
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, name="ram-job-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name="ram-job-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _read_stdout(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            event = parse_event_line(line)
            if event is not None:
                self.events.put(event)

    def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            if line.strip():
                self._stderr_tail.append(line.rstrip())

    def poll(self) -> list[dict[str, Any]]:
        """The events that arrived since the last call, with the job's state updated."""
        arrived = []
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            self._note(event)
            arrived.append(event)
        return arrived

    def _note(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == EVENT_STAGE:
            self.stage, self.done, self.total = str(event.get("stage", "")), 0, event.get("total")
        elif kind == EVENT_PROGRESS:
            self.stage = str(event.get("stage", self.stage))
            self.done = int(event.get("done") or 0)
            self.total = event.get("total")
        elif kind == EVENT_DONE and event.get("result"):
            self.result_path = Path(str(event["result"]))
        elif kind == EVENT_ERROR:
            self.error_message = str(event.get("message", ""))

    @property
    def fraction(self) -> float:
        """The current stage's progress in [0, 1] (0 when its length is unknown)."""
        if not self.total:
            return 0.0
        return min(1.0, max(0.0, self.done / float(self.total)))

    def finished(self) -> bool:
        """True once the process has exited and both pipes are read to the end."""
        if self._process is None or self._process.poll() is None:
            return False
        return not any(thread.is_alive() for thread in self._threads)

    def wait(self, timeout: float | None = None) -> JobOutcome:
        """Block until the job ends (TimeoutError after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.messages.subject} did not end within {timeout} s.")
            time.sleep(0.02)
        return self.outcome()

    def cancel(self) -> None:
        """Ask the process to stop (SIGTERM), and kill it if it has not after a grace time."""
        self._cancel_requested = True
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=_TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def outcome(self) -> JobOutcome:
        """How the finished job ended. RuntimeError while it still runs."""
        if not self.finished():
            raise RuntimeError(f"{self.messages.subject} is still running.")
        assert self._process is not None
        self.poll()
        code = self._process.returncode
        if self._cancel_requested and code != ExitCode.OK:
            code = ExitCode.CANCELLED
        message = outcome_message(code, self.error_message, self.stderr_tail, self.messages)
        ok = code == ExitCode.OK
        if ok and self.expects_result and self.result_path is None:
            ok = False
            message = f"{self.messages.subject} finished without naming its result."
        return JobOutcome(ok, code, message, self.result_path if ok else None)

    @property
    def stderr_tail(self) -> str:
        """The last line the process wrote on stderr ('' when none)."""
        return self._stderr_tail[-1] if self._stderr_tail else ""


class PipelineJob(EventJob):
    """``ram-core run``: an EventJob in the pipeline's words that must name its result."""

    def __init__(self, command: Sequence[str], env: dict[str, str] | None = None) -> None:
        super().__init__(command, env, PIPELINE_MESSAGES, expects_result=True)

    @classmethod
    def for_request(cls, request: RunRequest) -> PipelineJob:
        return cls(request.command(), request.environment())


def python_can_run_pipeline(python: str, timeout_s: float = 20.0) -> bool:
    """Whether ``python`` exists and imports ram_core."""
    if not python or not Path(python).is_file():
        return False
    try:
        completed = subprocess.run(
            [python, "-c", "import ram_core.cli"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            env=child_environment(),
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0


def pipeline_python_candidates(extension_env: Path | None = None) -> list[str]:
    """Where a pipeline Python may be, most specific first.

    ``RAM_PIPELINE_PYTHON``, the environment the add-on installs in its user folder, the
    interpreter beside a ``ram-core`` on PATH, then ``python3`` on PATH.
    """
    candidates = []
    if os.environ.get("RAM_PIPELINE_PYTHON"):
        candidates.append(os.environ["RAM_PIPELINE_PYTHON"])
    if extension_env is not None:
        scripts = "Scripts" if sys.platform == "win32" else "bin"
        exe = "python.exe" if sys.platform == "win32" else "python"
        candidates.append(str(extension_env / scripts / exe))
    ram_core_script = shutil.which("ram-core")
    if ram_core_script:
        folder = Path(ram_core_script).parent
        for name in ("python", "python3", "python.exe"):
            candidates.append(str(folder / name))
    on_path = shutil.which("python3") or shutil.which("python")
    if on_path:
        candidates.append(on_path)
    return list(dict.fromkeys(candidates))


def find_pipeline_python(extension_env: Path | None = None) -> str:
    """The first candidate that imports ram_core, or '' when none does."""
    for candidate in pipeline_python_candidates(extension_env):
        if python_can_run_pipeline(candidate):
            return candidate
    return ""
