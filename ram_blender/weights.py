"""The weights manager (``ram-core weights``) seen from Blender: commands and the listing.

No bpy here. ``WeightsRequest`` makes the command lines, run by the pipeline's Python;
``start_download`` runs ``weights download --progress json`` as an ``EventJob`` (cancelling
it leaves the partial file as ``NAME.part``, which the manager resumes next time).
``ModelListingCache`` runs ``weights list --format json`` once per (Python, folder) on a
worker thread and keeps the answer until it is refreshed.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .jobs import EventJob, ExitMessages, child_environment

WEIGHTS_DIR_ENV = "RAM_WEIGHTS_DIR"
_LIST_TIMEOUT_S = 60.0

DOWNLOAD_MESSAGES = ExitMessages(
    subject="The model download",
    ok="The models are downloaded and checked.",
    bad_input="The model download was refused: {detail}",
    missing="A model is missing: {detail}",
    failed="The model download failed: {detail}",
    cancelled="The model download was cancelled; Download Models resumes it.",
)


class ModelListingError(Exception):
    """``weights list`` could not be run or did not answer in its JSON format."""


@dataclass(frozen=True)
class WeightsRequest:
    """The pipeline's Python, the weights folder ('' = the manager's default) and, for a
    download, which models ('' = what the full backend needs by default)."""

    python: str
    weights_dir: str = ""
    models: tuple[str, ...] = ()

    def download_command(self) -> list[str]:
        command = [self.python, "-m", "ram_core", "weights", "download", *self.models]
        command += ["--progress", "json"]
        if self.weights_dir:
            command += ["--dir", self.weights_dir]
        return command

    def list_command(self) -> list[str]:
        command = [self.python, "-m", "ram_core", "weights", "list", "--format", "json"]
        if self.weights_dir:
            command += ["--dir", self.weights_dir]
        return command

    def environment(self) -> dict[str, str]:
        """The manager reads the folder from RAM_WEIGHTS_DIR as well as from ``--dir``."""
        return child_environment({WEIGHTS_DIR_ENV: self.weights_dir} if self.weights_dir else None)


def start_download(request: WeightsRequest) -> EventJob:
    """Start ``weights download``. OSError when the Python cannot be started."""
    return EventJob(request.download_command(), request.environment(), DOWNLOAD_MESSAGES).start()


def download_status_line(job: EventJob) -> str:
    """``RAM models: download sam2.1_hiera_small, 12.5 of 184.0 MB`` for the status bar."""
    stage = job.stage or "starting"
    if job.total:
        return f"RAM models: {stage}, {job.done / 1e6:.1f} of {job.total / 1e6:.1f} MB"
    return f"RAM models: {stage}…"


@dataclass(frozen=True)
class ModelEntry:
    """One model of the listing: whether its checked file is present, and what it is."""

    name: str
    present: bool
    size_bytes: int | None
    purpose: str
    licence: str


@dataclass(frozen=True)
class ModelListing:
    """``weights list --format json``: the folder, the models, the default download set."""

    weights_dir: str
    models: tuple[ModelEntry, ...]
    default_models: tuple[str, ...]

    @property
    def missing_defaults(self) -> tuple[str, ...]:
        present = {model.name for model in self.models if model.present}
        return tuple(name for name in self.default_models if name not in present)


def parse_model_listing(text: str) -> ModelListing:
    """Read the manager's JSON listing. Raises ModelListingError for anything else."""
    try:
        document = json.loads(text)
        models = tuple(
            ModelEntry(
                name=str(entry["name"]),
                present=bool(entry["present"]),
                size_bytes=_optional_int(entry.get("approx_size_bytes")),
                purpose=str(entry.get("purpose", "")),
                licence=str(entry.get("licence", "")),
            )
            for entry in document["models"]
        )
        return ModelListing(
            weights_dir=str(document["weights_dir"]),
            models=models,
            default_models=tuple(str(name) for name in document.get("default_full_models", ())),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelListingError(f"The weights manager's listing is not readable ({exc}).") from exc


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def read_model_listing(request: WeightsRequest, timeout_s: float = _LIST_TIMEOUT_S) -> ModelListing:
    """Run ``weights list --format json`` and read it. Raises ModelListingError."""
    try:
        completed = subprocess.run(
            request.list_command(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=request.environment(),
            timeout=timeout_s,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelListingError(f"Cannot list the models with {request.python}: {exc}") from exc
    if completed.returncode != 0:
        lines = [line for line in completed.stderr.splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else f"exit code {completed.returncode}"
        raise ModelListingError(f"Listing the models failed: {detail}")
    return parse_model_listing(completed.stdout)


@dataclass(frozen=True)
class ListingState:
    """What the preferences show: reading, the listing, or why there is none."""

    reading: bool
    listing: ModelListing | None = None
    error: str = ""


class ModelListingCache:
    """One listing per request, read on a worker thread the first time it is asked for.

    ``state(request)`` never blocks: it starts the read when there is no answer for this
    request yet and says ``reading`` meanwhile. ``refresh(request)`` forgets the answer.
    """

    def __init__(self, read: Callable[[WeightsRequest], ModelListing] = read_model_listing):
        self._read = read
        self._lock = threading.Lock()
        self._states: dict[WeightsRequest, ListingState] = {}
        self._workers: dict[WeightsRequest, threading.Thread] = {}

    def state(self, request: WeightsRequest) -> ListingState:
        with self._lock:
            known = self._states.get(request)
            if known is not None:
                return known
            reading = ListingState(reading=True)
            self._states[request] = reading
            worker = threading.Thread(
                target=self._fill, args=(request,), name="ram-weights-list", daemon=True
            )
            self._workers[request] = worker
        worker.start()
        return reading

    def refresh(self, request: WeightsRequest) -> None:
        """Forget the answer for ``request``: the next ``state`` reads it again."""
        with self._lock:
            if not self._states.get(request, ListingState(False)).reading:
                self._states.pop(request, None)

    def wait(self, request: WeightsRequest, timeout: float | None = None) -> ListingState:
        """Block until the read for ``request`` (started if needed) has an answer."""
        self.state(request)
        with self._lock:
            worker = self._workers.get(request)
        if worker is not None:
            worker.join(timeout)
        return self.state(request)

    def _fill(self, request: WeightsRequest) -> None:
        try:
            answer = ListingState(reading=False, listing=self._read(request))
        except ModelListingError as exc:
            answer = ListingState(reading=False, error=str(exc))
        with self._lock:
            self._states[request] = answer
