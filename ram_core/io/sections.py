"""Settings sections (a YAML file's, a manifest's ``config``) into frozen dataclasses.

Standard library only: ``ram_core.config`` reads the run's YAML with it, and the Combiner's
re-run reads the settings recorded in a result's manifest with it, inside Blender too.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """YAML value -> the field's type (ints, floats, bools, tuples, optionals)."""
    if isinstance(annotation, str):
        raise TypeError(f"unresolved annotation at {where}")
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        inner = [a for a in options if a is not type(None)]
        return _convert(value, inner[0], where)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ValueError(f"{where} needs a list of {len(args)} values")
        return tuple(_convert(v, a, where) for v, a in zip(value, args, strict=True))
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} needs true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} needs an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where} needs a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} needs text, got {value!r}")
        return value
    return value


def section_from_mapping(cls: type, values: Any, name: str) -> Any:
    """One frozen settings dataclass from a mapping (a YAML section, a manifest's config).

    None gives the defaults. ValueError names the section and the setting that is unknown
    or of the wrong type; the dataclass's own checks run in its constructor.
    """
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ValueError(f"section '{name}' must be a mapping of settings")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(map(str, unknown))} in section '{name}'; "
            f"known: {', '.join(sorted(known))}"
        )
    kwargs = {k: _convert(v, hints[k], f"{name}.{k}") for k, v in values.items()}
    return cls(**kwargs)
