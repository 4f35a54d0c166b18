"""Everything mhsft prints goes through here, with every known secret value replaced by `****`.

Plain lines are written directly (rich costs ~80 ms to import, which `--dry-run` should not pay); tables use
rich, imported when one is drawn.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Fit:
    """How a table fits the terminal's width with one line a row: `priority` names the columns most important
    first (a column not named comes after them, in its order); the first `keep` are never dropped, `whole` are
    never shortened, `tails` keep the end of a long value (paths); the rest are shortened with an ellipsis, then
    dropped from the least important."""

    priority: tuple[str, ...] = ()
    keep: int = 1
    whole: frozenset[str] = frozenset()
    tails: frozenset[str] = frozenset()
    width: int | None = None  # the width to fit, when not the terminal's (`runs --wide`: every value whole)


MIN_CELL = 8  # a shortened column keeps at least this many cells (or its whole value)
TAIL_CELL = 24  # and a path's column this many: the end of a checkpoint path is what tells it apart
HIDDEN_HINT = "widen the terminal or use {options}"


def _cut(text: str, width: int, tail: bool) -> str:
    """`text` in at most `width` terminal cells, an ellipsis where it was cut (at the start for a `tail`)."""
    from rich.cells import cell_len, set_cell_size

    if cell_len(text) <= width:
        return text
    if not tail:
        return set_cell_size(text, width - 1) + "…"
    kept = text
    while cell_len(kept) > width - 1:
        kept = kept[1:]
    return "…" + kept


def fitted(columns: list[str], rows: list[list[str]], width: int, fit: Fit) -> tuple[list[int], list[int]]:
    """(the shown columns' indexes in table order, their widths) for a table of `rows` within `width` cells: by
    `fit.priority`, each column while it fits at its least width (MIN_CELL, TAIL_CELL), then the room left shared
    out up to each one's longest value."""
    from rich.cells import cell_len

    longest = [max([cell_len(c), *(cell_len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    order = list(dict.fromkeys(columns.index(c) for c in fit.priority if c in columns))  # a name given twice: once
    order += [i for i in range(len(columns)) if i not in order]
    floor = [
        n if c in fit.whole else min(n, TAIL_CELL if c in fit.tails else MIN_CELL)
        for c, n in zip(columns, longest, strict=True)
    ]
    shown: list[int] = []
    for i in order:  # a rich table's frame: 3 cells a column and one
        if len(shown) >= fit.keep and sum(floor[j] for j in [*shown, i]) + 3 * (len(shown) + 1) + 1 > width:
            break
        shown.append(i)
    spare = width - 3 * len(shown) - 1 - sum(floor[i] for i in shown)
    widths = {i: floor[i] for i in shown}
    while spare > 0 and (short := [i for i in shown if widths[i] < longest[i]]):  # an equal share each round
        for i in short:
            grow = min(max(1, spare // len(short)), longest[i] - widths[i], spare)
            widths[i] += grow
            spare -= grow
    ordered = sorted(shown)
    return ordered, [widths[i] for i in ordered]


def table(
    title: str | None,
    columns: list[str],
    rows: list[list[str]],
    styles: dict[str, str] | None = None,
    fit: Fit | None = None,
    options: str = "--wide/--json",
) -> None:
    """A rich table on stdout; a cell whose whole text is a key of `styles` gets that style. With `fit`, each row
    is one line within the terminal's width (COLUMNS when set): long values shortened, columns dropped by
    priority and named on stderr with `options` (the command's way to see them all)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, width=fit.width if fit else None)
    cells = [[clean(printable(cell)) for cell in row] for row in rows]
    header, widths, keys, hidden = columns, [None] * len(columns), rows, []
    if fit is not None:
        cells = [[" ".join(cell.splitlines()) for cell in row] for row in cells]
        shown, sizes = fitted(columns, cells, console.width, fit)
        placed = list(zip(shown, sizes, strict=True))
        header, widths = [_cut(columns[i], w, False) for i, w in placed], list(sizes)
        cells = [[_cut(row[i], w, columns[i] in fit.tails) for i, w in placed] for row in cells]
        keys = [[row[i] for i in shown] for row in rows]
        hidden = [c for i, c in enumerate(columns) if i not in shown]
    t = Table(title=title, title_justify="left")
    for name, width in zip(header, widths, strict=True):
        t.add_column(name, overflow="fold", no_wrap=width is not None, width=width)
    for key_row, row in zip(keys, cells, strict=True):
        t.add_row(*(Text(text, style=(styles or {}).get(key, "")) for key, text in zip(key_row, row, strict=True)))
    console.print(t)
    if hidden:
        info(f"{len(hidden)} column(s) hidden ({', '.join(hidden)}): " + HIDDEN_HINT.format(options=options))
