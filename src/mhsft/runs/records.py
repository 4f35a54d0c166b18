"""Run records: one JSON file per swift run mhsft started, in `.mhsft/runs/`, written atomically, read defensively."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import socket
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mhsft import __version__, ui
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.process.runner import Outcome
from mhsft.recipe.plan import Plan
from mhsft.runs import fields, status
from mhsft.runs.slurm_part import SlurmPart

RUNS_DIR = Path(".mhsft") / "runs"
MAX_RECORD_BYTES = 1 << 20
_VERSION_DIR = re.compile(r"^v(\d+)-\d{8}-\d{6}$")
_SWIFT_VERSION = re.compile(r"^v(\d+)")  # how swift 4.6 numbers the next folder (any name starting vN counts)
_LOCK = ".mhsft-version.lock"


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
    if not os.path.isdir(output_dir):  # also False for a path that cannot exist (NUL, too long)
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := _VERSION_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def reserve_version_dir(output_dir: Path) -> Path:
    """Create the next `vN-YYYYMMDD-HHMMSS` folder of `output_dir`, numbered as swift 4.6 numbers them.

    A lock on `output_dir/.mhsft-version.lock` makes overlapping runs take different N.
    """
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with open(output_dir / _LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            taken = [int(m.group(1)) for name in os.listdir(output_dir) if (m := _SWIFT_VERSION.match(name))]
            folder = output_dir / f"v{max(taken, default=-1) + 1}-{datetime.now():%Y%m%d-%H%M%S}"
            folder.mkdir()
            return folder
    except OSError as exc:
        raise MhsftError(
            f"cannot create a run folder in [sft] output_dir {output_dir} ({exc.strerror or exc}). Point "
            "output_dir at a writable folder."
        ) from None


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, Linux), to tell it from a later one with its pid.

    None when there is no such process (a zombie counts as gone) or /proc cannot tell.
    """
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if after_name[0] == "Z" else int(after_name[19])  # fields 3 (state) and 22 (starttime)


@dataclass
class RunRecord:
    """What mhsft ran and how it ended. Holds no secret value: argv and env are redacted.

    Fields this version does not know (a newer mhsft's) are kept in `unknown` and written back on save. A Slurm
    run's part is `slurm` (`extra["slurm"]`); its status follows from Slurm's state.
    """

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
    status: str = status.RUNNING
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
    supervisor_pid: int | None = None  # the mhsft process that started swift and keeps this record
    supervisor_host: str | None = None
    supervisor_start: int | None = None  # see process_start
    unknown: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.status = status.read(self.status)
        if self.slurm is not None and self.slurm.state is not None:
            self.status = status.of_slurm(self.slurm.state)

    @property
    def slurm(self) -> SlurmPart | None:
        """A Slurm run's part (`extra["slurm"]`, typed on first use); None for a local run."""
        part = self.extra.get("slurm")
        if isinstance(part, dict):
            part = self.extra["slurm"] = SlurmPart.from_json(part)
        return part if isinstance(part, SlurmPart) else None

    @slurm.setter
    def slurm(self, part: SlurmPart) -> None:
        self.extra["slurm"] = part

    def set_slurm_state(self, state: str) -> None:
        """Record Slurm's word for the job; the run's status follows from it."""
        assert self.slurm is not None, "a local run has no Slurm state"
        self.slurm.state = state
        self.status = status.of_slurm(state)

    @property
    def path(self) -> Path:
        return Path(self.cwd) / RUNS_DIR / f"{self.id}.json"

    @property
    def shown_status(self) -> str:
        """The status, except `abandoned` for a `running` record whose mhsft process (on this host) is gone.

        A Slurm run has no such process (Slurm supervises it; its state comes from the job and squeue)."""
        if self.status != status.RUNNING or self.supervisor_pid is None or self.supervisor_host != socket.gethostname():
            return self.status
        if self.slurm is not None:
            return self.status
        started = process_start(self.supervisor_pid)
        gone = started is None or (self.supervisor_start is not None and started != self.supervisor_start)
        return status.ABANDONED if gone and os.path.isdir("/proc/self") else self.status

    def save(self) -> None:
        """Write the record atomically (a temp file renamed over the old one); MhsftError when it cannot be."""
        data = asdict(self)
        if self.slurm is not None:
            data["extra"]["slurm"] = self.slurm.to_json()
        data = {**data.pop("unknown"), **data}
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
                f.write("\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise MhsftError(
                f"cannot write the run record {self.path} ({exc.strerror or exc}). Make "
                f"{self.path.parent} a writable folder with free space."
            ) from None

    def try_save(self) -> bool:
        """Save, or warn (once swift runs, a record that cannot be written must not stop its supervision)."""
        try:
            self.save()
        except MhsftError as exc:
            ui.warn(f"{exc.message} swift is still supervised; its exit code is kept.")
            return False
        return True


@dataclass(frozen=True)
class BadRecord:
    """A file in `.mhsft/runs/` that is not a usable record, and why."""

    path: Path
    reason: str

    @property
    def id(self) -> str:
        return self.path.stem


def new_record(plan: Plan, environment: Environment, cwd: Path, recipe: Any = None, **extra: Any) -> RunRecord:
    """A `running` record for a plan about to start, naming this mhsft process as its supervisor."""
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
        supervisor_pid=os.getpid(),
        supervisor_host=socket.gethostname(),
        supervisor_start=process_start(os.getpid()),
        **extra,
    )


def finish(record: RunRecord, outcome: Outcome, started: float, ended: float, before: set[Path]) -> None:
    """Fill in how the run ended and, unless mhsft chose it, the versioned folder swift created; then save.

    A record that cannot be written is a warning: the caller still returns swift's exit code.
    """
    record.status = status.of_exit(outcome.exit_code, outcome.signal)
    record.exit_code = outcome.exit_code
    record.ended_at = now()
    record.duration_s = round(ended - started, 3)
    if record.run_dir is None and record.output_dir and record.command == "sft":
        created = [p for p in version_dirs(Path(record.output_dir)) if p not in before]
        if created:
            record.run_dir = str(created[-1])
    record.try_save()


def read_record(path: Path) -> RunRecord:
    """One record file; ValueError saying why it is not a usable record (never hangs on a FIFO or a huge file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ValueError("not a regular file")
            raw = f.read(MAX_RECORD_BYTES + 1)
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    if len(raw) > MAX_RECORD_BYTES:
        raise ValueError(f"larger than {MAX_RECORD_BYTES // 1024} KiB")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {str(exc)[:100]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {fields.type_name(data)}, not an object")
    known, unknown = fields.split(RunRecord, data)
    if known["id"] != path.stem:
        raise ValueError(f"its id {known['id'][:80]!r} is not its file name")
    return RunRecord(**known, unknown=unknown)
