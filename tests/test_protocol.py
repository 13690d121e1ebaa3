"""The interface between the pipeline process and the add-on, defined once: what the CLI
writes is what the add-on's reader parses, and every error class names a documented code."""

from __future__ import annotations

import io

import pytest

from ram_core.errors import BadInputError, CancelledError, MissingModelError, RamError
from ram_core.io.progress import JsonProgress
from ram_core.io.protocol import (
    EVENT_KINDS,
    EVENT_OUTPUT,
    ExitCode,
    done_event,
    error_event,
    info_event,
    parse_event_line,
    progress_event,
    stage_event,
)


def test_what_the_cli_writes_the_reader_parses():
    out = io.StringIO()
    progress = JsonProgress(out, interval_s=0.0)
    progress.stage("track", total=2)
    progress.advance()
    progress.info("backend: lite (lite requested)")
    progress.done("/tmp/x.ram")
    progress.error("bad video", ExitCode.BAD_INPUT)
    events = [parse_event_line(line) for line in out.getvalue().splitlines()]
    assert events == [
        stage_event("track", 2),
        progress_event("track", 1, 2),
        info_event("backend: lite (lite requested)"),
        done_event("/tmp/x.ram"),
        error_event("bad video", 2),
    ]
    assert {event["event"] for event in events} == set(EVENT_KINDS)


@pytest.mark.parametrize(
    "line", ["INFO: Created TensorFlow Lite XNNPACK delegate", "[1, 2]", '{"event": "new"}']
)
def test_a_line_that_is_not_an_event_is_kept_as_output(line):
    assert parse_event_line(line + "\n") == {"event": EVENT_OUTPUT, "line": line}
    assert parse_event_line("   \n") is None


def test_every_error_names_a_documented_exit_code():
    documented = {0, 1, 2, 3, 130}
    assert {code.value for code in ExitCode} == documented
    for error, code in (
        (RamError, ExitCode.INTERNAL),
        (BadInputError, ExitCode.BAD_INPUT),
        (MissingModelError, ExitCode.MISSING_MODEL),
        (CancelledError, ExitCode.CANCELLED),
    ):
        assert error.exit_code == code
