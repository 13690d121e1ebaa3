"""Bulk keyframe writing, and the one place that knows how the Action API differs.

Blender 4.2 has ``Action.fcurves.new``; 4.4/4.5 add layered actions with
``Action.fcurve_ensure_for_datablock`` (on 4.5 the old call writes into a legacy slot that
does not animate the object); 5.0 drops ``Action.fcurves`` and adds ``group_name``.
"""

import bpy
import numpy as np

_INTERPOLATION = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items
_LINEAR = _INTERPOLATION["LINEAR"].value
_CONSTANT = _INTERPOLATION["CONSTANT"].value


def new_action_for(id_data: bpy.types.ID, name: str) -> bpy.types.Action:
    """A new action, assigned to ``id_data`` (layered actions need that before F-curves)."""
    action = bpy.data.actions.new(name)
    if id_data.animation_data is None:
        id_data.animation_data_create()
    id_data.animation_data.action = action
    return action


def action_of(id_data: bpy.types.ID, name: str) -> bpy.types.Action:
    """The action animating ``id_data``, or a new one called ``name`` assigned to it."""
    if id_data.animation_data is not None and id_data.animation_data.action is not None:
        return id_data.animation_data.action
    return new_action_for(id_data, name)


def ensure_fcurve(
    action: bpy.types.Action, id_data: bpy.types.ID, data_path: str, index: int, group: str
) -> bpy.types.FCurve:
    """The F-curve for ``data_path[index]`` of ``id_data`` in ``action``, in a group."""
    ensure = getattr(action, "fcurve_ensure_for_datablock", None)
    if ensure is None:  # 4.2 and 4.3
        found = action.fcurves.find(data_path, index=index)
        return found or action.fcurves.new(data_path, index=index, action_group=group)
    try:
        return ensure(id_data, data_path, index=index, group_name=group)
    except TypeError:  # 4.4 and 4.5 take no group name
        return ensure(id_data, data_path, index=index)


def write_keys(
    fcurve: bpy.types.FCurve, frames: np.ndarray, values: np.ndarray, constant: bool = False
) -> None:
    """Replace ``fcurve``'s keys with keys at ``frames`` (T,) holding ``values`` (T,):
    linear, or held until the next key (``constant``)."""
    frames = np.asarray(frames, dtype=np.float32)
    values = np.asarray(values, dtype=np.float32)
    points = fcurve.keyframe_points
    mode = _CONSTANT if constant else _LINEAR
    points.clear()
    points.add(len(frames))
    points.foreach_set("co", np.column_stack([frames, values]).ravel())
    points.foreach_set("interpolation", np.full(len(frames), mode, dtype=np.int32))
    fcurve.update()


def write_channels(
    action: bpy.types.Action,
    id_data: bpy.types.ID,
    data_path: str,
    frames: np.ndarray,
    values: np.ndarray,
    group: str,
) -> list:
    """One F-curve per column of ``values`` (T, C) at ``data_path`` index 0..C-1."""
    values = np.asarray(values)
    return [
        _written(ensure_fcurve(action, id_data, data_path, index, group), frames, values[:, index])
        for index in range(values.shape[1])
    ]


def _written(fcurve: bpy.types.FCurve, frames: np.ndarray, values: np.ndarray):
    write_keys(fcurve, frames, values)
    return fcurve


def action_fcurves(action: bpy.types.Action, id_data: bpy.types.ID) -> list:
    """The F-curves that animate ``id_data`` in ``action`` on any supported Blender."""
    if hasattr(action, "layers") and len(action.layers) > 0:
        slot = id_data.animation_data.action_slot
        curves = []
        for layer in action.layers:
            for strip in layer.strips:
                bag = strip.channelbag(slot)
                if bag is not None:
                    curves.extend(bag.fcurves)
        return curves
    return list(action.fcurves)
