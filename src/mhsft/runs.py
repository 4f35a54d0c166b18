"""Run records: one JSON file per mhsft-launched swift run under `.mhsft/runs/`, written atomically."""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mhsft import __version__
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.plan import Plan
from mhsft.runner import Outcome

RUNS_DIR = Path(".mhsft") / "runs"
_VERSION_DIR = re.compile(r"^v(\d+)-\d{8}-\d{6}$")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def package_version(name: str) -> str | None:
    """An installed distribution's version, read from metadata (no import)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def version_dirs(output_dir: Path) -> list[Path]:
    """`vN-YYYYMMDD-HHMMSS` folders in a swift output_dir, oldest first by N (not mtime)."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := _VERSION_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


@dataclass
class RunRecord:
    """What mhsft ran and how it ended. Holds no secret value: argv and env are redacted."""

    id: str
    command: str
    recipe: str | None
    recipe_name: str | None
    recipe_sha256: str | None
    argv: list[str]
    env: dict[str, str]
    secrets: list[str]
    cwd: str
    versions: dict[str, str | None]
    started_at: str
    status: str = "running"
    ended_at: str | None = None
    duration_s: float | None = None
    exit_code: int | None = None
    pid: int | None = None
    output_dir: str | None = None
    run_dir: str | None = None
    checkpoint: str | None = None
    swanlab_run_id: str | None = None
    resumed_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.cwd) / RUNS_DIR / f"{self.id}.json"

    def save(self) -> None:
        """Write the record atomically (a temp file renamed over the old one)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(asdict(self), f, indent=2)
                f.write("\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            raise MhsftError(
                f"cannot write the run record {self.path} ({exc.strerror or exc}). Make "
                f"{self.path.parent} a writable folder."
            ) from None


def new_record(plan: Plan, environment: Environment, cwd: Path, recipe: Any = None, **extra: Any) -> RunRecord:
    """A `running` record for a plan about to start."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return RunRecord(
        id=f"{stamp}-{plan.command}-{secrets.token_hex(2)}",
        command=plan.command,
        recipe=str(recipe.path) if recipe else None,
        recipe_name=recipe.name if recipe else None,
        recipe_sha256=recipe.sha256 if recipe else None,
        argv=[environment.redact(t) for t in plan.argv],
        env={k: environment.redact(v) for k, v in plan.env.items()},
        secrets=list(plan.secrets),
        cwd=str(cwd),
        versions={
            "mhsft": __version__,
            "ms-swift": package_version("ms-swift"),
            "torch": package_version("torch"),
            "swanlab": package_version("swanlab"),
        },
        started_at=now(),
        output_dir=str(plan.output_dir) if plan.output_dir else None,
        **extra,
    )


def finish(record: RunRecord, outcome: Outcome, started: float, ended: float, before: set[Path]) -> None:
    """Fill in how the run ended and the versioned output folder swift created, then save."""
    record.status = outcome.status
    record.exit_code = outcome.exit_code
    record.ended_at = now()
    record.duration_s = round(ended - started, 3)
    if record.output_dir and record.command == "sft":
        created = [p for p in version_dirs(Path(record.output_dir)) if p not in before]
        if created:
            record.run_dir = str(created[-1])
    record.save()


def load_all(cwd: Path) -> list[RunRecord]:
    """Every readable record in `cwd`, oldest first."""
    folder = cwd / RUNS_DIR
    records = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(RunRecord(**json.loads(p.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError):
            continue
    records.sort(key=lambda r: r.started_at)
    if any(r.status in ("queued", "running") and "slurm" in r.extra for r in records):
        from mhsft.slurm.jobs import refresh  # a Slurm run's state is refreshed whenever it is read

        refresh(records)
    return records


def find(cwd: Path, run_id: str) -> RunRecord:
    """The record with id (or unique id prefix) `run_id`."""
    matches = [r for r in load_all(cwd) if r.id == run_id or r.id.startswith(run_id)]
    if len(matches) != 1:
        known = ", ".join(r.id for r in load_all(cwd)[-5:]) or "none"
        what = "matches several runs" if matches else "matches no run"
        raise MhsftError(f"--run {run_id}: {what} in {cwd / RUNS_DIR} (latest: {known}). `mhsft runs` lists them.")
    return matches[0]
