"""The modal video import, ticked as ``modal()`` ticks it, against real subprocesses.

Modal operators do not run in the bpy module, so these tests call the tick logic that
``RAM_OT_import_video.modal`` forwards to, with the real ``bpy.context`` and a stand-in
event (``type``, ``value``).
"""

import time
from types import SimpleNamespace

import bpy
import pytest
from conftest import DEMO_VIDEO, REPO, fake_pipeline, scene_state, submodule, write_result

TIMER = SimpleNamespace(type="TIMER", value="NOTHING")
ESC = SimpleNamespace(type="ESC", value="PRESS")
MOUSE = SimpleNamespace(type="MOUSEMOVE", value="NOTHING")


def _emit(event: dict) -> str:
    return f"print(json.dumps({event!r}), flush=True)\n"


def _start(python: str):
    """A started import, ticked by a ModalJob that holds the running-import slot."""
    video_import = submodule("video_import")
    request = video_import.make_run_request(bpy.context, str(DEMO_VIDEO), python)
    modal_job = video_import.import_modal_job(video_import.start_video_import(request))
    modal_job.begin(bpy.context)
    return modal_job


def _tick_until_ended(modal_job, timeout_s: float = 30.0):
    """Timer ticks until the job ends; returns (final result, statuses seen before)."""
    statuses = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = modal_job.tick(bpy.context, TIMER)
        if result.ended:
            return result, statuses
        statuses.append(result.status)
        time.sleep(0.02)
    raise AssertionError("the job did not end")


def test_ticks_show_progress_and_import_when_the_pipeline_succeeds(ext, tmp_path):
    video_import = submodule("video_import")
    result_path = write_result(tmp_path / "take.ram", {2: range(8), 7: range(2, 8)})
    python = fake_pipeline(
        tmp_path,
        _emit({"event": "stage", "stage": "tracking", "total": 8})
        + _emit({"event": "progress", "stage": "tracking", "done": 4, "total": 8})
        + "time.sleep(0.5)\n"
        + _emit({"event": "done", "result": str(result_path)}),
    )
    modal_job = _start(python)
    assert video_import.RUNNING_IMPORT.current is modal_job
    assert bpy.ops.ram.import_video.poll() is False
    assert modal_job.tick(bpy.context, MOUSE).status == "PASS_THROUGH"
    deadline = time.monotonic() + 20
    while modal_job.job.done != 4 and time.monotonic() < deadline:
        assert modal_job.tick(bpy.context, TIMER).status == "RUNNING_MODAL"
        time.sleep(0.02)
    assert modal_job.status_line() == "RAM: tracking 4/8"
    result, statuses = _tick_until_ended(modal_job)
    assert set(statuses) <= {"RUNNING_MODAL"}
    assert result.status == "FINISHED"
    assert result.reports == (("INFO", "Imported 2 track(s) into RAM take.ram"),)
    assert video_import.RUNNING_IMPORT.current is None
    assert video_import.RUNNING_IMPORT.last_message == result.reports[-1][1]
    armature = bpy.data.objects["RAM_Person_007"]
    curves = submodule("animation").action_fcurves(armature.animation_data.action, armature)
    assert {len(curve.keyframe_points) for curve in curves} == {6}


def test_escape_mid_run_ends_the_subprocess_and_changes_nothing(ext, tmp_path):
    video_import = submodule("video_import")
    python = fake_pipeline(
        tmp_path,
        "for i in range(600):\n"
        "    " + _emit({"event": "progress", "stage": "tracking", "done": 1, "total": 600})
        + "    time.sleep(0.05)",
    )
    before = scene_state()
    modal_job = _start(python)
    deadline = time.monotonic() + 20
    while modal_job.job.stage != "tracking" and time.monotonic() < deadline:
        modal_job.tick(bpy.context, TIMER)
        time.sleep(0.02)
    assert not modal_job.job.finished()
    result = modal_job.tick(bpy.context, ESC)
    assert result.status == "CANCELLED"
    assert result.reports == (("WARNING", "RAM import cancelled; the scene is unchanged"),)
    assert modal_job.job.finished() and modal_job.job.outcome().cancelled
    assert video_import.RUNNING_IMPORT.current is None
    assert scene_state() == before


def test_cancel_button_stops_the_job_at_the_next_tick(ext, tmp_path):
    python = fake_pipeline(tmp_path, "time.sleep(60)")
    before = scene_state()
    modal_job = _start(python)
    assert bpy.ops.ram.cancel_import() == {"FINISHED"}
    result = modal_job.tick(bpy.context, TIMER)
    assert result.status == "CANCELLED" and len(result.reports) == 1
    assert modal_job.job.finished()
    assert bpy.ops.ram.cancel_import.poll() is False
    assert scene_state() == before


@pytest.mark.parametrize(
    ("exit_code", "message", "report"),
    [
        (2, "cannot read video X", "The pipeline refused the input: cannot read video X"),
        (3, "sam2.1_hiera_small is not in /w", "A model or weight file is missing: "),
        (1, "internal error: KeyError: 'x'", "The pipeline failed: internal error: KeyError"),
    ],
)
def test_each_error_exit_code_is_one_error_report(ext, tmp_path, exit_code, message, report):
    python = fake_pipeline(
        tmp_path,
        _emit({"event": "stage", "stage": "tracking", "total": 4})
        + _emit({"event": "error", "message": message, "exit_code": exit_code})
        + f"print({'error: ' + message!r}, file=sys.stderr)\nsys.exit({exit_code})",
    )
    before = scene_state()
    result, _ = _tick_until_ended(_start(python))
    assert result.status == "CANCELLED"
    assert len(result.reports) == 1
    level, text = result.reports[0]
    assert level == "ERROR" and text.startswith(report)
    assert scene_state() == before


def test_success_without_a_result_folder_is_one_error(ext, tmp_path):
    python = fake_pipeline(tmp_path, "sys.exit(0)")
    result, _ = _tick_until_ended(_start(python))
    assert result.reports == (
        ("ERROR", "The pipeline finished without naming its result."),
    )


PIPELINE_PYTHON = REPO / ".venv" / "bin" / "python"


@pytest.mark.skipif(not PIPELINE_PYTHON.is_file(), reason="no .venv with the pipeline")
def test_real_pipeline_on_a_bad_video_reports_bad_input(ext, tmp_path):
    video_import = submodule("video_import")
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_bytes(b"not a video at all")
    request = video_import.make_run_request(bpy.context, str(bad_video), str(PIPELINE_PYTHON))
    modal_job = video_import.import_modal_job(video_import.start_video_import(request))
    modal_job.begin(bpy.context)
    before = scene_state()
    result, _ = _tick_until_ended(modal_job, timeout_s=60)
    assert modal_job.job.outcome().exit_code == 2
    assert len(result.reports) == 1
    level, text = result.reports[0]
    assert level == "ERROR" and text.startswith("The pipeline refused the input: ")
    assert "broken.mp4" in text
    assert scene_state() == before
