"""Small path helpers shared by messages and rendering."""

from __future__ import annotations

import os
from pathlib import Path


def display(path: Path | str) -> str:
    """A path as a person would type it: relative to the current directory when it is inside it."""
    p = Path(path)
    try:
        rel = p.resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        return str(p)
    return str(rel) if str(rel) != "." else "."


def exists(path: Path | str) -> bool:
    """Whether a user-given path exists; an unusable one (too long, NUL) simply does not."""
    return os.path.exists(path)


def absolute(value: str, cwd: Path) -> str:
    """`value` as an absolute path, `~` expanded, relative paths taken from `cwd`."""
    return os.path.normpath(cwd / os.path.expanduser(value))  # `~nouser` stays as typed


def unwritable(folder: Path | str, prefix: str = ".mhsft-") -> OSError | None:
    """Why `folder` (created if missing) cannot be written, by writing a scratch file there; None when it can."""
    import tempfile  # not at the top: it imports shutil, which --dry-run and validation do not need

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=prefix):
            pass
    except OSError as exc:
        return exc
    return None
