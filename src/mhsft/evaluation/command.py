"""`mhsft eval`: the fine-tuned checkpoint and its base model scored on the same benchmarks with the same
settings (EvalScope against `swift deploy`), one table, the numbers in the training run's record.

A LoRA checkpoint is served once, base and adapter side by side (`swift deploy --adapters finetuned=CKPT`,
`--served_model_name base`); a full fine-tune (or `--two-servers`) gets one server per model, one after the other.
Everything that can fail without a model (EvalScope missing, a benchmark name, a local path, an uncached set
offline, a checkpoint without args.json, an inference backend that does not import) is checked before the first
server starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.environment import Environment, without_secrets
from mhsft.errors import USAGE, MhsftError
from mhsft.evaluation import heldout, reports, tracking
from mhsft.evaluation.benchmarks import Benchmark, evalscope_dir, resolve
from mhsft.evaluation.server import serving
from mhsft.launch import load_recipe
from mhsft.paths import absolute
from mhsft.process.ports import free_port
from mhsft.recipe.hubs import checkpoint_args
from mhsft.recipe.model import Recipe
from mhsft.recipe.plan import Plan, command_plan
from mhsft.recipe.values import check_options
from mhsft.runs import checkpoints, status
from mhsft.runs.records import RunRecord, now
from mhsft.runs.store import scan
from mhsft.trained.backend import ensure
from mhsft.trained.infer import BASE_MODEL_ARGS
from mhsft.trained.target import Target, backend_option, resolve_target
from mhsft.view.benchmarks import table as benchmark_table

# [eval] keys that set the EvalScope side; every other key is a `swift deploy` argument
EVAL_KEYS = (
    "eval_dataset", "eval_limit", "eval_dataset_args", "eval_generation_config", "eval_backend", "eval_num_proc",
    "eval_output_dir", "extra_eval_args", "temperature",
)  # fmt: skip
SWIFT_EVAL_NUM_PROC = 16  # swift eval's default concurrency
SCORE_TIMEOUT_S = 6 * 3600.0
PORT = 8000


@dataclass(frozen=True)
class Request:
    """What the command line asked for (None/empty: the recipe's [eval] or the defaults)."""

    benches: tuple[str, ...] = ()
    limit: int | None = None
    no_base: bool = False
    two_servers: bool = False
    as_json: bool = False
    dry_run: bool = False
    ready_timeout: float = 900.0
    backend: str | None = None  # --backend: the servers' infer_backend instead of [eval]'s


@dataclass
class Server:
    """One `swift deploy`'s arguments and the models (served name -> row name: base | finetuned) scored on it."""

    args: dict[str, Any]
    models: dict[str, str] = field(default_factory=dict)

    def plan(self, target: Target, port: int) -> Plan:
        """The `swift deploy` plan on 127.0.0.1:`port`."""
        # log_level info: the log's "Uvicorn running on URL" line is how mhsft knows the server is its own
        args = {**self.args, "host": "127.0.0.1", "port": port, "verbose": False, "log_interval": -1}
        args["log_level"] = "info"
        return command_plan("deploy", args, target.environment, Path.cwd(), recipe=target.recipe, summary=[])


def target_for(ref: str | None, overrides: list[str], env_file: Path | None, checkpoint: str) -> Target:
    """The checkpoint to score from RECIPE|RUN: a recipe file or built-in name, else a recorded run's id (whose
    recipe, when it can still be loaded, gives the [eval] defaults)."""
    from mhsft.recipe import builtin
    from mhsft.runs.store import find

    if ref is None or Path(ref).is_file() or builtin.path(ref) is not None or ref.endswith(".toml"):
        return resolve_target(ref, overrides, env_file, checkpoint, None)
    try:
        record = find(Path.cwd(), ref)
    except MhsftError as exc:
        raise MhsftError(
            f"{ref}: not a recipe file, a built-in recipe (`mhsft recipes list`) or a recorded run id "
            f"({exc.message.split(': ', 1)[-1]})"
        ) from None
    target = resolve_target(None, [], env_file, checkpoint, record.id)
    if overrides and not record.recipe:
        raise MhsftError(f"--set needs a recipe, and run {record.id} records none; give the recipe instead.")
    recipe = None
    try:
        recipe = load_recipe(record.recipe, overrides, target.environment) if record.recipe else None
    except MhsftError as exc:
        if overrides:
            raise
        ui.warn(f"the run's recipe cannot be loaded ({exc.message}); its [eval] settings are not used.")
    return replace(target, recipe=recipe)


def training_record(target: Target, cwd: Path) -> RunRecord | None:
    """The `mhsft train` record whose run folder holds the checkpoint (given with --run, else found)."""
    if target.record is not None:
        return target.record
    records, _ = scan(cwd)
    folder = target.checkpoint.parent.resolve()
    same = [r for r in records if r.command == "sft" and r.run_dir and Path(r.run_dir).resolve() == folder]
    return same[-1] if same else None


def heldout_files(record: RunRecord | None, checkpoint: Path) -> list[Path]:
    """The run's held-out rows: the recipe's val_dataset, else the rows split off for validation."""
    if record is not None:
        from mhsft.reporting.samples import prompt_files

        try:
            return prompt_files(record, checkpoint.parent, None)[0]
        except MhsftError:
            pass
    saved = checkpoint_args(checkpoint).get("val_dataset") or []
    files = [Path(str(p).rsplit("#", 1)[0]) for p in saved]
    found = [p for p in files if p.is_file()] or [p for p in [checkpoint.parent / "val_dataset.jsonl"] if p.is_file()]
    if not found:
        raise MhsftError(
            f"no benchmark was named and the run of {checkpoint} has no held-out rows (no local val_dataset, no rows "
            "split off with split_dataset_ratio). Name benchmarks with --bench NAME (e.g. --bench gsm8k) or in "
            "[eval] eval_dataset, or train with a val_dataset.",
            USAGE,
        )
    return found


def _servers(target: Target, saved: dict[str, Any], deploy: dict[str, Any], request: Request) -> list[Server]:
    """The deploy plans: one for base + LoRA adapter, else one per model (base first)."""
    base = {k: saved[k] for k in BASE_MODEL_ARGS if saved.get(k) not in (None, "", [])}
    lora = (target.checkpoint / "adapter_config.json").is_file()
    tuned = {"adapters": [str(target.checkpoint)]} if lora else {**base, "model": str(target.checkpoint)}
    if lora and not request.two_servers:
        wanted = [{**base, "adapters": [f"finetuned={target.checkpoint}"], "served_model_name": "base"}]
        names = [{"base": "base", "finetuned": "finetuned"} if not request.no_base else {"finetuned": "finetuned"}]
    else:
        wanted = ([] if request.no_base else [{**base, "served_model_name": "base"}]) + [
            {**tuned, "served_model_name": "finetuned"}
        ]
        names = ([] if request.no_base else [{"base": "base"}]) + [{"finetuned": "finetuned"}]
    servers = [Server({**deploy, **args}, served) for args, served in zip(wanted, names, strict=True)]
    for server in servers:
        server.plan(target, PORT)  # every plan is checked (secrets, sizes) before the first server starts
    return servers


def _score(who: str, served: str, base_url: str, spec: dict[str, Any], out: Path, environment: Environment) -> None:
    """Run EvalScope for one served model in a child process (bounded); its output goes to a log."""
    work = out / who
    body = {**spec, "model": served, "model_id": who, "api_url": base_url, "work_dir": str(work)}
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(out / f"evalscope-{who}.log", "wb") as log:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "mhsft.evaluation.scorer"],
                input=json.dumps(body).encode(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=without_secrets(environment.values),
                timeout=SCORE_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise MhsftError(f"EvalScope ({who}) ran past {SCORE_TIMEOUT_S:g} s; see {log.name}.", 1) from None
    if done.returncode != 0:
        raise MhsftError(
            f"EvalScope ({who}) failed with exit {done.returncode}; its output is in {out / f'evalscope-{who}.log'}.",
            1,
        )
    ui.info(f"  scored {who} in {time.monotonic() - started:.1f} s")


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def evaluate(target: Target, request: Request) -> int:
    """Check everything, deploy, score both models, print the table and record it; returns the exit code."""
    cwd = Path.cwd()
    saved = checkpoint_args(target.checkpoint)
    if not saved.get("model"):
        raise MhsftError(
            f"{target.checkpoint} has no readable args.json naming its base model, so the base model cannot be "
            "evaluated with the same settings. Give a checkpoint folder swift saved (output_dir/vN-.../checkpoint-N).",
            USAGE,
        )
    defaults = target.defaults("eval")
    deploy = {k: v for k, v in defaults.items() if k not in EVAL_KEYS}
    chosen = backend_option(request.backend, deploy.get("infer_backend"))
    deploy |= check_options("deploy", {"infer_backend": ("--backend", chosen)})
    record = training_record(target, cwd)
    dataset_args: dict[str, Any] = dict(defaults.get("eval_dataset_args") or {})
    wanted = list(request.benches) or list(defaults.get("eval_dataset") or [])
    where = "--bench" if request.benches else "[eval] eval_dataset"
    folder = defaults.get("eval_output_dir")
    out = Path(absolute(str(folder), cwd)) if folder else target.checkpoint.parent / "eval"
    out = out / f"{target.checkpoint.name}-{_stamp()}"
    held = None
    if wanted:
        benches = resolve(wanted, dataset_args, target.environment, cwd, where)
    else:
        evalscope_dir()
        held = heldout.collect(heldout_files(record, target.checkpoint), saved.get("system"))
        dataset_args |= heldout.dataset_args(out / "heldout")
        benches = [Benchmark(heldout.NAME, local_path=str(out / "heldout"))]
    spec = {
        "datasets": [b.name for b in benches],
        "dataset_args": dataset_args,
        "limit": request.limit or defaults.get("eval_limit"),
        "generation_config": {"temperature": defaults.get("temperature", 0.0)}
        | dict(defaults.get("eval_generation_config") or {}),
        "eval_batch_size": defaults.get("eval_num_proc", SWIFT_EVAL_NUM_PROC),
        "extra": dict(defaults.get("extra_eval_args") or {}),
    }
    servers = _servers(target, saved, deploy, request)
    if not request.dry_run:
        ensure(deploy.get("infer_backend"), target.environment, "--backend")  # in a child, before any model loads
    _describe(target, benches, spec, servers, out, held)
    if request.dry_run:
        for server in servers:
            ui.echo(server.plan(target, PORT).shell_line())
        return 0
    if held is not None:
        heldout.write(held, out / "heldout")
    started = time.monotonic()
    for i, server in enumerate(servers, 1):
        ui.info(f"server {i}/{len(servers)}: swift deploy serving {', '.join(server.models)} ...")
        port = free_port(PORT)  # picked as it starts: the previous server's port may not be free again yet
        planned, log = f"http://127.0.0.1:{port}/v1", out / f"deploy-{i}.log"
        plan = server.plan(target, port)
        started_server = serving(plan, target.environment, planned, list(server.models), request.ready_timeout, log)
        with started_server as url, ThreadPoolExecutor(len(server.models)) as pool:  # its models scored at once
            jobs = [pool.submit(_score, who, served, url, spec, out, target.environment) for served, who in
                    server.models.items()]  # fmt: skip
            for job in jobs:
                job.result()
    names = spec["datasets"]
    tuned = reports.read(out / "finetuned", "finetuned", names)
    base = None if request.no_base else reports.read(out / "base", "base", names)
    result = {
        "evaluated_at": now(),
        "checkpoint": str(target.checkpoint),
        "benchmarks": reports.rows(tuned, base),
        "settings": {k: spec[k] for k in ("limit", "generation_config", "eval_batch_size")} | {"deploy": deploy},
        "servers": len(servers),
        "duration_s": round(time.monotonic() - started, 1),
        "output_dir": str(out),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    _print(result, request.as_json, record)
    if record is not None:
        record.extra["eval"] = result
        record.try_save()
        tracking.log(record, target.environment, result["benchmarks"])
    return 0


def _describe(
    target: Target, benches: list[Benchmark], spec: dict[str, Any], servers: list[Server], out: Path, rows: Any
) -> None:
    where = {b.name: b.local_path or f"{b.dataset_id} ({'cached' if b.cached else 'to download'})" for b in benches}
    ui.pairs(
        [
            ("checkpoint", str(target.checkpoint)),
            *((f"benchmark {k}", v) for k, v in where.items()),
            *([("held-out rows", str(len(rows)))] if rows is not None else []),
            ("limit", str(spec["limit"] or "all")),
            ("generation", json.dumps(spec["generation_config"])),
            ("servers", f"{len(servers)} ({' then '.join('+'.join(s.models.values()) for s in servers)})"),
            ("output", str(out)),
        ]
    )


def _print(result: dict[str, Any], as_json: bool, record: RunRecord | None) -> None:
    if as_json:
        ui.echo(json.dumps({"schema_version": 1, **result}, indent=2))
        return
    header, cells = benchmark_table(result["benchmarks"])
    ui.table("Benchmarks: base vs fine-tuned", header, cells)
    where = f"record {record.path.relative_to(record.cwd)} (extra.eval)" if record else "no training record found"
    ui.info(f"EvalScope's reports: {result['output_dir']}; {where}")


def after_training(recipe: Recipe, environment: Environment) -> Callable[[RunRecord], None]:
    """`[eval] after_train`: score the newest checkpoint of a training that succeeded. A failed evaluation is
    reported and recorded (`extra.eval_error`), never turned into a failed training."""

    def run(record: RunRecord) -> None:
        if record.status != status.SUCCEEDED:
            return
        ui.info(f"run {record.id}: [eval] after_train: evaluating the newest checkpoint")
        try:
            checkpoint = checkpoints.resolve("latest", Path.cwd(), record)
            evaluate(Target(environment, recipe, checkpoint, record), Request())
        except Exception as exc:  # whatever went wrong, the training itself succeeded
            message = exc.message if isinstance(exc, MhsftError) else f"{type(exc).__name__}: {exc}"
            ui.warn(f"the evaluation after training failed: {message} The training succeeded; retry with "
                    f"`mhsft eval {record.id}`.")  # fmt: skip
            record.extra["eval_error"] = message
            record.try_save()

    return run
