"""Install the pipeline's virtual environment from the preferences: modal and cancellable.

The work is in plain functions (``make_install_plan``, ``finish_install``) that the
operator and the tests call; ``environment.py`` runs the commands; ``modal.py`` ticks it.
"""

# Blender's class naming (RAM_OT_x) and its set-valued class attributes are its API.

import sys
from pathlib import Path

import bpy

from .environment import (
    EnvironmentInstall,
    InstallOutcome,
    InstallPlan,
    InstallPlanError,
    install_refusal,
    plan_install,
    start_install,
    status_line,
)
from .modal import JobSlot, ModalJob, ModalJobOperator, TickResult
from .preference_values import extension_env_folder, preferences

# build_addon.py puts the ram_core wheel here, beside this module.
WHEELS_DIR = Path(__file__).resolve().parent / "wheels"
# The one install in flight (the preferences show it; Esc or Cancel stops it).
RUNNING_INSTALL = JobSlot()
CANCELLED_REPORT = "The pipeline install was cancelled."


def online_install_refusal() -> str | None:
    """Why an install must not start now (None when Blender allows online access)."""
    return install_refusal(bool(bpy.app.online_access))


def make_install_plan(
    base_python: str = "", source: str = "", weights_dir: str = ""
) -> InstallPlan:
    """The plan for the extension's venv, made with ``base_python`` (Blender's by default);
    the lite models go to ``weights_dir`` (the preferences' Weights Folder).

    InstallPlanError when there is neither a bundled ram_core wheel nor ``source``.
    """
    # The user folder must exist; the venv folder inside it is made by the install.
    bpy.utils.extension_path_user(__package__, create=True)
    return plan_install(
        extension_env_folder(),
        bpy.path.abspath(base_python) if base_python else sys.executable,
        wheels_dir=WHEELS_DIR,
        source=Path(bpy.path.abspath(source)) if source else None,
        weights_dir=bpy.path.abspath(weights_dir) if weights_dir else "",
    )


def finish_install(context, install: EnvironmentInstall) -> InstallOutcome:
    """After the install ended: on success its Python becomes the "Pipeline Python"."""
    outcome = install.outcome()
    if outcome.ok:
        preferences(context).pipeline_python = str(outcome.python)
    return outcome


def finish_install_job(context, install: EnvironmentInstall) -> TickResult:
    """The ended install as the operator's result, with one report."""
    outcome = finish_install(context, install)
    if outcome.cancelled:
        return TickResult.cancelled(("WARNING", outcome.message))
    if not outcome.ok:
        return TickResult.cancelled(("ERROR", outcome.message))
    return TickResult.finished(("INFO", outcome.message))


def install_modal_job(install: EnvironmentInstall) -> ModalJob:
    """The modal operator's ticking of a started install (see ``modal.ModalJob``)."""
    return ModalJob(install, RUNNING_INSTALL, status_line, finish_install_job, CANCELLED_REPORT)


class RAM_OT_install_pipeline(ModalJobOperator, bpy.types.Operator):
    """Create a virtual environment for the RAM pipeline and install it (downloads from PyPI)"""

    bl_idname = "ram.install_pipeline"
    bl_label = "Install Pipeline Environment"
    bl_options = {"INTERNAL"}
    modal_interval_s = 0.2

    base_python: bpy.props.StringProperty(
        name="Base Python",
        description="Python that creates the environment (empty: Blender's own)",
        subtype="FILE_PATH",
    )
    source: bpy.props.StringProperty(
        name="ram_core Source",
        description="ram_core source folder or wheel, used when no wheel is bundled",
        subtype="FILE_PATH",
    )

    @classmethod
    def poll(cls, context):
        return not RUNNING_INSTALL.busy

    def start_job(self, context) -> ModalJob | None:
        refusal = online_install_refusal()
        if refusal:
            self.report({"ERROR"}, refusal)
            return None
        try:
            plan = make_install_plan(
                self.base_python, self.source, preferences(context).weights_dir
            )
            return install_modal_job(start_install(plan))
        except (InstallPlanError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return None


class RAM_OT_cancel_install(bpy.types.Operator):
    """Stop installing the pipeline; the half-made environment is removed"""

    bl_idname = "ram.cancel_install"
    bl_label = "Cancel Install"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return RUNNING_INSTALL.busy

    def execute(self, context):
        RUNNING_INSTALL.current.request_cancel()
        return {"FINISHED"}


def draw_install(layout) -> None:
    """The install button, or the running install's progress, in the preferences."""
    running = RUNNING_INSTALL.current
    row = layout.row(align=True)
    if running is not None:
        row.label(text=running.status_line(), icon="TIME")
        row.operator(RAM_OT_cancel_install.bl_idname, text="Cancel", icon="CANCEL")
        return
    row.operator(RAM_OT_install_pipeline.bl_idname, icon="IMPORT")
    if not bpy.app.online_access:
        layout.label(text="Needs online access (Preferences > System > Network)", icon="INFO")
    if RUNNING_INSTALL.last_message:
        layout.label(text=RUNNING_INSTALL.last_message)


classes = (RAM_OT_install_pipeline, RAM_OT_cancel_install)
register, unregister = bpy.utils.register_classes_factory(classes)
