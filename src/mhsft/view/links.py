"""Where a run's SwanLab data is: the cloud run page (as the SDK prints it) or the local log folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from mhsft.environment import Environment
from mhsft.recipe.model import Recipe
from mhsft.runs import uploads
from mhsft.runs.records import RunRecord

CLOUD_API, CLOUD_WEB = "https://api.swanlab.cn", "https://swanlab.cn"


def _host(url: str) -> str:
    """A host as swanlab normalises it: scheme (https if none), name and port, no path."""
    parts = urlsplit(url.strip() if "://" in url else f"//{url.strip()}")
    if not parts.hostname:
        return url.strip().rstrip("/")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or 'https'}://{parts.hostname}{port}"


def web_host(api_host: str | None, web: str | None) -> str:
    """The web host of a SwanLab deployment: the one given, else the cloud's, else (private) the API host."""
    if web:
        return _host(web)
    if not api_host or _host(api_host).replace("http://", "https://") == CLOUD_API:
        return CLOUD_WEB
    return _host(api_host)


def run_url(web: str, workspace: str, project: str, run_id: str) -> str:
    """`{web}/@{workspace}/{project}/runs/{id}`: the page swanlab.init prints for a cloud run."""
    return f"{web}/@{quote(workspace)}/{quote(project)}/runs/{quote(run_id)}"


def cloud_url(api_host: str | None, web: str | None, workspace: str | None, project: str, run_id: str) -> str | None:
    """The run page, or None when the workspace is not known (no preflight ran and the recipe names none)."""
    return run_url(web_host(api_host, web), workspace, project, run_id) if workspace else None


def flags(argv: list[str]) -> dict[str, str]:
    """`--name value...` pairs of a recorded command line (values of a list joined by spaces)."""
    found: dict[str, list[str]] = {}
    current = None
    for token in argv:
        if token.startswith("--"):
            current = token[2:]
            found[current] = []
        elif current is not None:
            found[current].append(token)
    return {k: " ".join(v) for k, v in found.items()}


def swanlab_of(record: RunRecord) -> dict[str, Any] | None:
    """Mode, workspace, project, experiment, run id and the link (cloud URL or local log folder) of a training run."""
    if record.command != "sft":
        return None
    args = flags(record.argv)
    mode = args.get("swanlab_mode", "cloud")
    info: dict[str, Any] = {
        "mode": mode,
        "workspace": args.get("swanlab_workspace") or record.extra.get("swanlab_workspace"),
        "project": args.get("swanlab_project"),
        "experiment": args.get("swanlab_exp_name"),
        "run_id": record.swanlab_run_id,
    }
    if mode == "local":
        info["log_dir"] = record.env.get("SWANLAB_LOG_DIR") or str(Path(record.cwd) / "swanlog")
        info["board"] = f"mhsft board {record.id}"
    if record.extra.get("swanlab_offline"):  # tracked locally, uploaded by `mhsft sync` under the same run id
        info["mode"] = "offline"
        upload = uploads.read(record)
        info["upload"] = upload.describe() if upload else "not uploaded yet: mhsft sync " + record.id
        info["url"] = upload.url if upload else None
    elif mode != "local":
        info["url"] = record.extra.get("swanlab_url")
    return info


def for_record(recipe: Recipe, environment: Environment, found: dict[str, str], run_id: str) -> dict[str, Any]:
    """What a training record keeps about its SwanLab page (`found`: what the preflight found, if it ran)."""
    s = recipe.swanlab
    if s.mode == "local":
        return {}
    if s.mode == "offline":
        return {"swanlab_offline": True, **({"swanlab_workspace": s.workspace} if s.workspace else {})}
    workspace = s.workspace or found.get("workspace")
    api_host = found.get("host") or s.api_host or environment.get("SWANLAB_API_HOST")
    url = cloud_url(api_host, s.web_host or environment.get("SWANLAB_WEB_HOST"), workspace, s.project, run_id)
    return {k: v for k, v in {"swanlab_workspace": workspace, "swanlab_url": url}.items() if v}
