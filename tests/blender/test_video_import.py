"""import_video's plain functions against real subprocesses: failure, cancel, success."""

import json
import os
import time
from pathlib import Path

import bpy
import pytest
from conftest import DEMO_VIDEO, EXTENSION_MODULE, REPO, fake_pipeline, scene_state, submodule


def _request(tmp_path, python):
    return submodule("video_import").make_run_request(bpy.context, str(DEMO_VIDEO), python)


def test_operators_preferences_and_panels_are_registered(ext):
    assert bpy.ops.ram.import_video.idname() == "RAM_OT_import_video"
    assert bpy.ops.ram.import_result.idname() == "RAM_OT_import_result"
    prefs = bpy.context.preferences.addons[EXTENSION_MODULE].preferences
    assert prefs.backend == "auto" and prefs.device == "auto"
    assert hasattr(bpy.context.scene, "ram")
    assert bpy.types.VIEW3D_PT_ram_import.bl_category == "RAM"
    assert bpy.types.SEQUENCER_PT_ram_import.bl_category == "RAM"


def test_failing_pipeline_reports_one_error_and_leaves_the_scene(ext, tmp_path):
    video_import = submodule("video_import")
    python = fake_pipeline(
        tmp_path,
        'print(json.dumps({"event": "stage", "stage": "tracking", "total": 4}), flush=True)\n'
        'print(json.dumps({"event": "error", "message": "cannot read video X", '
        '"exit_code": 2}), flush=True)\n'
        'print("error: cannot read video X", file=sys.stderr)\n'
        "sys.exit(2)",
    )
    before = scene_state()
    job = video_import.start_video_import(_request(tmp_path, python))
    job.wait(timeout=20)
    result = video_import.finish_video_import(job, bpy.context.scene)
    assert not result.ok
    assert result.outcome.exit_code == 2
    assert result.outcome.message == "The pipeline refused the input: cannot read video X"
    assert scene_state() == before


def test_cancelled_pipeline_stops_and_leaves_the_scene(ext, tmp_path):
    video_import = submodule("video_import")
    python = fake_pipeline(
        tmp_path,
        "for i in range(600):\n"
        '    print(json.dumps({"event": "progress", "stage": "tracking", "done": i, '
        '"total": 600}), flush=True)\n'
        "    time.sleep(0.05)",
    )
    before = scene_state()
    job = video_import.start_video_import(_request(tmp_path, python))
    deadline = time.monotonic() + 20
    while not job.poll() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.stage == "tracking" and job.total == 600
    started = time.monotonic()
    job.cancel()
    job.wait(timeout=10)
    assert time.monotonic() - started < 5
    result = video_import.finish_video_import(job, bpy.context.scene)
    assert result.outcome.cancelled and not result.ok
    assert result.outcome.message == "The pipeline was cancelled."
    assert scene_state() == before


def test_missing_pipeline_python_is_one_clear_error(ext, tmp_path):
    bpy.context.scene.ram.video_filepath = str(DEMO_VIDEO)
    prefs = bpy.context.preferences.addons[EXTENSION_MODULE].preferences
    prefs.pipeline_python = str(tmp_path / "no_such_python")
    before = scene_state()
    with pytest.raises(RuntimeError, match="Cannot start the pipeline Python"):
        bpy.ops.ram.import_video()
    assert scene_state() == before
    prefs.pipeline_python = ""


PIPELINE_PYTHON = REPO / ".venv" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.skipif(not PIPELINE_PYTHON.is_file(), reason="no .venv with the pipeline")
def test_real_pipeline_on_twelve_frames_imports_armatures(ext, tmp_path):
    video_import = submodule("video_import")
    settings = bpy.context.scene.ram
    settings.use_frame_range, settings.frame_first, settings.frame_stop = True, 0, 12
    request = _request(tmp_path, str(PIPELINE_PYTHON))
    assert request.command()[-5:] == ["--start", "0", "--end", "12", "--no-preview"]
    job = video_import.start_video_import(request)
    outcome_events = []
    deadline = time.monotonic() + 120
    while not job.finished() and time.monotonic() < deadline:
        outcome_events += job.poll()
        time.sleep(0.05)
    result = video_import.finish_video_import(job, bpy.context.scene)
    assert result.ok, result.outcome.message
    assert any(e["event"] == "progress" for e in outcome_events + job.poll()) or job.total
    assert len(result.report.armatures) >= 1
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (1, 12)
    manifest = json.loads((result.outcome.result_path / "manifest.json").read_text())
    assert Path(manifest["source_video"]["path"]) == DEMO_VIDEO.resolve()
    assert os.path.commonpath([result.outcome.result_path, video_import.results_folder()])


def test_variable_frame_rate_strip_shows_the_frames_our_indices_name(ext, tmp_path):
    """The import's movie strip of a variable-frame-rate clip (tools/make_vfr_fixture.py) at
    the frame rate the pipeline records: strip frame n shows the decoded frame our frame n
    is (vfr_clip.json, which tests/test_video.py checks against the reader)."""
    import numpy as np

    clip = REPO / "tests" / "fixtures" / "vfr_clip.mp4"
    expected = json.loads(clip.with_suffix(".json").read_text())
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = expected["fps"], 1.0
    strip = submodule("sequencer").add_video_strip(scene, clip, tmp_path / "clip.ram")
    offset = submodule("results").FRAME_OFFSET
    assert strip.frame_final_duration == len(expected["strip_shows"])

    scene.render.resolution_x, scene.render.resolution_y = 128, 64
    scene.render.resolution_percentage = 100
    scene.render.use_sequencer = True
    scene.render.image_settings.file_format = "PNG"
    shown = {}
    # Around the slow stretch (each frame twice) and the end.
    for n in (*range(8, 24), len(expected["strip_shows"]) - 1):
        scene.frame_set(offset + n)
        scene.render.filepath = str(tmp_path / f"frame_{n:03d}.png")
        bpy.ops.render.render(write_still=True)
        image = bpy.data.images.load(scene.render.filepath)
        pixels = np.array(image.pixels[:]).reshape(64, 128, 4)
        bpy.data.images.remove(image)
        columns = [pixels[:, b * 16 + 4 : (b + 1) * 16 - 4, 1].mean() > 0.5 for b in range(8)]
        shown[n] = sum(1 << b for b, on in enumerate(columns) if on)
    assert shown == {n: expected["strip_shows"][n] for n in shown}
