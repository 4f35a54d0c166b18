"""The check each node's runner makes before swift starts: what the run needs, seen from where it runs.

The submitting machine's preflight passed, but a GPU node may have no internet or not see the shared folders:
without this check a cloud-mode run would fail at `swanlab.init`, after the model has loaded. In seconds, and
before swift starts: the shared folders the run writes are there and writable, the local inputs it reads (the
model folder, downloaded before the queue with offline nodes, the data files, the gate's cache) are visible;
in SwanLab cloud mode the API
host answers `GET /api`; when the run names a hub id, the hub answers. The network part runs in the same
bounded child process as the preflight (see `process.isolated`), with plain HTTP (no SDK import).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mhsft.checks import FAIL, OK, Check
from mhsft.environment import Environment, without_secrets
from mhsft.errors import PREFLIGHT, MhsftError
from mhsft.paths import unwritable
from mhsft.preflight.swanlab import find_key
from mhsft.process import isolated
from mhsft.recipe.model import Recipe
from mhsft.recipe.plan import Plan, swanlab_log_dir

TIMEOUT_S = 10.0
HUB_HOSTS = {
    "modelscope": ("MODELSCOPE_ENDPOINT", "https://www.modelscope.cn"),
    "hf": ("HF_ENDPOINT", "https://huggingface.co"),
}
OFFLINE_FIX = (
    "if the nodes have no internet, set [slurm] offline_nodes = true (SwanLab then tracks locally on the nodes and "
    "`mhsft submit` uploads from the submitting machine)"
)


def hub_host(hub: str, environment: Mapping[str, str]) -> str:
    """The address the hub's SDK downloads from (its endpoint variable, else its public site)."""
    variable, default = HUB_HOSTS[hub]
    domain = environment.get("MODELSCOPE_DOMAIN") if hub == "modelscope" else None
    return (environment.get(variable) or (f"https://{domain}" if domain else default)).rstrip("/")


def reach(args: dict[str, Any], emit: isolated.Emit) -> None:
    """In the child: GET each of `args["hosts"]` ({name: url}); SwanLab must answer OK, a hub any HTTP answer."""
    for name, url in args["hosts"].items():
        emit("step", f"GET {url}")
        left = max(0.1, args["deadline"] - time.monotonic())
        try:
            with urllib.request.urlopen(url, timeout=left) as answer:
                body = answer.read(64).decode("utf-8", "replace").strip().strip('"')
        except urllib.error.HTTPError as exc:
            body = "" if name == "swanlab" else str(exc.code)  # a hub that answers at all is reachable
        except (OSError, ValueError) as exc:
            emit("check", Check(name, FAIL, f"{url} cannot be reached from this node ({exc})", "").as_dict())
            continue
        ok = body == "OK" if name == "swanlab" else True
        detail = f"{url} answers" if ok else f"{url} answered {body[:40]!r}, not OK"
        emit("check", Check(name, OK if ok else FAIL, detail, "").as_dict())


def folders(plan: Plan, recipe: Recipe, cwd: Path, run_id: str | None) -> list[Check]:
    """The shared folders the run writes (output and SwanLab log), each created if missing and written to."""
    found = []
    for what, folder in (
        ("output folder", plan.output_dir),
        ("SwanLab log folder", swanlab_log_dir(recipe, cwd, run_id)),
    ):
        if exc := unwritable(folder, ".mhsft-node-"):  # type: ignore[arg-type]
            fix = "submit from a folder every node shares (home or project storage), or set the path to one"
            found.append(Check(what, FAIL, f"{folder} is not writable on this node ({exc.strerror or exc})", fix))
        else:
            found.append(Check(what, OK, f"{folder} is writable"))
    return found


def inputs(plan: Plan) -> Check:
    """The local inputs swift reads (model folder, data files, the gate's cache) exist where this node looks."""
    missing = plan.missing_inputs()
    if missing:
        fix = (
            "put it on storage every node shares (a model downloaded before the queue goes to [slurm] download_dir, "
            "by default under the submit directory)"
        )
        return Check("inputs", FAIL, f"{missing[0]} is not visible on this node", fix)
    return Check("inputs", OK, f"{len(plan.inputs)} local input(s) visible")


def check(plan: Plan, recipe: Recipe, environment: Environment, cwd: Path, run_id: str | None) -> str:
    """Run the node check; its one-line result, or an MhsftError (exit 3) naming the cause and the fix."""
    started = time.monotonic()
    checks = [*folders(plan, recipe, cwd, run_id), inputs(plan)]
    hosts = {hub: hub_host(hub, environment) for hub in plan.hubs}
    if recipe.swanlab.mode == "cloud":
        hosts["swanlab"] = f"{find_key(recipe.swanlab, environment, cwd)[2]}/api"
    if hosts:
        outcome = isolated.run(
            "mhsft.slurm.node_check:reach", {"hosts": hosts}, TIMEOUT_S, without_secrets(environment.values)
        )
        checks += outcome.checks
        stalled = isolated.failure("network", outcome, TIMEOUT_S, ", ".join(hosts.values()), "")
        if stalled and len(outcome.checks) < len(hosts):
            checks.append(stalled)
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        first = failed[0]
        fix = first.fix or (
            OFFLINE_FIX
            if first.name in ("swanlab", "network")
            else f"download the {first.name} inputs to a shared folder before submitting; {OFFLINE_FIX}"
        )
        raise MhsftError(
            f"node check failed ({first.name}): {first.detail}. Fix: {fix}. swift was not started.", PREFLIGHT
        )
    return f"node check ok: {', '.join(c.detail for c in checks)} ({time.monotonic() - started:.1f} s)"
