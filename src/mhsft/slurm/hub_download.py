"""In a child process (see `process.isolated`): one hub repository downloaded into its folder with the hub's own SDK.

The child lists the repository's files (`modelscope_hub.HubApi().list_repo_files`, `huggingface_hub`'s
`list_repo_tree`), refuses when what is still missing exceeds the target disk's free space, and downloads with
`snapshot_download(..., local_dir=target)` of `huggingface_hub`, or the one in `modelscope_hub` that modelscope's
own `snapshot_download` delegates to (without modelscope's 4 s import); both resume a partial file. A
folder whose marker (written after a complete download) lists the same files with the same sizes is not
downloaded again: a second submit costs one listing request. While the SDK works, the bytes in the folder are
reported as `progress` lines every half second (the parent draws the bar and stops a child silent too long).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from mhsft.checks import FAIL, OK, Check
from mhsft.preflight.hub import cause
from mhsft.process import isolated

MARKER = ".mhsft-download.json"
POLL_S = 0.5
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}  # the target's disk, not the hub


def listing(hub: str, repo_id: str, revision: str | None, token: str | None) -> dict[str, int]:
    """{path: size} of the repository's files, from the hub's file list."""
    if hub == "hf":
        from huggingface_hub import HfApi
        from huggingface_hub.hf_api import RepoFile

        tree = HfApi(token=token).list_repo_tree(repo_id, recursive=True, revision=revision)
        return {f.path: int(f.size or 0) for f in tree if isinstance(f, RepoFile)}
    from modelscope_hub import HubApi

    files = HubApi(token=token).list_repo_files(repo_id, "model", revision=revision)
    return {f.path: int(f.size or 0) for f in files if not f.is_dir}


def snapshot(hub: str, repo_id: str, revision: str | None, token: str | None, target: Path) -> None:
    if hub == "hf":
        from huggingface_hub import snapshot_download as hf_snapshot_download

        hf_snapshot_download(repo_id, revision=revision, local_dir=str(target), token=token)
        return
    from modelscope_hub.compat.snapshot_download import snapshot_download  # what modelscope's own delegates to

    snapshot_download(repo_id, revision=revision, local_dir=str(target), token=token)


def present(target: Path, files: dict[str, int]) -> int:
    """The bytes of `files` already in `target` whole (same size)."""
    return sum(size for name, size in files.items() if _size(target / name) == size)


def marked(target: Path) -> dict[str, int] | None:
    """The files (with sizes) the marker of a finished download in `target` lists; None without one."""
    try:
        files = json.loads((target / MARKER).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    return files if isinstance(files, dict) else None


def complete(target: Path, files: dict[str, int]) -> bool:
    """Whether a finished download of exactly these files is in `target` (its marker, and every file's size)."""
    return marked(target) == files and present(target, files) == sum(files.values())


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def folder_bytes(target: Path) -> int:
    """Every byte under `target` (the SDKs' partial files included), for the progress bar; a partial file the SDK
    renames or removes meanwhile counts as nothing."""
    return sum(size for p in target.rglob("*") if p.name != MARKER and p.is_file() and (size := _size(p)))


def free_bytes(target: Path) -> int:
    """Free space on the disk that holds `target` (or its nearest existing parent)."""
    folder = target
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def _report_progress(target: Path, needed: int, stop: threading.Event, emit: isolated.Emit) -> None:
    """Every POLL_S while the SDK works: the bytes it added to the folder so far, when they changed."""
    base = last = folder_bytes(target)
    while not stop.wait(POLL_S):
        done = folder_bytes(target)
        if done != last:
            emit("progress", {"done": done - base, "of": needed})
            last = done


def failure(exc: BaseException) -> str:
    """What went wrong with the hub, in words: not found, refused, or the network cause."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(exc, "status_code", None)
    if status == 404 or type(exc).__name__ in ("NotExistError", "RepositoryNotFoundError"):
        return "the hub has no such repository (HTTP 404)"
    if status in (401, 403) or type(exc).__name__ in ("AuthenticationError", "PermissionDeniedError", "GatedRepoError"):
        return f"the hub refused access (HTTP {status or 401}); a private model needs its hub token in .env"
    if isinstance(exc, (OSError, TimeoutError)) or "Connection" in type(exc).__name__:
        return f"the hub {cause(exc)}"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def download(args: dict[str, Any], emit: isolated.Emit) -> None:
    """The child: list, check the disk, download; reports facts (total, needed, free, files) and one check."""
    try:
        _download(args, emit)
    except OSError as exc:
        if exc.errno in DISK_ERRORS:  # a quota or a read-only disk: `disk_usage` saw free space, the write failed
            emit("check", Check("target disk", FAIL, os.strerror(exc.errno)).as_dict())
        else:
            emit("check", Check("hub", FAIL, failure(exc)).as_dict())
    except Exception as exc:  # the SDKs' own exceptions: reported as the cause, never a traceback
        emit("check", Check("hub", FAIL, failure(exc)).as_dict())


def _download(args: dict[str, Any], emit: isolated.Emit) -> None:
    hub, repo_id, revision, target = args["hub"], args["repo_id"], args["revision"], Path(args["target"])
    name = f"download of {repo_id}"
    emit("step", f"the file list of {repo_id}")
    try:
        files = listing(hub, repo_id, revision, args.get("token"))
    except Exception as exc:
        earlier = marked(target)
        if earlier is None or present(target, earlier) != sum(earlier.values()):
            raise
        unverified = {"unverified": failure(exc), "total": str(sum(earlier.values())), "files": str(len(earlier))}
        emit("facts", unverified | {"needed": "0"})  # a whole earlier download, not compared with the hub's list
        emit("check", Check(name, OK, "already here; the hub's file list could not be read").as_dict())
        return
    total = sum(files.values())
    if complete(target, files):
        emit("facts", {"total": str(total), "needed": "0", "files": str(len(files))})
        emit("check", Check(name, OK, "already here").as_dict())
        return
    needed, free = total - present(target, files), free_bytes(target)
    emit("facts", {"total": str(total), "needed": str(needed), "free": str(free), "files": str(len(files))})
    if needed > free:
        emit("check", Check("disk", FAIL, f"{needed} bytes needed, {free} free").as_dict())
        return
    emit("step", f"the download of {repo_id}")
    target.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    watcher = threading.Thread(target=_report_progress, args=(target, needed, stop, emit), daemon=True)
    watcher.start()
    try:
        snapshot(hub, repo_id, revision, args.get("token"), target)
    finally:
        stop.set()
        watcher.join()
    (target / MARKER).write_text(json.dumps({"hub": hub, "repo_id": repo_id, "files": files}), encoding="utf-8")
    emit("check", Check(name, OK, "downloaded").as_dict())
