"""A report as a list of blocks, written out as Markdown (images beside it) or as one self-contained HTML file."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mhsft import ui
from mhsft.errors import MhsftError


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    css: str = ""


@dataclass(frozen=True)
class Image:
    """A PNG: a file `name` beside report.md, a data: URI in report.html."""

    name: str
    alt: str
    png: bytes


Block = Heading | Para | Code | Table | Image


_MARKUP = re.compile(r"([\\`*\[\]|])")


def _text(text: str) -> str:
    """Untrusted text (prompts, answers, names) shown as itself in any Markdown viewer: HTML such as `<script>`
    or `<img onerror>` as entities, and the characters of links, images, code, emphasis and tables escaped."""
    return _MARKUP.sub(r"\\\1", html.escape(text, quote=False))


def _cell(text: str) -> str:
    return _text(text).replace("\n", "<br>") or " "


def _fenced(text: str) -> str:
    """A code block whose fence is longer than any run of backticks inside it."""
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall("`+", text)), default=0))
    return f"{fence}\n{text}\n{fence}"


def markdown(blocks: list[Block]) -> str:
    """GitHub-flavoured Markdown, every text escaped (see `_text`); images are referenced by file name."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {_text(b.text)}")
        elif isinstance(b, Para):
            out.append(_text(b.text))
        elif isinstance(b, Code):
            out.append(_fenced(b.text))
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(map(_cell, b.columns)) + " |", "|" + "---|" * len(b.columns)]
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        else:
            out.append(f"![{_text(b.alt)}]({b.name})")
    return "\n\n".join(out) + "\n"


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;
vertical-align:top;text-align:left;white-space:pre-wrap}th{background:#f3f3f3}pre{background:#f6f6f6;
padding:8px;overflow-x:auto;font-size:13px}img{max-width:48%;margin:4px;border:1px solid #ddd}
"""


def to_html(blocks: list[Block], title: str) -> str:
    """One HTML file with its style and images inside it: nothing is fetched from anywhere."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
    ]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif isinstance(b, Code):
            out.append(f"<pre><code>{html.escape(b.text)}</code></pre>")
        elif isinstance(b, Table):
            cells = "".join(f"<th>{html.escape(c)}</th>" for c in b.columns)
            head = f"<thead><tr>{cells}</tr></thead>" if any(b.columns) else ""
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            css = f' class="{b.css}"' if b.css else ""
            out.append(f"<table{css}>{head}<tbody>{body}</tbody></table>")
        else:
            data = base64.b64encode(b.png).decode("ascii")
            out.append(
                f'<img id="{html.escape(b.name)}" alt="{html.escape(b.alt)}" src="data:image/png;base64,{data}">'
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def make_folder(dest: Path) -> None:
    """Create the report's folder; a one-paragraph error when it cannot be."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MhsftError(
            f"--out {dest}: cannot create the folder ({exc.strerror or exc}). Give a writable one."
        ) from None


def write(dest: Path, blocks: list[Block], title: str, redact: Callable[[str], str]) -> str:
    """report.md with its images beside it and report.html in `dest`, secrets masked; the Markdown."""
    markdown_text = redact(ui.clean(markdown(blocks)))
    page = redact(ui.clean(to_html(blocks, title)))
    for block in blocks:
        if isinstance(block, Image):
            (dest / block.name).write_bytes(block.png)
    (dest / "report.md").write_text(markdown_text, encoding="utf-8")
    (dest / "report.html").write_text(page, encoding="utf-8")
    return markdown_text
