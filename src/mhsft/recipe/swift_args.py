"""The argument names, kinds and choices of the installed ms-swift, read from a generated data file.

`scripts/gen_swift_args.py` writes `data/swift_args.json` from ms-swift itself, so validating a recipe never
imports swift (which takes ~10 s and several GB of libraries).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

COMMANDS = ("sft", "infer", "deploy", "export", "eval")


@dataclass(frozen=True)
class ArgSpec:
    """One `--name` of a swift command: `kind` is bool|int|float|str|json; `list` means nargs='+'; `default` is
    the parser's default (None when unset or not JSON)."""

    name: str
    kind: str
    list: bool = False
    choices: tuple[object, ...] = ()
    default: object = None


@cache
def _data() -> dict:
    return json.loads((Path(__file__).parent / "data" / "swift_args.json").read_text(encoding="utf-8"))


def swift_version() -> str:
    """The ms-swift version the data file was generated from."""
    return _data()["ms_swift_version"]


@cache
def specs(command: str) -> dict[str, ArgSpec]:
    """All arguments of `swift <command>`."""
    return {
        name: ArgSpec(name, raw["kind"], raw["list"], tuple(raw.get("choices", ())), raw.get("default"))
        for name, raw in _data()["commands"][command].items()
    }


def suggest(name: str, candidates: list[str] | tuple[str, ...] | set[str]) -> str:
    """' Did you mean `x`?' for the closest candidate, or '' when none is close."""
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    if not close:
        prefixed = sorted(c for c in candidates if c.startswith(name))
        close = prefixed[:1]
    return f" Did you mean `{close[0]}`?" if close else ""
