"""ram-core batch: a folder of clips on a local Ray or a process pool gives the results of
single runs, reports the bad file, skips finished clips, survives a crashed worker and
leaves nothing half-written when cancelled.

The clips are 12-frame cuts of the demo clip (a couple of seconds each on the lite
backend). Ray's tests need the cluster extra; they skip without it, except under
RAM_REQUIRE_CLUSTER=1 (tools/test.sh, so CI), where a missing Ray fails them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ram_core import batch
from ram_core.config import load_config
from ram_core.errors import BadInputError, MissingModelError
from ram_core.io.protocol import ExitCode
from ram_core.io.result import load_result
from ram_core.video.reader import iter_frames, probe_video

ROOT = Path(__file__).resolve().parents[1]
DEMO_CLIP = ROOT / "demo" / "three_people.mp4"
CONFIG = ROOT / "demo" / "demo.yaml"
CLIP_FRAMES = 12
CLIP_STARTS = {"walk_a": 0, "walk_b": 30, "walk_c": 60}
# Manifest fields that say when and how fast, not what: they differ between two runs.
RUN_FIELDS = ("created", "timings_s")

WITHOUT_RAY = (
    importlib.util.find_spec("ray") is None and os.environ.get("RAM_REQUIRE_CLUSTER") != "1"
)
WITHOUT_RAY_REASON = (
    "Ray is not installed (pip install -e '.[cluster]'); RAM_REQUIRE_CLUSTER=1 fails"
)
requires_ray = pytest.mark.skipif(WITHOUT_RAY, reason=WITHOUT_RAY_REASON)


def cut_clip(target: Path, start: int, frames: int = CLIP_FRAMES) -> Path:
    """Frames [start, start + frames) of the demo clip, re-encoded with OpenCV."""
    info = probe_video(DEMO_CLIP)
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
    writer = cv2.VideoWriter(str(target), fourcc, info.fps, (info.width, info.height))
    for frame in iter_frames(DEMO_CLIP, start, start + frames):
        writer.write(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return target


def ram_core(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ram_core", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def summary_clips(out: Path) -> dict[str, dict]:
    document = json.loads((out / batch.SUMMARY_FILE_NAME).read_text(encoding="utf-8"))
    assert document["format"] == batch.SUMMARY_FORMAT
    return {Path(clip["video"]).name: clip for clip in document["clips"]}


def assert_same_result(single: Path, batched: Path) -> None:
    """Every array, every mask and the manifest (but its time and timings) are equal."""
    for name in ("tracks.npz", "camera.npz"):
        assert (single / name).is_file() == (batched / name).is_file(), name
        if not (single / name).is_file():
            continue
        with np.load(single / name) as one, np.load(batched / name) as other:
            assert sorted(one.files) == sorted(other.files)
            for key in one.files:
                assert one[key].dtype == other[key].dtype, key
                np.testing.assert_array_equal(one[key], other[key], err_msg=key)
    masks = sorted(p.name for p in (single / "masks").iterdir())
    assert masks and masks == sorted(p.name for p in (batched / "masks").iterdir())
    for mask in masks:
        assert (single / "masks" / mask).read_bytes() == (batched / "masks" / mask).read_bytes()
    one, other = (load_result(p, apply_edits=False).manifest for p in (single, batched))
    for field in RUN_FIELDS:
        one.pop(field), other.pop(field)
    assert one == other


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for name, start in CLIP_STARTS.items():
        cut_clip(folder / f"{name}.mp4", start)
    (folder / "bad.mp4").write_text("a text file with a video's name\n")
    return folder


@pytest.fixture(scope="module")
def single_runs(clips, tmp_path_factory) -> dict[str, Path]:
    """Each good clip through a single `ram-core run` with the batch's settings."""
    folder = tmp_path_factory.mktemp("singles")
    results = {}
    for name in CLIP_STARTS:
        out = folder / f"{name}.ram"
        proc = ram_core(
            "run", str(clips / f"{name}.mp4"), "-o", str(out),
            "--config", str(CONFIG), "--no-preview", "--progress", "none",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        results[name] = out
    return results


def batch_settings() -> batch.RunSettings:
    """What `--config demo/demo.yaml --no-preview` gives."""
    config = load_config(CONFIG)
    pipeline = dataclasses.replace(config.pipeline, preview=False)
    return batch.RunSettings(config=dataclasses.replace(config, pipeline=pipeline))


@requires_ray
def test_local_ray_equals_single_runs_names_the_bad_file_and_skips_on_rerun(
    clips, single_runs, tmp_path
):
    out = tmp_path / "out"
    command = (
        "batch", str(clips), "-o", str(out), "--ray", "local", "--workers", "2",
        "--config", str(CONFIG), "--no-preview", "--progress", "json",
    )  # fmt: skip
    proc = ram_core(*command)
    assert proc.returncode == ExitCode.BAD_INPUT, proc.stderr
    assert "Traceback" not in proc.stderr
    last = events(proc.stdout)[-1]
    assert last["event"] == "error" and last["exit_code"] == ExitCode.BAD_INPUT
    assert "1 of 4 clips failed" in last["message"] and "bad.mp4" in last["message"]

    entries = summary_clips(out)
    assert entries["bad.mp4"]["status"] == "failed"
    assert entries["bad.mp4"]["exit_code"] == ExitCode.BAD_INPUT
    assert "bad.mp4" in entries["bad.mp4"]["reason"]
    for name, single in single_runs.items():
        entry = entries[f"{name}.mp4"]
        assert entry["status"] == "ok", entry
        assert entry["track_count"] == len(load_result(single).track_ids())
        assert entry["timings_s"]["run"] > 0 and entry["timings_s"]["pipeline"]["frames"] == 12
        assert_same_result(single, out / f"{name}.ram")
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("*.ram/tracks.npz")}
    assert sorted(p.name for p in out.iterdir()) == [
        "summary.json", "walk_a.ram", "walk_b.ram", "walk_c.ram",
    ]  # fmt: skip

    again = ram_core(*command)
    assert again.returncode == ExitCode.BAD_INPUT, again.stderr
    entries = summary_clips(out)
    assert {n: e["status"] for n, e in entries.items()} == {
        "bad.mp4": "failed", "walk_a.mp4": "skipped", "walk_b.mp4": "skipped",
        "walk_c.mp4": "skipped",
    }  # fmt: skip
    assert entries["walk_a.mp4"]["track_count"] == len(
        load_result(single_runs["walk_a"]).track_ids()
    )
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.ram/tracks.npz")} == written


def test_the_process_pool_gives_the_same_results(clips, single_runs, tmp_path):
    out = tmp_path / "out"
    proc = ram_core(
        "batch", *(str(clips / f"{name}.mp4") for name in CLIP_STARTS), "-o", str(out),
        "--workers", "2", "--config", str(CONFIG), "--no-preview", "--progress", "bar",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"done: {out / 'summary.json'}" in proc.stderr
    document = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert document["engine"] == "pool" and document["workers"] == 2
    assert document["exit_code"] == 0 and document["counts"]["ok"] == 3
    for name, single in single_runs.items():
        assert_same_result(single, out / f"{name}.ram")


def test_a_result_is_skipped_only_when_made_from_this_video_with_these_settings(
    single_runs, tmp_path
):
    clip = cut_clip(tmp_path / "walk_a.mp4", CLIP_STARTS["walk_a"])
    out = tmp_path / "out"
    out.mkdir()
    proc = ram_core(
        "run", str(clip), "-o", str(out / "walk_a.ram"), "--config", str(CONFIG),
        "--no-preview", "--progress", "none",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    settings = batch_settings()
    (job,) = batch.plan_batch([clip], out, settings)
    assert job.skip_reason is not None and job.rerun_reason is None
    assert job.existing_track_count == len(load_result(out / "walk_a.ram").track_ids())

    other = batch.RunSettings(config=load_config(None))
    (job,) = batch.plan_batch([clip], out, other)
    assert job.skip_reason is None and "other settings" in job.rerun_reason
    (job,) = batch.plan_batch([clip], out, batch.RunSettings("full", config=settings.config))
    assert job.skip_reason is None and "lite backend" in job.rerun_reason

    # The same name from another file: the single run's result was made from another path.
    shutil.copytree(single_runs["walk_b"], out / "walk_b.ram")
    twin = cut_clip(tmp_path / "walk_b.mp4", CLIP_STARTS["walk_b"])
    (job,) = batch.plan_batch([twin], out, settings)
    assert job.skip_reason is None and "made from" in job.rerun_reason

    later = time.time() + 10
    os.utime(clip, (later, later))  # the video changed after its result was made
    (job,) = batch.plan_batch([clip], out, settings)
    assert job.skip_reason is None and "changed" in job.rerun_reason


def test_inputs_are_files_and_the_videos_directly_in_folders(tmp_path):
    folder = tmp_path / "shoot"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.mp4", "A.MOV", "notes.txt", ".hidden.mp4", "sub/c.mp4"):
        (folder / name).write_bytes(b"x")
    loose = tmp_path / "loose.video"
    loose.write_bytes(b"x")
    found = batch.find_videos([folder, loose, folder / "b.mp4"])
    assert [p.name for p in found] == ["A.MOV", "b.mp4", "loose.video"]
    jobs = batch.plan_batch([folder], tmp_path / "out", batch.RunSettings())
    assert [j.output.name for j in jobs] == ["A.ram", "b.ram"]
    assert all(j.skip_reason is None and j.rerun_reason is None for j in jobs)
    assert not (tmp_path / "out").exists()  # planning writes nothing

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "b.mkv").write_bytes(b"x")
    with pytest.raises(BadInputError, match=r"b\.mkv.*b\.ram|b\.mp4.*b\.mkv"):
        batch.plan_batch([folder, tmp_path / "other"], tmp_path / "out", batch.RunSettings())
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no videos"):
        batch.plan_batch([folder, tmp_path / "empty"], tmp_path / "out", batch.RunSettings())
    (tmp_path / "a_file").write_text("")
    with pytest.raises(BadInputError, match="not a folder"):
        batch.plan_batch([folder], tmp_path / "a_file", batch.RunSettings())


def crash_on_clip_named_crash(job: batch.ClipJob, settings: batch.RunSettings) -> batch.ClipOutcome:
    """A pool worker that dies on the clip called crash (as a native crash would), after
    starting its result folder; every other clip succeeds after half a second, so one is
    running beside the crash and dies with it."""
    if job.video.stem == "crash":
        job.output.with_name(f"{job.output.name}.tmp-1-dead").mkdir(exist_ok=True)
        time.sleep(0.2)  # the pool has handed the next clip to the other worker
        os._exit(9)
    time.sleep(0.5)
    return batch.ClipOutcome(batch.STATUS_OK, track_count=1, run_s=0.5)


def test_a_crashed_worker_fails_only_its_own_clip(tmp_path):
    out = tmp_path / "out"
    jobs = [
        batch.ClipJob(tmp_path / f"{name}.mp4", out / f"{name}.ram")
        for name in ("one", "crash", "two", "three")
    ]
    summary = batch.run_batch(
        jobs, batch.RunSettings(), batch.PoolEngine(2), out, runner=crash_on_clip_named_crash
    )
    statuses = {job.video.stem: summary.outcome(job).status for job in jobs}
    assert statuses == {"one": "ok", "crash": "failed", "two": "ok", "three": "ok"}
    assert "died twice" in summary.outcome(jobs[1]).reason
    assert summary.exit_code == ExitCode.INTERNAL
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]  # the stray folder went


def _default_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("engine", ["pool", "ray"])
def test_ctrl_c_cancels_and_leaves_nothing_half_written(engine, tmp_path):
    if engine == "ray" and WITHOUT_RAY:
        pytest.skip(WITHOUT_RAY_REASON)
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("first", "second"):
        shutil.copy(DEMO_CLIP, clips / f"{name}.mp4")  # 84 frames: seconds to run
    out = tmp_path / "out"
    ray_args = ["--ray", "local", "--workers", "1"] if engine == "ray" else []
    # A shell's background job starts with Ctrl-C ignored, and a Python started so keeps
    # ignoring it: the command gets the terminal's default, as from a prompt.
    proc = subprocess.Popen(
        [sys.executable, "-m", "ram_core", "batch", str(clips), "-o", str(out),
         "--no-preview", "--progress", "json", *ray_args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_ctrl_c,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(out.glob("*.ram.tmp-*/masks/*.png")):  # a clip is being written
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no clip started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.CANCELLED, stderr
    assert "Traceback" not in stderr
    last = events(stdout)[-1]
    assert last["event"] == "error" and last["message"].startswith("cancelled")
    assert [p.name for p in out.iterdir() if ".tmp-" in p.name] == []
    entries = summary_clips(out)
    assert entries["first.mp4"]["status"] == "cancelled"
    for name, entry in entries.items():
        result = out / f"{Path(name).stem}.ram"
        assert entry["status"] in ("ok", "cancelled")
        assert result.exists() == (entry["status"] == "ok")  # only complete results
    assert json.loads((out / "summary.json").read_text())["exit_code"] == ExitCode.CANCELLED


def test_ray_missing_is_exit_3_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    jobs = [batch.ClipJob(tmp_path / "a.mp4", tmp_path / "out" / "a.ram")]
    with pytest.raises(MissingModelError, match=r"ram-core\[cluster\]"):
        batch.run_batch(jobs, batch.RunSettings(), batch.RayEngine("local"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_clip_holds_a_gpu_only_when_it_may_run_the_full_backend_on_cuda():
    assert batch.gpus_per_clip(batch.RunSettings("full", "auto"), 4.0) == 1
    assert batch.gpus_per_clip(batch.RunSettings("auto", "cuda"), 1.0) == 1
    assert batch.gpus_per_clip(batch.RunSettings("lite", "auto"), 4.0) == 0
    assert batch.gpus_per_clip(batch.RunSettings("full", "cpu"), 4.0) == 0
    assert batch.gpus_per_clip(batch.RunSettings("full", "auto"), 0.0) == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-o", "out"], ["INPUT"]),
        (["v.mp4", "-o", "out", "--ray", "auto", "--workers", "2"], ["--workers", "--ray local"]),
        (["v.mp4", "-o", "out", "--workers", "0"], ["--workers"]),
        (["nothing_here", "-o", "out"], ["no videos", "nothing_here"]),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, args, words):
    (tmp_path / "nothing_here").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "ram_core", "batch", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == ExitCode.BAD_INPUT, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "out").exists()
