"""Video -> pipeline subprocess -> import, as plain functions the operator and tests call.

The scene is only touched by ``finish_video_import`` after the pipeline succeeded, so a
cancelled or failing run leaves it exactly as it was.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import bpy

from .importer import ImportReport, import_result
from .jobs import JobOutcome, PipelineJob, RunRequest
from .preferences import preferences, resolve_pipeline_python

RESULTS_FOLDER = "results"


@dataclass(frozen=True)
class VideoImportOutcome:
    """How a video import ended: the job's outcome and, when it succeeded, the import."""

    outcome: JobOutcome
    report: ImportReport | None

    @property
    def ok(self) -> bool:
        return self.report is not None


class VideoImportError(Exception):
    """A video import that cannot start (no video, no pipeline Python)."""


def results_folder() -> Path:
    """Where pipeline results are written (the extension's user folder)."""
    return Path(bpy.utils.extension_path_user(__package__, path=RESULTS_FOLDER, create=True))


def make_run_request(context, video: str, python: str | None = None) -> RunRequest:
    """A ``RunRequest`` from the preferences and ``context.scene.ram``.

    Raises VideoImportError when the video or a pipeline Python is missing.
    """
    video_path = Path(bpy.path.abspath(video)) if video else None
    if video_path is None or not video_path.is_file():
        raise VideoImportError(f"No video file at {video_path}.")
    python = python or resolve_pipeline_python(context)
    if not python:
        raise VideoImportError(
            "No pipeline Python found: set it in the RAM preferences (a Python with ram_core)."
        )
    prefs = preferences(context)
    settings = context.scene.ram
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return RunRequest(
        python=python,
        video=video_path,
        output=results_folder() / f"{video_path.stem}-{stamp}.ram",
        backend=prefs.backend,
        device=prefs.device,
        start=settings.frame_first if settings.use_frame_range else None,
        end=settings.frame_stop if settings.use_frame_range else None,
        weights_dir=bpy.path.abspath(prefs.weights_dir),
        smpl_model=bpy.path.abspath(prefs.smpl_model),
    )


def start_video_import(request: RunRequest) -> PipelineJob:
    """Start the pipeline. Raises VideoImportError when its Python cannot be started."""
    try:
        return PipelineJob.for_request(request).start()
    except OSError as exc:
        raise VideoImportError(f"Cannot start the pipeline Python {request.python}: {exc}") from exc


def finish_video_import(job: PipelineJob, scene) -> VideoImportOutcome:
    """After the job ended: import its result when it succeeded, else leave the scene be."""
    outcome = job.outcome()
    if not outcome.ok:
        return VideoImportOutcome(outcome, None)
    return VideoImportOutcome(outcome, import_result(outcome.result_path, scene))


def status_line(job: PipelineJob) -> str:
    """``Tracking 40/120`` style text for the status bar and the panel."""
    stage = job.stage or "Starting"
    if job.total:
        return f"RAM: {stage} {job.done}/{job.total}"
    return f"RAM: {stage}…"
