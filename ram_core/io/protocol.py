"""The interface between the pipeline process and whoever runs it (the Blender add-on, a
script, a render farm), defined once: exit codes, progress events and the run's choices.

Standard library only: the add-on imports this inside Blender to start ``ram-core`` and to
read what it says, and ``ram_core.cli`` imports it to say it.

Progress events are one JSON object per line on stdout (``--progress json``):

- ``{"event": "stage", "stage": S, "total": N}``: a stage starts (N frames, or null);
- ``{"event": "progress", "stage": S, "done": D, "total": N}``;
- ``{"event": "info", "message": M}``: a line for the person (which backend, and why);
- ``{"event": "done", "result": PATH}``: success, and where the result is;
- ``{"event": "error", "message": M, "exit_code": C}``: failure, in one sentence.
"""

from __future__ import annotations

import enum
import json
from typing import Any


class ExitCode(enum.IntEnum):
    """What the process's exit status means."""

    OK = 0
    INTERNAL = 1  # a bug: one line, the traceback only with RAM_DEBUG=1
    BAD_INPUT = 2  # unreadable or truncated video, bad path, bad config, bad usage
    MISSING_MODEL = 3  # a model, weight file or body model is missing; the message says how
    CANCELLED = 130  # Ctrl-C or SIGTERM; nothing half-written is left


EVENT_STAGE = "stage"
EVENT_PROGRESS = "progress"
EVENT_INFO = "info"
EVENT_DONE = "done"
EVENT_ERROR = "error"
# What a reader makes of a stdout line that is not an event (a library printing).
EVENT_OUTPUT = "output"
EVENT_KINDS = (EVENT_STAGE, EVENT_PROGRESS, EVENT_INFO, EVENT_DONE, EVENT_ERROR)

PROGRESS_MODES = ("bar", "json", "none")
BACKENDS = ("auto", "full", "lite")
DEVICES = ("auto", "cpu", "cuda")


def stage_event(stage: str, total: int | None) -> dict[str, Any]:
    return {"event": EVENT_STAGE, "stage": stage, "total": total}


def progress_event(stage: str, done: int, total: int | None) -> dict[str, Any]:
    return {"event": EVENT_PROGRESS, "stage": stage, "done": done, "total": total}


def info_event(message: str) -> dict[str, Any]:
    return {"event": EVENT_INFO, "message": message}


def done_event(result: str) -> dict[str, Any]:
    return {"event": EVENT_DONE, "result": result}


def error_event(message: str, exit_code: int) -> dict[str, Any]:
    return {"event": EVENT_ERROR, "message": message, "exit_code": int(exit_code)}


def event_line(event: dict[str, Any]) -> str:
    """One event as the line written to stdout (without the newline)."""
    return json.dumps(event)


def parse_event_line(line: str) -> dict[str, Any] | None:
    """The event a stdout line holds, or None for a blank line.

    A line that is not a JSON object with a known ``event`` (a native library printing on
    stdout) becomes ``{"event": "output", "line": LINE}``, so a reader never fails on it.
    """
    line = line.strip()
    if not line:
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        event = None
    if not isinstance(event, dict) or event.get("event") not in EVENT_KINDS:
        return {"event": EVENT_OUTPUT, "line": line}
    return event
