"""Turning validated swift arguments into argv tokens, following ms-swift 4.6's parsing rules.

Every bool is `--flag true|false` (4.6's Optional[bool] flags need a value), a list is one flag followed by
its items, a table is a JSON string, and local paths are made absolute because swift stores them verbatim
in args.json (a relative model path makes a later `swift infer` elsewhere try to download it).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from mhsft.errors import MhsftError
from mhsft.paths import absolute, exists
from mhsft.recipe.swift_args import COMMANDS, specs

PATH_KEYS = frozenset(
    {
        "output_dir",
        "logging_dir",
        "result_path",
        "resume_from_checkpoint",
        "adapters",
        "ckpt_dir",
        "ref_adapters",
        "local_repo_path",
    }
)
MAYBE_PATH_KEYS = frozenset(
    {
        "model",
        "dataset",
        "val_dataset",
        "deepspeed",
        "cached_dataset",
        "ref_model",
        "custom_register_path",
        "custom_dataset_info",
        "external_plugins",
        "cached_val_dataset",
    }
)
MAX_TOKEN_BYTES = 128 * 1024 - 1  # Linux refuses a longer single argument or variable (MAX_ARG_STRLEN)
_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")  # argparse's test for a negative number (a value, not an option)
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".txt", ".parquet", ".py")
_SAMPLE_SUFFIX = re.compile(r"#\d+$")


def looks_local(value: str, cwd: Path) -> bool:
    """Whether swift will read `value` as a local path rather than a hub id or preset name."""
    return value.startswith(("/", "./", "../", "~")) or value.endswith(DATA_SUFFIXES) or exists(cwd / value)


def localize(key: str, value: str, cwd: Path) -> str:
    """`value` with its local path made absolute (keeping a dataset's `#N` sample suffix, an adapter's `name=`)."""
    if key == "adapters" and "=" in value and not exists(absolute(value, cwd)):
        name, path = value.split("=", 1)
        return f"{name}={absolute(path, cwd)}"
    suffix_match = _SAMPLE_SUFFIX.search(value) if key in ("dataset", "val_dataset") else None
    base = value[: suffix_match.start()] if suffix_match else value
    if key in PATH_KEYS or (key in MAYBE_PATH_KEYS and looks_local(base, cwd)):
        base = absolute(base, cwd)
    return base + (suffix_match.group(0) if suffix_match else "")


def _named_adapter_path(value: str) -> str:
    """The path of a localized `name=/abs/path` adapter (swift deploy serves it by name); others as they are."""
    return value if value.startswith("/") or "=" not in value else value.split("=", 1)[1]


def local_paths(key: str, value: Any, cwd: Path) -> list[str]:
    """The local input paths a value names (model dirs, dataset files), absolute, for existence checks."""
    if key not in MAYBE_PATH_KEYS and key not in ("adapters", "resume_from_checkpoint"):
        return []
    items = value if isinstance(value, list) else [value]
    return [
        _named_adapter_path(_SAMPLE_SUFFIX.sub("", localize(key, str(v), cwd)))
        for v in items
        if isinstance(v, str) and (key not in MAYBE_PATH_KEYS or looks_local(_SAMPLE_SUFFIX.sub("", v), cwd))
    ]


def token(value: Any) -> str:
    """One value as swift's parser wants it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, float) and value < 0 and "e" in repr(value):
        from decimal import Decimal  # rare: not worth its import on every call

        return format(Decimal(repr(value)), "f")  # -1e-05 would read as an option; -0.00001 does not
    return str(value)


def read_as_option(token: str) -> bool:
    """Whether swift's argparse (or torchrun's) would take this value for an option or the `--` separator.

    Every value starting with `--` counts (argparse reads most of them as options, prefixes included); a
    single dash is an option unless the token is `-` alone, a negative number, or holds a space and does
    not start with `-h` (the one short option).
    """
    if not token.startswith("-") or token == "-" or _NEGATIVE.match(token):
        return False
    return token.startswith(("--", "-h")) or " " not in token


def _option_named(token: str) -> str:
    """` ('--report_to')` when the value starts with (a prefix of) a swift option; else nothing of the value."""
    head = token.split("=")[0].split(" ")[0]
    names = (name for command in COMMANDS for name in specs(command))
    if head in ("--", "-h") or (head.startswith("--") and any(name.startswith(head[2:]) for name in names)):
        return f" ('{head}')"
    return ""


def check_token(token: str, where: str, option_like: bool = True) -> None:
    """Refuse a value that swift would misread as an option, or that is too long for the kernel to pass."""
    if option_like and read_as_option(token):
        raise MhsftError(
            f"{where}: the value{_option_named(token)} starts with a dash, so swift's parser would read it as an "
            "option and not as this value (a way to smuggle options such as --report_to onto the command line). "
            "Remove the leading dash; write a path starting with a dash as ./-name."
        )
    if len(os.fsencode(token)) > MAX_TOKEN_BYTES:
        raise MhsftError(
            f"{where}: the value is {len(os.fsencode(token)) // 1024} KiB; Linux passes at most 128 KiB in one "
            "argument or variable. Put long text (a system prompt, a JSON config) in a file and give its path."
        )


def argv_for(command: str, args: dict[str, Any], cwd: Path) -> list[str]:
    """`--name value...` tokens for every argument of `swift <command>`; empty lists are left out."""
    known = specs(command)
    out: list[str] = []
    for key, value in args.items():
        many = known[key].list
        items = value if many and isinstance(value, list) else [value]
        if not items:
            continue
        out.append(f"--{key}")
        out.extend(localize(key, token(v), cwd) if isinstance(v, str) else token(v) for v in items)
        for rendered in out[len(out) - len(items) :]:
            check_token(rendered, f"swift {command} --{key}")
    return out
