"""Errors a user can cause, each with the exit code the command line documents.

Anything else that escapes is an internal error (exit 1). The codes themselves are defined
once, in ``ram_core.io.protocol.ExitCode``, which the add-on reads too.
"""

from ram_core.io.protocol import ExitCode


class RamError(Exception):
    """Base for errors that become one clear line on stderr and a documented exit code."""

    exit_code: int = ExitCode.INTERNAL


class BadInputError(RamError):
    """Unreadable video, bad path, bad config or bad usage (exit 2)."""

    exit_code = ExitCode.BAD_INPUT


class MissingModelError(RamError):
    """A model, weight file or body model is missing; the message says how to get it (exit 3)."""

    exit_code = ExitCode.MISSING_MODEL


class CancelledError(RamError):
    """The run was cancelled (Ctrl-C or SIGTERM) (exit 130)."""

    exit_code = ExitCode.CANCELLED
