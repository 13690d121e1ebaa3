"""Quiet native libraries: what they write straight to the stderr file descriptor
(MediaPipe's and TensorFlow Lite's C++ logs, absl's warnings) goes nowhere, while Python's
``sys.stderr`` (our progress bar, messages, warnings and errors) still reaches the terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def native_stderr_hidden(hidden: bool = True) -> Iterator[None]:
    """Inside, file descriptor 2 points at the null device and ``sys.stderr`` at a copy of
    the real one; both are put back on the way out. Objects that keep a stream (progress,
    logging handlers) must be made inside to write to the terminal."""
    if not hidden:
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    original = sys.stderr
    ours = None
    if _writes_to_descriptor_2(original):
        ours = os.fdopen(
            os.dup(terminal),
            "w",
            buffering=1,
            encoding=getattr(original, "encoding", None) or "utf-8",
            errors="backslashreplace",
        )
        sys.stderr = ours
    # Else sys.stderr is not the descriptor (a caller capturing it): it keeps writing there.
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr = original
        os.dup2(terminal, 2)
        os.close(terminal)
        if ours is not None:
            ours.close()


def _writes_to_descriptor_2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False
