"""Everything mhsft prints goes through here, with every known secret value replaced by `****`.

Plain lines are written directly (rich costs ~80 ms to import, which `--dry-run` should not pay); tables use
rich, imported when one is drawn.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from mhsft.environment import redact

_secrets: list[str] = []


def hide(values: Iterable[str]) -> None:
    """Register secret values that must never be printed."""
    _secrets.extend(v for v in values if v)


def clean(text: str) -> str:
    return redact(text, _secrets)


def _styled(label: str, code: str) -> str:
    if sys.stderr.isatty() and "NO_COLOR" not in os.environ:
        return f"\033[{code}m{label}\033[0m"
    return label


def info(text: str) -> None:
    print(clean(text), file=sys.stderr, flush=True)


def warn(text: str) -> None:
    print(_styled("warning:", "33"), clean(text), file=sys.stderr, flush=True)


def error(text: str) -> None:
    print(_styled("error:", "1;31"), clean(text), file=sys.stderr, flush=True)


def echo(text: str) -> None:
    """Plain stdout (dry-run commands, JSON, TOML): no markup, no wrapping."""
    print(clean(text), flush=True)


def pairs(rows: list[tuple[str, str]]) -> None:
    """Aligned `key  value` lines on stderr (the plan shown before swift starts)."""
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        info(f"{_styled(key.ljust(width), '36')}  {value}")


def table(title: str | None, columns: list[str], rows: list[list[str]], styles: dict[str, str] | None = None) -> None:
    """A rich table on stdout; a cell whose whole text is a key of `styles` gets that style."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for row in rows:
        t.add_row(*(Text(clean(cell), style=(styles or {}).get(cell, "")) for cell in row))
    Console(highlight=False).print(t)
