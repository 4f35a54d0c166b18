"""The registry of built-in recipes shipped inside the package (`recipes/` at the repository top)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mhsft.errors import MhsftError
from mhsft.paths import display

DIRECTORY = Path(__file__).resolve().parent.parent / "recipes"
_DESCRIPTION = re.compile(r'^description\s*=\s*"(.*)"\s*$', re.MULTILINE)


def names() -> list[str]:
    """Built-in recipe names, sorted."""
    return sorted(p.stem for p in DIRECTORY.glob("*.toml"))


def path(name: str) -> Path | None:
    """The file of built-in recipe `name`: `qwen7b`, `qwen7b.toml` or `recipes/qwen7b.toml`; else None."""
    given = Path(name)
    if str(given.parent) not in (".", "recipes"):
        return None
    candidate = DIRECTORY / f"{given.name.removesuffix('.toml')}.toml"
    return candidate if os.path.isfile(candidate) else None  # False for a name too long to exist


def description(name: str) -> str:
    """The recipe's one-line description, read without a TOML parse."""
    found = _DESCRIPTION.search((DIRECTORY / f"{name}.toml").read_text(encoding="utf-8"))
    return found.group(1) if found else ""


def copy(name: str, dest: Path, overwrite: bool = False) -> Path:
    """Copy built-in `name` to `dest` (a file, or a folder to put NAME.toml in) so it can be edited."""
    source = path(name)
    if source is None:
        raise MhsftError(f"--from {name}: no built-in recipe of that name. The built-ins are: {', '.join(names())}.")
    if not dest.name.strip(".") or dest.name.startswith("."):
        raise MhsftError(f"{str(dest)!r} is not a recipe name: give a name such as my-run or recipes/my-run.")
    if dest.suffix != ".toml":
        dest = dest.with_name(f"{dest.name}.toml")
    if os.path.exists(dest) and not overwrite:
        raise MhsftError(f"{display(dest)} already exists. Choose another name, or pass --force to replace it.")
    import shutil  # only here: not worth its import (bz2, lzma) on every call

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    except OSError as exc:
        raise MhsftError(
            f"cannot write {display(dest)} ({exc.strerror or exc}). Choose a folder you can write."
        ) from None
    return dest
