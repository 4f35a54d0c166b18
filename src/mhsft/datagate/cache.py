"""The gate's cache entries, `.mhsft/data-cache/<key>/`: built aside, sealed, verified before use, swept.

An entry is built in a `.tmp-<host>.<pid>.*` folder and renamed into place once whole. Its `manifest.json`,
written last, records each file's size and a hash of its first and last MiB; an entry is used only when every
file is still there with that size and hash (so a deleted split folder or a truncated arrow file is found here,
not by `swift sft` after the model has loaded). A temporary folder whose process is gone (a check killed
mid-export) is removed by the next check on the same host.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

MANIFEST = "manifest.json"
TEMP = ".tmp-"
SAMPLE = 1 << 20  # bytes hashed at each end of a file


def _sample_hash(path: Path, size: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        h.update(f.read(SAMPLE))
        f.seek(max(SAMPLE, size - SAMPLE))
        h.update(f.read(SAMPLE))
    return h.hexdigest()


def seal(folder: Path) -> None:
    """Write the manifest of every file under `folder`."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        size = path.stat().st_size
        files[str(path.relative_to(folder))] = [size, _sample_hash(path, size)]
    (folder / MANIFEST).write_text(json.dumps({"files": files}), encoding="utf-8")


def damage(folder: Path) -> str | None:
    """What is wrong with a cache entry (a file missing, cut or changed since it was sealed), or None."""
    if not (folder / MANIFEST).is_file():
        return f"no {MANIFEST}: an older mhsft wrote it, or it was removed"
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MANIFEST} is not readable"
    for name, (size, digest) in files.items():
        path = folder / name
        try:
            actual = path.stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} is {actual} bytes, {size} when it was written"
        if _sample_hash(path, size) != digest:
            return f"{name} changed since it was written"
    return None


def workspace(cache: Path) -> Path:
    """A fresh temporary folder in the cache, named after this host and process."""
    cache.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{TEMP}{socket.gethostname()}.{os.getpid()}.", dir=cache))


def discard(folder: Path) -> None:
    """Remove a cache entry: renamed aside first, so that it is never half there under its key."""
    aside = workspace(folder.parent)
    os.replace(folder, aside / "entry")
    shutil.rmtree(aside, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(cache: Path) -> None:
    """Remove the temporary folders of this host's checks that died (killed mid-export)."""
    host = socket.gethostname()
    for folder in cache.glob(f"{TEMP}*"):
        parts = folder.name[len(TEMP) :].rsplit(".", 2)
        if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and not _alive(int(parts[1])):
            shutil.rmtree(folder, ignore_errors=True)
