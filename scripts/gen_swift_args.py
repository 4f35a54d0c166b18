"""Regenerate src/mhsft/recipe/data/swift_args.json from the installed ms-swift.

mhsft validates recipes against this file so that `mhsft validate` never imports swift.
Run after upgrading ms-swift:  python scripts/gen_swift_args.py
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import typing
from importlib.metadata import version
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "mhsft" / "recipe" / "data" / "swift_args.json"
COMMANDS = {
    "sft": "SftArguments",
    "infer": "InferArguments",
    "deploy": "DeployArguments",
    "export": "ExportArguments",
    "eval": "EvalArguments",
}


def _accepts_dict(annotation: object) -> bool:
    """True when a dataclass field annotation admits a dict (rendered as JSON on the CLI)."""
    if annotation is dict or typing.get_origin(annotation) is dict:
        return True
    return any(_accepts_dict(arg) for arg in typing.get_args(annotation))


def _kind(action: argparse.Action, annotation: object) -> str:
    name = getattr(action.type, "__name__", "")
    if name == "string_to_bool":
        return "bool"
    if _accepts_dict(annotation):
        return "json"
    if action.type in (int, float):
        return action.type.__name__
    return "str"


def _plain(value: object) -> bool:
    """A default worth recording: set, and JSON as it is (enum members and callables are not)."""
    if value is None or value == argparse.SUPPRESS:
        return False
    try:
        return json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):
        return False


def describe(class_name: str) -> dict[str, dict]:
    """Name -> {kind, list, choices, default} for every option swift's parser accepts for one argument class."""
    import swift.arguments
    from swift.utils.utils import _patch_get_type_hints
    from transformers import HfArgumentParser

    cls = getattr(swift.arguments, class_name)
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    with contextlib.suppress(Exception):  # some annotations cannot be resolved; the raw ones are good enough
        hints.update(typing.get_type_hints(cls))
    with _patch_get_type_hints():
        parser = HfArgumentParser([cls])
    out: dict[str, dict] = {}
    for action in parser._actions:
        if action.nargs == 0:  # --help and the generated --no_<flag> switches
            continue
        entry: dict = {"kind": _kind(action, hints.get(action.dest)), "list": action.nargs in ("+", "*")}
        if action.choices:
            entry["choices"] = [c for c in action.choices if c is not None]
        if _plain(action.default):
            entry["default"] = action.default
        out[action.dest] = entry
    return dict(sorted(out.items()))


def generate() -> dict:
    """The whole data file as a dict."""
    return {
        "ms_swift_version": version("ms-swift"),
        "commands": {cmd: describe(cls) for cmd, cls in COMMANDS.items()},
    }


def main() -> None:
    OUT.write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
