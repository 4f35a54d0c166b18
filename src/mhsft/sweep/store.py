"""A sweep's state: `.mhsft/sweeps/<ID>/sweep.json` (settings, checks' results, trials and their values) and,
for random/tpe, Optuna's journal `journal.log` beside it. Written atomically; holds no secret value."""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mhsft.errors import MhsftError
from mhsft.runs.records import process_start
from mhsft.sweep.space import Range, Space

SWEEPS_DIR = Path(".mhsft") / "sweeps"
SCHEMA_VERSION = 1
TRIAL_RUNNER = "mhsft.sweep.trial"  # python -m TRIAL_RUNNER ID N (or ID --array on Slurm)


@dataclass
class Trial:
    """One trial: its number, the values it sets, its name, and which gate result it trains from."""

    number: int
    values: dict[str, Any]
    name: str
    gate: str
    optuna: int | None = None


@dataclass
class Sweep:
    """What `mhsft sweep` decided and checked; a trial's outcome is in its run record (`extra.sweep`)."""

    id: str
    recipe: str
    overrides: list[str]
    env_file: str | None
    method: str
    metric: str
    direction: str
    planned: int
    parallel: int
    seed: int
    space: dict[str, Any]
    created_at: str
    found: dict[str, str] = field(default_factory=dict)  # what the SwanLab preflight found (user, workspace)
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)  # signature -> cached args and record extra
    trials: list[Trial] = field(default_factory=list)
    status: str = "running"
    data_check: bool = True
    jobs: list[str] = field(default_factory=list)  # Slurm job arrays (mhsft sweep --slurm)
    supervisor: list[Any] | None = None  # [host, pid, start] of the mhsft process running the trials
    schema_version: int = SCHEMA_VERSION

    def supervise(self) -> None:
        """Name this process as the one running the trials."""
        self.supervisor = [socket.gethostname(), os.getpid(), process_start(os.getpid())]

    def supervised(self) -> bool:
        """Whether the process running the trials is still alive (on this host; elsewhere: unknown, False)."""
        if not self.supervisor or self.supervisor[0] != socket.gethostname():
            return False
        _, pid, start = self.supervisor
        started = process_start(pid)
        return started is not None and started == start

    @staticmethod
    def folder_of(cwd: Path, sweep_id: str) -> Path:
        return cwd / SWEEPS_DIR / sweep_id

    def folder(self, cwd: Path) -> Path:
        return self.folder_of(cwd, self.id)

    def journal(self, cwd: Path) -> Path:
        return self.folder(cwd) / "journal.log"

    def save(self, cwd: Path) -> None:
        """Write sweep.json atomically."""
        folder = self.folder(cwd)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(asdict(self), f, indent=1)
            os.replace(tmp, folder / "sweep.json")
        except OSError as exc:
            raise MhsftError(
                f"cannot write {folder / 'sweep.json'} ({exc.strerror or exc}). Free some space."
            ) from None


def new_id() -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S}-sweep-{secrets.token_hex(2)}"


def space_of(space: Space) -> dict[str, Any]:
    """The space as JSON."""
    ranges = {k: [r.low, r.high, r.log] for k, r in space.ranges.items()}
    return {"grid": space.grid, "zip": space.zip, "range": ranges}


def space_from(data: dict[str, Any]) -> Space:
    return Space(data["grid"], data["zip"], {k: Range(*v) for k, v in data["range"].items()})


def load(cwd: Path, sweep_id: str | None) -> Sweep:
    """The sweep `sweep_id` (an id or unique prefix), or the newest one."""
    root = cwd / SWEEPS_DIR
    ids = sorted(p.name for p in root.iterdir() if (p / "sweep.json").is_file()) if root.is_dir() else []
    if not ids:
        raise MhsftError(f"no sweep is recorded in {root}. Start one with `mhsft sweep RECIPE --grid ...`.")
    matches = ids[-1:] if sweep_id is None else [i for i in ids if i == sweep_id or i.startswith(sweep_id)]
    if len(matches) != 1:
        what = "matches several sweeps" if matches else "matches no sweep"
        raise MhsftError(f"sweep {sweep_id}: {what} in {root} (latest: {', '.join(ids[-3:])}).")
    path = root / matches[0] / "sweep.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["trials"] = [Trial(**t) for t in data["trials"]]
        return Sweep(**data)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise MhsftError(f"{path} cannot be read ({exc}). It is not a sweep mhsft wrote; remove that folder.") from None
