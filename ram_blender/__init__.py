"""RAM Motion: recover the 3D motion of every person in a video as SMPL armatures.

A Blender extension (no ``bl_info``): the manifest is ``blender_manifest.toml``. The modules
without bpy (``jobs``, ``weights``, ``environment``, ``results``, ``skeleton``,
``body_mesh``, ``track_edits``, ``overlay``) hold the logic; the rest is a thin layer.
"""

from . import (
    operators,
    operators_edit,
    operators_environment,
    operators_retarget,
    operators_weights,
    overlay_draw,
    panels,
    preferences,
    properties,
)

_modules = (
    properties,
    preferences,
    operators,
    operators_edit,
    operators_retarget,
    operators_environment,
    operators_weights,
    overlay_draw,
    panels,
)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
