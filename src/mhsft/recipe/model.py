"""The validated recipe: `Recipe` and the types of its settings sections."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from mhsft.paths import absolute

SLURM_OUTPUT_DEFAULT = ".mhsft/slurm/%x-%j.out"
DOWNLOAD_DIR_DEFAULT = ".mhsft/hub-cache"


@dataclass(frozen=True)
class SwanlabSettings:
    """The [swanlab] table after validation."""

    project: str
    mode: str
    exp_name: str
    workspace: str | None = None
    api_host: str | None = None
    web_host: str | None = None
    log_dir: str | None = None
    notification_method: str | None = None
    webhook_url: str | None = None


@dataclass(frozen=True)
class DataBudget:
    """The [data_check] table: the largest shares (0..1) of rows the dataset gate lets go or be cut, and the
    processes its export tokenises with (None: every core, see datagate.spec.processes)."""

    max_dropped: float = 0.0
    max_truncated: float = 1.0
    num_proc: int | None = None


DATA_CHECK_KEYS = {"max_dropped": "dropped", "max_truncated": "truncated", "num_proc": ""}


@dataclass(frozen=True)
class SlurmSettings:
    """The [slurm] table after validation (see `mhsft submit`)."""

    job_name: str
    nodes: int = 1
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    partition: str | None = None
    mem: str | None = None
    time: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    output: str = SLURM_OUTPUT_DEFAULT
    requeue: bool = False
    offline_nodes: bool = False  # the nodes have no internet: SwanLab tracks locally there, uploaded from here
    download_dir: str = DOWNLOAD_DIR_DEFAULT  # with offline_nodes, where hub models are downloaded before the queue
    sbatch_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: swift arguments per command, SwanLab settings, launch and child environment."""

    name: str
    description: str
    path: Path
    chain: tuple[Path, ...]
    swanlab: SwanlabSettings
    launch_env: dict[str, str]
    env: dict[str, str]
    args: dict[str, dict[str, Any]]
    warnings: tuple[str, ...]
    resolved: dict[str, Any]
    data_check: DataBudget = DataBudget()
    slurm: SlurmSettings | None = None
    eval_after_train: bool = False  # [eval] after_train: `mhsft train` runs `mhsft eval` when training succeeded

    def output_dir(self, cwd: Path) -> Path:
        """The absolute [sft] output_dir (swift's default `output`), a relative one taken from `cwd`."""
        return Path(absolute(str(self.args["sft"].get("output_dir", "output")), cwd))

    @cached_property
    def sha256(self) -> str:
        """The hash of the resolved recipe, recorded with every run (hashlib loads OpenSSL: only when needed)."""
        import hashlib

        return hashlib.sha256(json.dumps(self.resolved, sort_keys=True, default=str).encode()).hexdigest()
