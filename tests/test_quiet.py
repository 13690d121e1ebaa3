"""Native libraries' stderr hidden, ours kept (``ram_core.io.quiet``)."""

from __future__ import annotations

import os
import sys

from ram_core.io.quiet import native_stderr_hidden


def test_what_goes_straight_to_the_descriptor_is_hidden_and_ours_is_kept(capfd):
    with native_stderr_hidden():
        os.write(2, b"W0000 a native library's log line\n")
        print("our progress", file=sys.stderr)
    os.write(2, b"after: shown again\n")
    err = capfd.readouterr().err
    assert "W0000" not in err
    assert "our progress" in err and "after: shown again" in err


def test_not_hiding_lets_everything_through(capfd):
    with native_stderr_hidden(hidden=False):
        os.write(2, b"W0000 native\n")
    assert "W0000 native" in capfd.readouterr().err


def test_a_captured_sys_stderr_keeps_receiving(capsys):
    with native_stderr_hidden():
        print("ours", file=sys.stderr)
    assert "ours" in capsys.readouterr().err
