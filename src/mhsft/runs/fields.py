"""Checking a JSON object against a dataclass's fields and type hints, to read records defensively."""

from __future__ import annotations

import types
from dataclasses import MISSING, fields
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints


@cache
def _fields(cls: type) -> dict[str, tuple[Any, str, bool]]:
    """Each JSON field of `cls`: (type hint, its text, whether it is required). `unknown` holds the rest."""
    hints = get_type_hints(cls)
    return {
        f.name: (hints[f.name], str(f.type), f.default is f.default_factory is MISSING)
        for f in fields(cls)
        if f.name != "unknown"
    }


def conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a type hint (bool is not an int; an int is a float)."""
    origin = get_origin(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(conforms(value, arg) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(conforms(v, get_args(hint)[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(conforms(v, get_args(hint)[1]) for v in value.values())
    if hint in (int, float):
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    return isinstance(value, hint)


def type_name(value: Any) -> str:
    return (
        "null"
        if value is None
        else {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)
    )


def split(cls: type, data: dict[str, Any], where: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """(the fields of `cls` in `data`, checked; the other keys). ValueError names a missing or mistyped field."""
    known = _fields(cls)
    missing = [name for name, (_, _, required) in known.items() if required and name not in data]
    if missing:
        raise ValueError(f"field {where}{missing[0]} is missing")
    for name in known.keys() & data.keys():
        hint, shown, _ = known[name]
        if not conforms(data[name], hint):
            raise ValueError(f"field {where}{name}: expected {shown}, got {type_name(data[name])}")
    return {k: v for k, v in data.items() if k in known}, {k: v for k, v in data.items() if k not in known}
