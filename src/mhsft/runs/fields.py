"""Checking a JSON object against a dataclass's fields and type hints, to read records defensively."""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import MISSING, fields
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints

Check = Callable[[Any], bool]


@cache
def _fields(cls: type) -> dict[str, tuple[Check, str, bool]]:
    """Each JSON field of `cls`: (its type check, its type as text, whether it is required). `unknown` holds the
    rest."""
    hints = get_type_hints(cls)
    return {
        f.name: (checker(hints[f.name]), str(f.type), f.default is f.default_factory is MISSING)
        for f in fields(cls)
        if f.name != "unknown"
    }


@cache
def checker(hint: Any) -> Check:
    """A function telling whether a JSON value fits a type hint (bool is not an int; an int is a float); built
    once per hint, because reading thousands of records checks every field of each."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return lambda value: True
    if hint is type(None):
        return lambda value: value is None
    if origin in (Union, types.UnionType):
        parts = [checker(arg) for arg in args]
        return lambda value: any(part(value) for part in parts)
    if origin is list:
        item = checker(args[0])
        return lambda value: isinstance(value, list) and all(map(item, value))
    if origin is dict:
        item = checker(args[1])
        return lambda value: isinstance(value, dict) and all(map(item, value.values()))
    if hint in (int, float):
        kinds = (int, float) if hint is float else int
        return lambda value: isinstance(value, kinds) and not isinstance(value, bool)
    return lambda value: isinstance(value, hint)


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
        check, shown, _ = known[name]
        if not check(data[name]):
            raise ValueError(f"field {where}{name}: expected {shown}, got {type_name(data[name])}")
    return {k: v for k, v in data.items() if k in known}, {k: v for k, v in data.items() if k not in known}
