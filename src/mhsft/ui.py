"""Everything mhsft prints goes through here, with every known secret value replaced by `****`.

Plain lines are written directly (rich costs ~80 ms to import, which `--dry-run` should not pay); tables use
rich, imported when one is drawn.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any

from mhsft.environment import is_secret_name, redact

_secrets: list[str] = []


def hide(values: Iterable[str]) -> None:
    """Register secret values that must never be printed."""
    _secrets.extend(v for v in values if v)


def hide_environment(values: Mapping[str, str]) -> None:
    """Register the values of every secret-named variable in `values`."""
    hide(v for k, v in values.items() if is_secret_name(k))


def clean(text: str) -> str:
    return redact(text, _secrets)


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with terminal control characters shown escaped (ESC as \\x1b, BEL, CR, C1 codes, bidi overrides):
    a recipe or file name cannot clear the screen, set the title or hide text. Newlines and tabs stay."""
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], text)


class _Redacting:
    """A text stream that redacts what passes through it (for output mhsft does not format itself: click's
    usage errors, rich tables, tracebacks)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(clean(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_streams() -> None:
    """Route everything written to sys.stdout/sys.stderr through redaction, secrets of the environment known."""
    hide_environment(os.environ)
    if not isinstance(sys.stdout, _Redacting):
        sys.stdout, sys.stderr = _Redacting(sys.stdout), _Redacting(sys.stderr)  # type: ignore[assignment]


def _styled(label: str, code: str) -> str:
    if sys.stderr.isatty() and "NO_COLOR" not in os.environ:
        return f"\033[{code}m{label}\033[0m"
    return label


def info(text: str) -> None:
    print(clean(text), file=sys.stderr, flush=True)


def warn(text: str) -> None:
    print(_styled("warning:", "33"), clean(printable(text)), file=sys.stderr, flush=True)


def error(text: str) -> None:
    print(_styled("error:", "1;31"), clean(printable(text)), file=sys.stderr, flush=True)


def crashed() -> None:
    """Report an unexpected exception (a bug) with its traceback, secrets from the environment and .env masked."""
    import contextlib
    import traceback

    from mhsft.environment import load_environment

    with contextlib.suppress(Exception):  # the .env itself may be what failed; the environment's secrets are known
        hide_environment(load_environment().values)
    error(
        "mhsft stopped on an unexpected error. This is a bug in mhsft: please report it with the "
        "traceback below (secrets are masked).\n" + traceback.format_exc().rstrip()
    )


def echo(text: str) -> None:
    """Plain stdout (dry-run commands, JSON, TOML): no markup, no wrapping."""
    print(clean(text), flush=True)


def pairs(rows: list[tuple[str, str]]) -> None:
    """Aligned `key  value` lines on stderr (the plan shown before swift starts)."""
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        info(f"{_styled(printable(key).ljust(width), '36')}  {printable(value)}")


def table(title: str | None, columns: list[str], rows: list[list[str]], styles: dict[str, str] | None = None) -> None:
    """A rich table on stdout; a cell whose whole text is a key of `styles` gets that style."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for row in rows:
        t.add_row(*(Text(clean(printable(cell)), style=(styles or {}).get(cell, "")) for cell in row))
    Console(highlight=False).print(t)
