"""Operators: import a result folder; run the pipeline on a video and import its result."""

# Blender's class naming (RAM_OT_x) and its set-valued class attributes are its API.

from pathlib import Path

import bpy

from ram_core.errors import RamError

from .importer import import_result
from .video_import import (
    VideoImportError,
    finish_video_import,
    make_run_request,
    start_video_import,
    status_line,
)


class RunningImport:
    """The one video import in flight (the panel shows it; Esc or the button cancels it)."""

    job = None
    cancel_requested = False


def _import_report(operator, report) -> None:
    for warning in report.warnings:
        operator.report({"WARNING"}, warning)
    operator.report(
        {"INFO"}, f"Imported {len(report.armatures)} track(s) into {report.collection.name}"
    )


class RAM_OT_import_result(bpy.types.Operator):
    """Import a RAM result folder (NAME.ram): a camera and one keyframed armature per person"""

    bl_idname = "ram.import_result"
    bl_label = "Import RAM Result"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(name="Result", subtype="FILE_PATH")
    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        chosen = self.filepath or self.directory
        if not chosen:
            self.report({"ERROR"}, "Choose a result folder (NAME.ram)")
            return {"CANCELLED"}
        path = Path(bpy.path.abspath(chosen))
        if path.name == "" or (not path.exists() and path.parent.suffix == ".ram"):
            path = path.parent
        try:
            report = import_result(path, context.scene)
        except (RamError, OSError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _import_report(self, report)
        return {"FINISHED"}


class RAM_OT_import_video(bpy.types.Operator):
    """Recover every person's motion from a video and import it (runs the RAM pipeline)"""

    bl_idname = "ram.import_video"
    bl_label = "Import Motion from Video"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(name="Video", subtype="FILE_PATH")

    _timer = None

    @classmethod
    def poll(cls, context):
        return RunningImport.job is None

    def _video(self, context) -> str:
        return self.filepath or context.scene.ram.video_filepath

    def execute(self, context):
        """Blocking run, for scripts and background mode."""
        try:
            job = start_video_import(make_run_request(context, self._video(context)))
        except VideoImportError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        job.wait()
        return self._finish(context, job)

    def invoke(self, context, event):
        try:
            job = start_video_import(make_run_request(context, self._video(context)))
        except VideoImportError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        RunningImport.job, RunningImport.cancel_requested = job, False
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set(status_line(job))
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = RunningImport.job
        if event.type == "ESC" or RunningImport.cancel_requested:
            job.cancel()
            job.wait()
            self._end_modal(context)
            self.report({"WARNING"}, "RAM import cancelled; the scene is unchanged")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        job.poll()
        if not job.finished():
            context.workspace.status_text_set(status_line(job))
            for area in context.screen.areas:
                area.tag_redraw()
            return {"RUNNING_MODAL"}
        self._end_modal(context)
        return self._finish(context, job)

    def _end_modal(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        context.workspace.status_text_set(None)
        RunningImport.job = None

    def _finish(self, context, job):
        try:
            result = finish_video_import(job, context.scene)
        except (RamError, OSError, ValueError) as exc:
            self.report({"ERROR"}, f"The pipeline's result cannot be imported: {exc}")
            return {"CANCELLED"}
        if not result.ok:
            self.report({"ERROR"}, result.outcome.message)
            return {"CANCELLED"}
        _import_report(self, result.report)
        return {"FINISHED"}


class RAM_OT_cancel_import(bpy.types.Operator):
    """Stop the running pipeline; the scene stays as it was"""

    bl_idname = "ram.cancel_import"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return RunningImport.job is not None

    def execute(self, context):
        RunningImport.cancel_requested = True
        return {"FINISHED"}


classes = (RAM_OT_import_result, RAM_OT_import_video, RAM_OT_cancel_import)
register, unregister = bpy.utils.register_classes_factory(classes)
