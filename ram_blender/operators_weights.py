"""Download the full backend's model weights from the preferences: modal and cancellable.

The pipeline's Python runs ``ram-core weights download --progress json`` (``weights.py``);
``modal.py`` ticks it. Only when Blender allows online access. The preferences list which
models are present, from ``weights list`` read once per (Python, folder) and refreshable.
"""

# Blender's class naming (RAM_OT_x) and its set-valued class attributes are its API.

import bpy

from .jobs import EventJob
from .modal import JobSlot, ModalJob, ModalJobOperator, TickResult
from .preference_values import preferences, resolve_pipeline_python
from .weights import (
    DOWNLOAD_MESSAGES,
    ModelListingCache,
    WeightsRequest,
    download_status_line,
    start_download,
)

# The one download in flight (the preferences show it; Esc or Cancel stops it).
RUNNING_DOWNLOAD = JobSlot()
# Which models are present, per (pipeline Python, weights folder).
LISTINGS = ModelListingCache()


class ModelDownloadError(Exception):
    """A download that cannot start (no online access, no pipeline Python)."""


def online_download_refusal() -> str | None:
    """Why a download must not start now (None when Blender allows online access)."""
    if bpy.app.online_access:
        return None
    return (
        "Downloading models needs the internet, but Blender does not allow online access: "
        "enable it in Preferences > System > Network, then try again."
    )


def weights_folder(context) -> str:
    """The weights folder preference as an absolute path ('' = the manager's default)."""
    chosen = preferences(context).weights_dir
    return bpy.path.abspath(chosen) if chosen else ""


def listing_request(context) -> WeightsRequest | None:
    """The listing for the Pipeline Python preference (None while it is unset).

    Drawing must not search for a Python (that runs subprocesses), so only the set one is
    used here.
    """
    python = preferences(context).pipeline_python
    if not python:
        return None
    return WeightsRequest(bpy.path.abspath(python), weights_folder(context))


def start_model_download(context, models: tuple[str, ...] = (), python: str = "") -> ModalJob:
    """Start downloading ``models`` (() = the full backend's defaults) into the weights
    folder. Raises ModelDownloadError when it cannot start."""
    refusal = online_download_refusal()
    if refusal:
        raise ModelDownloadError(refusal)
    python = python or resolve_pipeline_python(context)
    if not python:
        raise ModelDownloadError(
            "No pipeline Python found: install the pipeline environment or set the Pipeline "
            "Python in the RAM preferences first."
        )
    request = WeightsRequest(python, weights_folder(context), tuple(models))
    try:
        job = start_download(request)
    except OSError as exc:
        raise ModelDownloadError(f"Cannot start the pipeline Python {python}: {exc}") from exc
    listing = WeightsRequest(python, request.weights_dir)
    return ModalJob(
        job,
        RUNNING_DOWNLOAD,
        download_status_line,
        lambda context, ended: finish_download_job(ended, listing),
        DOWNLOAD_MESSAGES.cancelled,
    )


def finish_download_job(job: EventJob, listing: WeightsRequest) -> TickResult:
    """The ended download as the operator's result, with one report per exit code; the
    preferences' listing is read again either way."""
    outcome = job.outcome()
    LISTINGS.refresh(listing)
    if outcome.ok:
        where = f" ({outcome.result_path})" if outcome.result_path else ""
        return TickResult.finished(("INFO", outcome.message + where))
    level = "WARNING" if outcome.cancelled else "ERROR"
    return TickResult.cancelled((level, outcome.message))


class RAM_OT_download_models(ModalJobOperator, bpy.types.Operator):
    """Download the full backend's model weights into the weights folder (needs the internet)"""

    bl_idname = "ram.download_models"
    bl_label = "Download Models"
    bl_options = {"INTERNAL"}
    modal_interval_s = 0.2

    model: bpy.props.StringProperty(
        name="Model",
        description="One model to download (empty: what the full backend needs)",
    )

    @classmethod
    def poll(cls, context):
        return not RUNNING_DOWNLOAD.busy

    def start_job(self, context) -> ModalJob | None:
        try:
            return start_model_download(context, (self.model,) if self.model else ())
        except ModelDownloadError as exc:
            self.report({"ERROR"}, str(exc))
            return None


class RAM_OT_cancel_download(bpy.types.Operator):
    """Stop downloading; what arrived is kept and the next download resumes it"""

    bl_idname = "ram.cancel_download"
    bl_label = "Cancel Download"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return RUNNING_DOWNLOAD.busy

    def execute(self, context):
        RUNNING_DOWNLOAD.current.request_cancel()
        return {"FINISHED"}


class RAM_OT_refresh_models(bpy.types.Operator):
    """Check again which models are in the weights folder"""

    bl_idname = "ram.refresh_models"
    bl_label = "Refresh Models"
    bl_options = {"INTERNAL"}

    def execute(self, context):
        request = listing_request(context)
        if request is None:
            self.report({"ERROR"}, "Set the Pipeline Python first")
            return {"CANCELLED"}
        LISTINGS.refresh(request)
        return {"FINISHED"}


def draw_models(layout, context) -> None:
    """The models section of the preferences: presence, the download button or progress."""
    box = layout.box()
    running = RUNNING_DOWNLOAD.current
    if running is not None:
        row = box.row(align=True)
        row.progress(factor=running.job.fraction, type="BAR", text=running.status_line())
        row.operator(RAM_OT_cancel_download.bl_idname, text="Cancel", icon="CANCEL")
    else:
        row = box.row(align=True)
        row.operator(RAM_OT_download_models.bl_idname, icon="IMPORT")
        row.operator(RAM_OT_refresh_models.bl_idname, text="", icon="FILE_REFRESH")
        if not bpy.app.online_access:
            box.label(text="Needs online access (Preferences > System > Network)", icon="INFO")
    if RUNNING_DOWNLOAD.last_message:
        box.label(text=RUNNING_DOWNLOAD.last_message)
    request = listing_request(context)
    if request is None:
        box.label(text="Set the Pipeline Python to see which models are present", icon="INFO")
        return
    state = LISTINGS.state(request)
    if state.reading:
        box.label(text="Checking which models are present…", icon="TIME")
        return
    if state.listing is None:
        box.label(text=state.error, icon="ERROR")
        return
    box.label(text=f"Models in {state.listing.weights_dir}")
    for model in state.listing.models:
        row = box.row()
        row.label(text=model.name, icon="CHECKMARK" if model.present else "X")
        size = f"~{model.size_bytes / 1e6:.0f} MB" if model.size_bytes else "size unknown"
        row.label(text=size)
        if not model.present and running is None:
            button = row.operator(RAM_OT_download_models.bl_idname, text="", icon="IMPORT")
            button.model = model.name


classes = (RAM_OT_download_models, RAM_OT_cancel_download, RAM_OT_refresh_models)
register, unregister = bpy.utils.register_classes_factory(classes)
