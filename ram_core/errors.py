"""Errors a user can cause, each with the exit code the command line documents.

Anything else that escapes is an internal error (exit 1).
"""


class RamError(Exception):
    """Base for errors that become one clear line on stderr and a documented exit code."""

    exit_code = 1


class BadInputError(RamError):
    """Unreadable video, bad path, bad config or bad usage (exit 2)."""

    exit_code = 2


class MissingModelError(RamError):
    """A model, weight file or body model is missing; the message says how to get it (exit 3)."""

    exit_code = 3


class CancelledError(RamError):
    """The run was cancelled (Ctrl-C or SIGTERM) (exit 130)."""

    exit_code = 130
