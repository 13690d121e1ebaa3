"""The command line: bad input gets one clear line, the documented exit code, no output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ram_core.io.protocol import ExitCode


def ram_core(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ram_core", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_clear_error(proc: subprocess.CompletedProcess, code: int, *words: str):
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0]


def write_video(path: Path, frames: int, size=(96, 64)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (i * 9) % 255, np.uint8))
    writer.release()
    return path


def bad_inputs(tmp: Path) -> dict[str, Path]:
    (tmp / "folder.mp4").mkdir()
    (tmp / "notes.mp4").write_text("this is a text file, not a video\n")
    (tmp / "empty.mp4").write_bytes(b"")
    whole = write_video(tmp / "whole.mp4", 30).read_bytes()
    (tmp / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    return {
        "missing": tmp / "missing.mp4",
        "directory": tmp / "folder.mp4",
        "text": tmp / "notes.mp4",
        "empty": tmp / "empty.mp4",
        "truncated": tmp / "truncated.mp4",
        "zero frames": write_video(tmp / "zero.mp4", 0),
    }


@pytest.mark.parametrize(
    "case", ["missing", "directory", "text", "empty", "truncated", "zero frames"]
)
def test_bad_video_exits_2_with_one_line_and_no_output(tmp_path, case):
    video = bad_inputs(tmp_path)[case]
    proc = ram_core("run", str(video), "-o", "x.ram", "--progress", "bar", cwd=tmp_path)
    assert_one_clear_error(proc, ExitCode.BAD_INPUT, video.name)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith("x.ram")]
    assert leftovers == []


def test_json_progress_reports_the_error_as_an_event(tmp_path):
    proc = ram_core("run", "nope.mp4", "-o", "x.ram", "--progress", "json", cwd=tmp_path)
    assert proc.returncode == ExitCode.BAD_INPUT
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[-1]["event"] == "error"
    assert events[-1]["exit_code"] == ExitCode.BAD_INPUT
    assert "nope.mp4" in events[-1]["message"]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "v.mp4"],  # no -o
        ["run", "v.mp4", "-o", "x.ram", "--backend", "magic"],
        ["run", "v.mp4", "-o", "x.ram", "--progress", "loud"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(tmp_path, args):
    write_video(tmp_path / "v.mp4", 5)
    assert_one_clear_error(ram_core(*args, cwd=tmp_path), ExitCode.BAD_INPUT)


def test_bad_range_and_bad_config_exit_2(tmp_path):
    write_video(tmp_path / "v.mp4", 5)
    proc = ram_core("run", "v.mp4", "-o", "x.ram", "--start", "4", "--end", "2", cwd=tmp_path)
    assert_one_clear_error(proc, ExitCode.BAD_INPUT)
    (tmp_path / "bad.yaml").write_text("segfollow: {alpha: 3}\n")
    proc = ram_core("run", "v.mp4", "-o", "x.ram", "--config", "bad.yaml", cwd=tmp_path)
    assert_one_clear_error(proc, ExitCode.BAD_INPUT, "bad.yaml", "alpha")
    (tmp_path / "typo.yaml").write_text("segfollow: {alpah: 0.5}\n")
    proc = ram_core("run", "v.mp4", "-o", "x.ram", "--config", "typo.yaml", cwd=tmp_path)
    assert_one_clear_error(proc, ExitCode.BAD_INPUT, "alpah")
    assert not (tmp_path / "x.ram").exists()


def test_full_backend_without_its_models_exits_3(tmp_path):
    write_video(tmp_path / "v.mp4", 5)
    proc = ram_core("run", "v.mp4", "-o", "x.ram", "--backend", "full", cwd=tmp_path)
    assert_one_clear_error(proc, ExitCode.MISSING_MODEL, "--backend lite")
    assert not (tmp_path / "x.ram").exists()


def test_output_that_is_not_a_result_is_refused(tmp_path):
    write_video(tmp_path / "v.mp4", 5)
    (tmp_path / "x.ram").mkdir()
    (tmp_path / "x.ram" / "my_notes.txt").write_text("precious")
    proc = ram_core("run", "v.mp4", "-o", "x.ram", cwd=tmp_path)
    assert_one_clear_error(proc, ExitCode.BAD_INPUT, "x.ram")
    assert (tmp_path / "x.ram" / "my_notes.txt").read_text() == "precious"


def test_combine_refuses_an_unknown_version(tmp_path):
    folder = tmp_path / "future.ram"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"format": "ram-motion", "version": 9}))
    proc = ram_core("combine", str(folder), cwd=tmp_path)
    assert_one_clear_error(proc, ExitCode.BAD_INPUT, "version 9")
