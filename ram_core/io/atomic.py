"""Files replaced atomically: written to a synced temporary file beside the target, then
renamed over it, so a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def temporary_sibling(target: Path, role: str = "tmp") -> Path:
    """A name beside ``target`` that no other process or call will pick."""
    return target.with_name(f"{target.name}.{role}-{os.getpid()}-{secrets.token_hex(4)}")


@contextmanager
def atomic_file(
    target: str | Path, mode: str = "wb", encoding: str | None = None
) -> Iterator[IO[Any]]:
    """A stream whose content replaces ``target`` when the block ends without an error.

    On any error (or Ctrl-C) the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    temporary = temporary_sibling(target)
    try:
        with open(temporary, mode, encoding=encoding) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
