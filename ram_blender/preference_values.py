"""Reading the add-on's preferences: for operators and panels, which the preferences' own
layout draws in turn (so this module holds no UI and imports none)."""

from pathlib import Path

import bpy

from .jobs import find_pipeline_python

PIPELINE_ENV_FOLDER = "pipeline-env"


def preferences(context=None):
    """This add-on's preferences."""
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


def extension_env_folder() -> Path:
    """Where "Install pipeline environment" puts its virtual environment."""
    return Path(bpy.utils.extension_path_user(__package__, path=PIPELINE_ENV_FOLDER))


def resolve_pipeline_python(context=None) -> str:
    """The preference when set, else the first Python found that imports ram_core ('')."""
    chosen = bpy.path.abspath(preferences(context).pipeline_python)
    return chosen or find_pipeline_python(extension_env_folder())
