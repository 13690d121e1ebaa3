"""Install the pipeline's virtual environment from the preferences: modal and cancellable.

The work is in plain functions (``make_install_plan``, ``finish_install``) that the
operator and the tests call; ``environment.py`` runs the commands.
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
from .preferences import extension_env_folder, preferences

# build_addon.py puts the ram_core wheel here, beside this module.
WHEELS_DIR = Path(__file__).resolve().parent / "wheels"


class RunningInstall:
    """The one install in flight (the preferences show it; Esc or Cancel stops it)."""

    install: EnvironmentInstall | None = None
    cancel_requested = False
    last_message = ""


def online_install_refusal() -> str | None:
    """Why an install must not start now (None when Blender allows online access)."""
    return install_refusal(bool(bpy.app.online_access))


def make_install_plan(base_python: str = "", source: str = "") -> InstallPlan:
    """The plan for the extension's venv, made with ``base_python`` (Blender's by default).

    InstallPlanError when there is neither a bundled ram_core wheel nor ``source``.
    """
    # The user folder must exist; the venv folder inside it is made by the install.
    bpy.utils.extension_path_user(__package__, create=True)
    return plan_install(
        extension_env_folder(),
        bpy.path.abspath(base_python) if base_python else sys.executable,
        wheels_dir=WHEELS_DIR,
        source=Path(bpy.path.abspath(source)) if source else None,
    )


def finish_install(context, install: EnvironmentInstall) -> InstallOutcome:
    """After the install ended: on success its Python becomes the "Pipeline Python"."""
    outcome = install.outcome()
    if outcome.ok:
        preferences(context).pipeline_python = str(outcome.python)
    RunningInstall.last_message = outcome.message
    return outcome


def _redraw_all(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            area.tag_redraw()


class RAM_OT_install_pipeline(bpy.types.Operator):
    """Create a virtual environment for the RAM pipeline and install it (downloads from PyPI)"""

    bl_idname = "ram.install_pipeline"
    bl_label = "Install Pipeline Environment"
    bl_options = {"INTERNAL"}

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

    _timer = None

    @classmethod
    def poll(cls, context):
        return RunningInstall.install is None

    def _start(self) -> EnvironmentInstall | None:
        refusal = online_install_refusal()
        if refusal:
            self.report({"ERROR"}, refusal)
            return None
        try:
            return start_install(make_install_plan(self.base_python, self.source))
        except (InstallPlanError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return None

    def execute(self, context):
        """Blocking run, for scripts and background mode."""
        install = self._start()
        if install is None:
            return {"CANCELLED"}
        install.wait()
        return self._finish(context, install)

    def invoke(self, context, event):
        install = self._start()
        if install is None:
            return {"CANCELLED"}
        RunningInstall.install, RunningInstall.cancel_requested = install, False
        RunningInstall.last_message = ""
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set(status_line(install))
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        install = RunningInstall.install
        if event.type == "ESC" or RunningInstall.cancel_requested:
            install.cancel()
            install.wait()
            self._end_modal(context)
            return self._finish(context, install)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        install.poll()
        if not install.finished():
            context.workspace.status_text_set(status_line(install))
            _redraw_all(context)
            return {"RUNNING_MODAL"}
        self._end_modal(context)
        return self._finish(context, install)

    def _end_modal(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        context.workspace.status_text_set(None)
        RunningInstall.install = None
        _redraw_all(context)

    def _finish(self, context, install):
        outcome = finish_install(context, install)
        if outcome.cancelled:
            self.report({"WARNING"}, outcome.message)
            return {"CANCELLED"}
        if not outcome.ok:
            self.report({"ERROR"}, outcome.message)
            return {"CANCELLED"}
        self.report({"INFO"}, outcome.message)
        return {"FINISHED"}


class RAM_OT_cancel_install(bpy.types.Operator):
    """Stop installing the pipeline; the half-made environment is removed"""

    bl_idname = "ram.cancel_install"
    bl_label = "Cancel Install"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return RunningInstall.install is not None

    def execute(self, context):
        RunningInstall.cancel_requested = True
        return {"FINISHED"}


def draw_install(layout) -> None:
    """The install button, or the running install's progress, in the preferences."""
    install = RunningInstall.install
    row = layout.row(align=True)
    if install is not None:
        row.label(text=status_line(install), icon="TIME")
        row.operator(RAM_OT_cancel_install.bl_idname, text="Cancel", icon="CANCEL")
        return
    row.operator(RAM_OT_install_pipeline.bl_idname, icon="IMPORT")
    if not bpy.app.online_access:
        layout.label(text="Needs online access (Preferences > System > Network)", icon="INFO")
    if RunningInstall.last_message:
        layout.label(text=RunningInstall.last_message)


classes = (RAM_OT_install_pipeline, RAM_OT_cancel_install)
register, unregister = bpy.utils.register_classes_factory(classes)
