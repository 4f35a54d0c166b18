"""Every command's --help shows its help text whole: no word lost to rich markup (`[slurm]` once vanished)."""

from __future__ import annotations

import re

import click
import pytest
import typer
from typer.testing import CliRunner

from mhsft.cli import app


def commands(group: click.Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, group)]
    for name, sub in getattr(group, "commands", {}).items():
        found += commands(sub, (*path, name))
    return found


ALL = commands(typer.main.get_command(app))


def flat(text: str) -> str:
    """Text with rich's box characters gone and every run of whitespace one space."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def texts(command: click.Command) -> list[str]:
    """The help texts a command's --help shows: its own paragraphs, epilog and every parameter's help."""
    own = [p for p in (command.help or "").split("\n\n") if p.strip()] + [command.epilog or ""]
    return [t for t in own + [getattr(p, "help", None) or "" for p in command.params] if t.strip()]


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "mhsft")
def test_every_help_text_renders_whole(path: tuple[str, ...]) -> None:
    command = dict(ALL)[path]
    shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"}, terminal_width=400)
    assert shown.exit_code == 0, shown.output
    output = flat(shown.output)
    for text in texts(command):
        expected = flat(text.replace("\\[", "["))
        assert expected in output, f"{' '.join(path)} --help lost words of: {text!r}"
    assert not re.search(r"\(\s+\w|\[\]|\(\)", output), output
