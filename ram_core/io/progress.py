"""Progress reporting: a tqdm bar for people, JSON lines for Blender, or nothing.

The JSON events are those of ``ram_core.io.protocol`` (one definition for both processes).
tqdm is imported only when a bar is drawn, so this module loads inside Blender.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Protocol

from ram_core.io.protocol import (
    PROGRESS_MODES,
    done_event,
    error_event,
    event_line,
    info_event,
    progress_event,
    stage_event,
)


class Progress(Protocol):
    def stage(self, name: str, total: int | None = None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def info(self, message: str) -> None: ...
    def done(self, result: str) -> None: ...
    def error(self, message: str, exit_code: int) -> None: ...
    def close(self) -> None: ...


class NoProgress:
    """Says nothing but errors (on stderr, so a script still learns why it failed)."""

    def __init__(self, err: IO[str] | None = None) -> None:
        self._err = err or sys.stderr

    def stage(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def done(self, result: str) -> None:
        pass

    def error(self, message: str, exit_code: int) -> None:
        print(f"error: {message}", file=self._err)

    def close(self) -> None:
        pass


class BarProgress(NoProgress):
    """A tqdm bar per stage on stderr; messages above it."""

    def __init__(self, err: IO[str] | None = None) -> None:
        super().__init__(err)
        self._bar: Any = None

    def stage(self, name: str, total: int | None = None) -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(total=total, desc=name, unit="frame", file=self._err, leave=True)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def info(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=self._err)
        else:
            print(message, file=self._err)

    def done(self, result: str) -> None:
        self.close()
        print(f"done: {result}", file=self._err)

    def error(self, message: str, exit_code: int) -> None:
        self.close()
        super().error(message, exit_code)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class JsonProgress:
    """JSON lines on stdout; progress events at most every ``interval_s`` per stage."""

    def __init__(self, out: IO[str] | None = None, interval_s: float = 0.2) -> None:
        self._out = out or sys.stdout
        self._interval_s = interval_s
        self._stage = ""
        self._done = 0
        self._total: int | None = None
        self._last_emit = 0.0

    def _emit(self, event: dict[str, Any]) -> None:
        self._out.write(event_line(event) + "\n")
        self._out.flush()

    def stage(self, name: str, total: int | None = None) -> None:
        self._stage, self._done, self._total = name, 0, total
        self._emit(stage_event(name, total))

    def advance(self, n: int = 1) -> None:
        self._done += n
        now = time.monotonic()
        finished = self._total is not None and self._done >= self._total
        if finished or now - self._last_emit >= self._interval_s:
            self._last_emit = now
            self._emit(progress_event(self._stage, self._done, self._total))

    def info(self, message: str) -> None:
        self._emit(info_event(message))

    def done(self, result: str) -> None:
        self._emit(done_event(result))

    def error(self, message: str, exit_code: int) -> None:
        self._emit(error_event(message, exit_code))
        print(f"error: {message}", file=sys.stderr)

    def close(self) -> None:
        pass


def make_progress(mode: str) -> Progress:
    """A reporter for ``--progress`` (bar, json or none)."""
    if mode == "bar":
        return BarProgress()
    if mode == "json":
        return JsonProgress()
    if mode == "none":
        return NoProgress()
    raise ValueError(f"unknown progress mode {mode!r}; choose one of {', '.join(PROGRESS_MODES)}")
