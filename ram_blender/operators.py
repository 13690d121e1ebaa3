"""Operators: import a result folder; run the pipeline on a video and import its result."""

# Blender's class naming (RAM_OT_x) and its set-valued class attributes are its API.

from pathlib import Path

import bpy

from ram_core.errors import RamError

from .importer import import_result
from .modal import ModalJobOperator
from .video_import import (
    RUNNING_IMPORT,
    VideoImportError,
    import_modal_job,
    import_reports,
    make_run_request,
    smpl_model_path,
    start_video_import,
)

_SMPL_MODEL_DESCRIPTION = (
    "SMPL model file (.pkl or .npz) for this import's skeletons and bodies "
    "(empty: the one in the preferences, else the built-in body)"
)


class RAM_OT_import_result(bpy.types.Operator):
    """Import a RAM result folder (NAME.ram): a camera and one keyframed armature per person"""

    bl_idname = "ram.import_result"
    bl_label = "Import RAM Result"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(name="Result", subtype="FILE_PATH")
    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})
    smpl_model: bpy.props.StringProperty(
        name="SMPL Model", description=_SMPL_MODEL_DESCRIPTION, subtype="FILE_PATH"
    )

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
            report = import_result(path, context.scene, smpl_model_path(context, self.smpl_model))
        except (RamError, OSError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for level, message in import_reports(report):
            self.report({level}, message)
        return {"FINISHED"}


class RAM_OT_import_video(ModalJobOperator, bpy.types.Operator):
    """Recover every person's motion from a video and import it (runs the RAM pipeline)"""

    bl_idname = "ram.import_video"
    bl_label = "Import Motion from Video"
    bl_options = {"REGISTER", "UNDO"}
    modal_interval_s = 0.1

    filepath: bpy.props.StringProperty(name="Video", subtype="FILE_PATH")
    smpl_model: bpy.props.StringProperty(
        name="SMPL Model", description=_SMPL_MODEL_DESCRIPTION, subtype="FILE_PATH"
    )

    @classmethod
    def poll(cls, context):
        return not RUNNING_IMPORT.busy

    def start_job(self, context):
        """The started job's ModalJob, or None after reporting why it cannot start."""
        video = self.filepath or context.scene.ram.video_filepath
        try:
            request = make_run_request(context, video, smpl_model=self.smpl_model)
            return import_modal_job(start_video_import(request), request.smpl_model)
        except VideoImportError as exc:
            self.report({"ERROR"}, str(exc))
            return None


class RAM_OT_cancel_import(bpy.types.Operator):
    """Stop the running pipeline; the scene stays as it was"""

    bl_idname = "ram.cancel_import"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return RUNNING_IMPORT.busy

    def execute(self, context):
        RUNNING_IMPORT.current.request_cancel()
        return {"FINISHED"}


classes = (RAM_OT_import_result, RAM_OT_import_video, RAM_OT_cancel_import)
register, unregister = bpy.utils.register_classes_factory(classes)
