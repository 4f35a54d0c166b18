"""A small TOML writer for resolved recipes (tomllib only reads)."""

from __future__ import annotations

import json
import re
from typing import Any


def value_text(value: Any) -> str:
    """One value in TOML syntax (what `--set` reads back)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {value_text(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value), ensure_ascii=False)


def _key(key: str) -> str:
    """A bare TOML key when it may be one (ASCII letters, digits, _ and -), else a quoted one."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def dumps(data: dict[str, Any]) -> str:
    """Top-level scalars first, then one [table] per dict."""
    lines = [f"{_key(k)} = {value_text(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{name}]", *(f"{_key(k)} = {value_text(v)}" for k, v in table.items())]
    return "\n".join(lines).strip() + "\n"
