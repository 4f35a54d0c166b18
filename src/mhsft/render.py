"""Turning validated swift arguments into argv tokens, following ms-swift 4.6's parsing rules.

Every bool is `--flag true|false` (4.6's Optional[bool] flags need a value), a list is one flag followed by
its items, a table is a JSON string, and local paths are made absolute because swift stores them verbatim
in args.json (a relative model path makes a later `swift infer` elsewhere try to download it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mhsft.paths import absolute, exists
from mhsft.swift_args import specs

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
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".txt", ".parquet", ".py")
_SAMPLE_SUFFIX = re.compile(r"#\d+$")


def looks_local(value: str, cwd: Path) -> bool:
    """Whether swift will read `value` as a local path rather than a hub id or preset name."""
    return value.startswith(("/", "./", "../", "~")) or value.endswith(DATA_SUFFIXES) or exists(cwd / value)


def localize(key: str, value: str, cwd: Path) -> str:
    """`value` with its local path made absolute (keeping a dataset's `#N` sample suffix)."""
    suffix_match = _SAMPLE_SUFFIX.search(value) if key in ("dataset", "val_dataset") else None
    base = value[: suffix_match.start()] if suffix_match else value
    if key in PATH_KEYS or (key in MAYBE_PATH_KEYS and looks_local(base, cwd)):
        base = absolute(base, cwd)
    return base + (suffix_match.group(0) if suffix_match else "")


def local_paths(key: str, value: Any, cwd: Path) -> list[str]:
    """The local input paths a value names (model dirs, dataset files), absolute, for existence checks."""
    if key not in MAYBE_PATH_KEYS and key not in ("adapters", "resume_from_checkpoint"):
        return []
    items = value if isinstance(value, list) else [value]
    return [
        _SAMPLE_SUFFIX.sub("", localize(key, str(v), cwd))
        for v in items
        if isinstance(v, str) and (key not in MAYBE_PATH_KEYS or looks_local(_SAMPLE_SUFFIX.sub("", v), cwd))
    ]


def token(value: Any) -> str:
    """One value as swift's parser wants it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


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
    return out
