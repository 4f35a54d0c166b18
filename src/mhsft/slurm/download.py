"""Every download before the queue (`[slurm] offline_nodes`): the hub repositories a run names, fetched here.

The nodes have no internet, so `mhsft submit` downloads the model and the adapters that the recipe names by hub
id into `[slurm] download_dir` (default `.mhsft/hub-cache/` in the submit directory, which the nodes share):
`<download_dir>/<hub>/<owner>/<name>`, with the hub's own SDK in a child process (`slurm.hub_download`), and the
recipe the nodes run names those folders. The tokenizer is in the model's folder (swift sft takes it from
there). Hub datasets need nothing here: the dataset gate tokenises them on this machine and the nodes train
from its cache.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.checks import OK
from mhsft.environment import Environment, without_secrets
from mhsft.errors import PREFLIGHT, MhsftError
from mhsft.paths import absolute, unwritable
from mhsft.preflight.hub import endpoint
from mhsft.process import isolated
from mhsft.recipe.argv import looks_local
from mhsft.recipe.hubs import OFFLINE_ENV, hub_ids, hub_name, token_names
from mhsft.recipe.model import Recipe, SlurmSettings

DOWNLOAD_TIMEOUT_S = 48 * 3600.0  # a very large model over a slow line; a stalled one is stopped far sooner
# a download that adds no byte for this long is stopped (the next submit resumes it); generous, because the SDK
# also hashes the files already there without writing (a few seconds per GB) and has its own network timeouts
STALL_S = 600.0
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Download:
    """One hub repository to fetch: for [sft] `key` (model or adapters), into `target`."""

    key: str
    repo_id: str
    hub: str
    revision: str | None
    target: Path


def _target(root: Path, hub: str, repo_id: str, revision: str | None, key: str) -> Path:
    if not REPO_ID.match(repo_id) or ".." in repo_id.split("/"):
        raise MhsftError(
            f"[sft] {key} {repo_id!r} is neither a local path nor a hub id (owner/name), so it cannot be downloaded "
            "before the queue. Give the hub id (e.g. Qwen/Qwen2.5-7B-Instruct) or a local folder (./path)."
        )
    return root / hub / (f"{repo_id}@{revision}" if revision else repo_id)


def planned(recipe: Recipe, settings: SlurmSettings, environment: Environment, cwd: Path) -> list[Download]:
    """What `mhsft submit` downloads here: with offline nodes, the model and each adapter named by hub id."""
    if not settings.offline_nodes:
        return []
    args = recipe.args["sft"]
    hub = hub_name(args, environment.values)
    root = Path(absolute(settings.download_dir, cwd))
    found = []
    model, revision = args.get("model"), args.get("model_revision")
    if isinstance(model, str) and not looks_local(model, cwd):
        found.append(Download("model", model, hub, revision, _target(root, hub, model, revision, "model")))
    adapters = args.get("adapters") or []
    for adapter in adapters if isinstance(adapters, list) else [adapters]:
        if isinstance(adapter, str) and not looks_local(adapter, cwd):
            found.append(Download("adapters", adapter, hub, None, _target(root, hub, adapter, None, "adapters")))
    return found


def localized(recipe: Recipe, downloads: list[Download]) -> Recipe:
    """The recipe naming each downloaded repository by its local folder (its revision is that folder's)."""
    if not downloads:
        return recipe
    paths = {d.repo_id: str(d.target) for d in downloads}

    def local(sft: dict[str, Any]) -> dict[str, Any]:
        out = dict(sft)
        if any(d.key == "model" for d in downloads):
            out["model"] = paths[sft["model"]]
            out.pop("model_revision", None)
        if isinstance(sft.get("adapters"), list):
            out["adapters"] = [paths.get(a, a) if isinstance(a, str) else a for a in sft["adapters"]]
        elif isinstance(sft.get("adapters"), str):
            out["adapters"] = paths.get(sft["adapters"], sft["adapters"])
        return out

    args = recipe.args | {"sft": local(recipe.args["sft"])}
    resolved = recipe.resolved | {"sft": local(recipe.resolved.get("sft", {}))}
    return replace(recipe, args=args, resolved=resolved)


def where_lines(downloads: list[Download]) -> list[tuple[str, str]]:
    return [("downloaded here", f"{d.repo_id} -> {d.target} ({d.hub}, before sbatch)") for d in downloads]


def hub_datasets_need_the_gate(recipe: Recipe, settings: SlurmSettings, cwd: Path, data_check: bool) -> None:
    """With offline nodes a hub dataset reaches the nodes only through the gate's cache: refuse to skip the gate."""
    names = hub_ids({k: recipe.args["sft"].get(k) for k in ("dataset", "val_dataset")}, cwd)
    if settings.offline_nodes and not data_check and names:
        raise MhsftError(
            f"[sft] names the hub dataset {names[0]}, but with [slurm] offline_nodes the nodes cannot download it, "
            "and --no-data-check skips the dataset gate that tokenises it here for them. Drop --no-data-check, or "
            "download the dataset and name its local files."
        )


def _writable(folder: Path) -> None:
    if exc := unwritable(folder, ".mhsft-write-"):
        raise MhsftError(
            f"[slurm] download_dir: {folder} cannot be written here ({exc.strerror or exc}), so the model cannot be "
            "downloaded before the queue. Set [slurm] download_dir to a folder on storage the nodes share and you "
            "can write to."
        )


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class Bar:
    """The progress of one download on stderr: a redrawn bar on a terminal, else a line every quarter."""

    def __init__(self, repo_id: str) -> None:
        self.repo_id, self.quarters = repo_id, 0
        self.tty = sys.stderr.isatty()

    def __call__(self, kind: str, value: Any) -> None:
        if kind != "progress":
            return
        done, of = int(value["done"]), int(value["of"])
        share = min(1.0, done / of) if of else 1.0
        if self.tty:
            bar = "#" * int(share * 30)
            text = f"\r  {self.repo_id} [{bar:<30}] {share:4.0%} {_size(done)} of {_size(of)}"
            sys.stderr.write(ui.clean(ui.printable(text)))
            sys.stderr.flush()
        elif int(share * 4) > self.quarters:
            self.quarters = int(share * 4)
            ui.info(f"  {self.repo_id}: {share:.0%}, {_size(done)} of {_size(of)}")

    def end(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def _child_env(environment: Environment) -> dict[str, str]:
    """The SDK child's environment: no secret (the token travels on stdin) and no offline setting of the user's."""
    return {k: v for k, v in without_secrets(dict(environment.values)).items() if k not in OFFLINE_ENV}


def fetch(downloads: list[Download], environment: Environment) -> None:
    """Download each repository here, with a progress bar; a second call finds them whole and fetches nothing.

    Raises MhsftError: exit 2 when the disk is too small (before any byte), exit 3 when the hub fails."""
    for d in downloads:
        _writable(d.target.parent)
        token = next((environment.get(n) for n in token_names(d.hub, environment.values)), None)
        args = {"hub": d.hub, "repo_id": d.repo_id, "revision": d.revision, "target": str(d.target), "token": token}
        bar, started = Bar(d.repo_id), time.monotonic()
        ui.info(f"downloading {d.repo_id} ({d.hub}) into {d.target}")
        target, env = "mhsft.slurm.hub_download:download", _child_env(environment)
        outcome = isolated.run(target, args, DOWNLOAD_TIMEOUT_S, env, listen=bar, idle=STALL_S)
        bar.end()
        _outcome(d, outcome, environment)
        total, needed = int(outcome.facts["total"]), int(outcome.facts["needed"])
        if unverified := outcome.facts.get("unverified"):
            ui.warn(
                f"{d.repo_id}: the hub's file list could not be read ({unverified}); the complete earlier download "
                f"in {d.target} is used as it is, not compared with the hub."
            )
        if needed:
            ui.info(f"{d.repo_id}: downloaded {_size(needed)} in {time.monotonic() - started:.1f} s")
        else:
            ui.info(f"{d.repo_id}: already here ({outcome.facts['files']} files, {_size(total)}); nothing downloaded")


def _outcome(d: Download, outcome: isolated.Outcome, environment: Environment) -> None:
    """Raise the one-paragraph error for a download that did not finish."""
    checks = outcome.checks
    if checks and checks[-1].status == OK:
        return
    where, variable = endpoint(d.hub, environment), "HF_ENDPOINT" if d.hub == "hf" else "MODELSCOPE_ENDPOINT"
    if checks and checks[-1].name == "disk":
        facts = outcome.facts
        raise MhsftError(
            f"[sft] {d.key} {d.repo_id} needs {_size(int(facts['needed']))} more on the disk of {d.target.parent}, "
            f"which has {_size(int(facts['free']))} free (the hub lists {facts['files']} files, "
            f"{_size(int(facts['total']))}). Nothing was downloaded and nothing queued: free space there, or set "
            "[slurm] download_dir to a shared folder on a larger disk."
        )
    if checks and checks[-1].name == "target disk":
        raise MhsftError(
            f"the download of [sft] {d.key} {d.repo_id} into {d.target} stopped: {checks[-1].detail} (the disk there, "
            "not the hub; a quota counts though the disk shows free space). Nothing was queued; what arrived is "
            "kept and the next `mhsft submit` resumes. Free space there, or set [slurm] download_dir to a shared "
            "folder on a larger disk."
        )
    stalled = isolated.failure(d.repo_id, outcome, DOWNLOAD_TIMEOUT_S, where, "")
    if outcome.stopped:
        detail = f"{where} sent nothing for {STALL_S:g} s during {outcome.step or 'the download'} (stalled)"
    else:
        detail = (checks[-1].detail if checks else None) or (stalled.detail if stalled else "no answer")
    raise MhsftError(
        f"the download of [sft] {d.key} {d.repo_id} from {where} failed before the queue: {detail}. Nothing was "
        f"queued; what arrived is kept in {d.target}, and the next `mhsft submit` resumes there. Check the hub id, "
        f"the network and {variable}, or download the model yourself and name its folder.",
        PREFLIGHT,
    )
