"""Video -> pipeline subprocess -> import, as plain functions the operator and tests call.

The scene is only touched by ``finish_video_import`` after the pipeline succeeded, so a
cancelled or failing run leaves it exactly as it was. ``import_modal_job`` is what the
modal operator ticks (see ``modal.py``).
"""

import time
from dataclasses import dataclass
from pathlib import Path

import bpy

from ram_core.errors import RamError

from .body_mesh import smpl_model_for
from .importer import ImportReport, import_result
from .jobs import JobOutcome, PipelineJob, RunRequest
from .modal import JobSlot, ModalJob, Report, TickResult
from .preference_values import preferences, resolve_pipeline_python

RESULTS_FOLDER = "results"
CANCELLED_REPORT = "RAM import cancelled; the scene is unchanged"
# The one video import in flight (the panel shows it; Esc or Cancel stops it).
RUNNING_IMPORT = JobSlot()


@dataclass(frozen=True)
class VideoImportOutcome:
    """How a video import ended: the job's outcome and, when it succeeded, the import."""

    outcome: JobOutcome
    report: ImportReport | None

    @property
    def ok(self) -> bool:
        return self.report is not None


class VideoImportError(Exception):
    """A video import that cannot start (no video, no pipeline Python, a bad SMPL file)."""


def results_folder() -> Path:
    """Where pipeline results are written (the extension's user folder)."""
    return Path(bpy.utils.extension_path_user(__package__, path=RESULTS_FOLDER, create=True))


def make_run_request(
    context, video: str, python: str | None = None, smpl_model: str = ""
) -> RunRequest:
    """A ``RunRequest`` from the preferences and ``context.scene.ram``.

    ``smpl_model``: the SMPL file ('' = the preference). Raises VideoImportError when the
    video or a pipeline Python is missing, or the SMPL file is unusable (checked before the
    pipeline runs, not after).
    """
    video_path = Path(bpy.path.abspath(video)) if video else None
    if video_path is None or not video_path.is_file():
        raise VideoImportError(f"No video file at {video_path}.")
    smpl_model = smpl_model_path(context, smpl_model)
    if smpl_model:
        try:
            smpl_model_for(smpl_model)
        except RamError as exc:
            raise VideoImportError(str(exc)) from exc
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
        smpl_model=smpl_model,
    )


def smpl_model_path(context, override: str = "") -> str:
    """The SMPL file to build bodies from: ``override``, else the preference ('' = none)."""
    chosen = override or preferences(context).smpl_model
    return bpy.path.abspath(chosen) if chosen else ""


def start_video_import(request: RunRequest) -> PipelineJob:
    """Start the pipeline. Raises VideoImportError when its Python cannot be started."""
    try:
        return PipelineJob.for_request(request).start()
    except OSError as exc:
        raise VideoImportError(f"Cannot start the pipeline Python {request.python}: {exc}") from exc


def finish_video_import(job: PipelineJob, scene, smpl_model: str = "") -> VideoImportOutcome:
    """After the job ended: import its result when it succeeded, else leave the scene be."""
    outcome = job.outcome()
    if not outcome.ok:
        return VideoImportOutcome(outcome, None)
    return VideoImportOutcome(outcome, import_result(outcome.result_path, scene, smpl_model))


def import_reports(report: ImportReport) -> tuple[Report, ...]:
    """The reports of a finished import: its warnings, then what it made."""
    made = f"Imported {len(report.armatures)} track(s) into {report.collection.name}"
    return (*(("WARNING", warning) for warning in report.warnings), ("INFO", made))


def finish_import_job(context, job: PipelineJob, smpl_model: str = "") -> TickResult:
    """The ended pipeline as the operator's result: imported, or one report saying why not."""
    try:
        result = finish_video_import(job, context.scene, smpl_model)
    except (RamError, OSError, ValueError) as exc:
        return TickResult.cancelled(("ERROR", f"The pipeline's result cannot be imported: {exc}"))
    if not result.ok:
        level = "WARNING" if result.outcome.cancelled else "ERROR"
        return TickResult.cancelled((level, result.outcome.message))
    return TickResult.finished(*import_reports(result.report))


def import_modal_job(job: PipelineJob, smpl_model: str = "") -> ModalJob:
    """The modal operator's ticking of a started pipeline job (see ``modal.ModalJob``)."""
    return ModalJob(
        job,
        RUNNING_IMPORT,
        status_line,
        lambda context, ended: finish_import_job(context, ended, smpl_model),
        CANCELLED_REPORT,
    )


def status_line(job: PipelineJob) -> str:
    """``Tracking 40/120`` style text for the status bar and the panel."""
    stage = job.stage or "Starting"
    if job.total:
        return f"RAM: {stage} {job.done}/{job.total}"
    return f"RAM: {stage}…"
