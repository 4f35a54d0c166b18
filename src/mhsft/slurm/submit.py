"""`mhsft submit`: check everything on the submitting machine, then queue the run with `sbatch --parsable`.

The recipe is frozen (fully resolved) next to the batch script under `.mhsft/slurm/`, so the job runs what
was checked even if the recipe file changes while it waits in the queue.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.datagate.gate import training_args
from mhsft.datagate.report import summary
from mhsft.environment import Environment, without_secrets
from mhsft.errors import MhsftError
from mhsft.launch import environment_for, load_recipe
from mhsft.process import slurm as client
from mhsft.recipe import toml_out as tomlout
from mhsft.recipe.model import Recipe, SlurmSettings
from mhsft.recipe.plan import Plan, train_plan
from mhsft.runs import status, store
from mhsft.runs.records import RunRecord, new_record, version_dirs
from mhsft.runs.slurm_part import SlurmPart
from mhsft.slurm import download, script
from mhsft.sync import follower
from mhsft.train.before_start import GATE_LINE, checks_before_start, new_swanlab_run_id
from mhsft.view.links import for_record

SLURM_DIR = Path(".mhsft") / "slurm"
NODE_SET = ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")  # the node runner sets these from Slurm's


def _settings(recipe: Recipe) -> SlurmSettings:
    settings = recipe.slurm or SlurmSettings(job_name=recipe.name)
    fixed = [var for var in NODE_SET if var in recipe.launch_env]
    if fixed:
        raise MhsftError(
            f"{recipe.path}, [launch]: {', '.join(fixed)} are set, but on Slurm each node's runner sets them from "
            "the job (SLURM_NNODES, SLURM_NODEID, the first host of the node list, the job id). Remove nnodes, "
            "node_rank, master_addr and master_port from [launch]; use [slurm] nodes."
        )
    return settings


def frozen_recipe(recipe: Recipe) -> str:
    """The resolved recipe as TOML, with `$` written `$$` so that loading it again changes nothing."""

    def escape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: escape(v) for k, v in value.items()}
        if isinstance(value, list):
            return [escape(v) for v in value]
        return value.replace("$", "$$") if isinstance(value, str) else value

    return f"# {recipe.path} as `mhsft submit` resolved it\n" + tomlout.dumps(escape(recipe.resolved))


def secrets_reach_the_job(plan: Plan, recipe: Recipe, environment: Environment) -> None:
    """The job reads secrets from .env only: one that is only in this shell's environment will be missing."""
    shell_only = [n for n in plan.secrets if environment.source(n) == "environment"]
    if recipe.swanlab.mode == "cloud" and environment.source("SWANLAB_API_KEY") == "environment":
        raise MhsftError(
            "SWANLAB_API_KEY is set in your shell, not in .env. mhsft never passes secrets through Slurm (it "
            "stores a job's environment), so the job's nodes read them from .env in the working directory (with "
            "[slurm] offline_nodes, so does the detached follower that uploads from here): put SWANLAB_API_KEY=... in "
            ".env (chmod 600) or pass --env-file PATH, then submit again."
        )
    for name in shell_only:
        ui.warn(f"{name} is set in your shell, not in .env: the job will not have it (nodes read .env only).")


def node_recipe(recipe: Recipe, settings: SlurmSettings) -> Recipe:
    """The recipe as the nodes run it: with `offline_nodes`, a cloud recipe tracks in offline mode there (the
    follower uploads from here); otherwise the recipe itself."""
    if not settings.offline_nodes or recipe.swanlab.mode != "cloud":
        return recipe
    resolved = {**recipe.resolved, "swanlab": {**recipe.resolved.get("swanlab", {}), "mode": "offline"}}
    return replace(recipe, swanlab=replace(recipe.swanlab, mode="offline"), resolved=resolved)


def where_lines(nodes: Recipe, plan: Plan) -> list[tuple[str, str]]:
    """What happens where, for the plan: the node check, and (offline tracking) where the upload happens."""
    checked = ["shared folders writable", "local inputs visible"]
    if nodes.swanlab.mode == "cloud":
        checked.append("SwanLab host reachable")
    checked += [f"{hub} reachable" for hub in plan.hubs]
    lines = [("node check", f"on each node before swift starts: {', '.join(checked)}")]
    if nodes.swanlab.mode == "offline":
        log_dir = dict(plan.env).get("SWANLAB_LOG_DIR", "swanlog")
        lines.append(
            (
                "tracking",
                f"locally on the nodes ({log_dir}); uploaded from here by a follower every "
                f"{follower.INTERVAL_S:g} s and at the end (`mhsft sync` catches up)",
            )
        )
    return lines


def sbatch_env() -> dict[str, str]:
    """sbatch's environment (the job inherits it): this one without any secret-named variable."""
    return without_secrets(dict(os.environ))


def submit(
    ref: str,
    overrides: list[str],
    env_file: Path | None,
    *,
    nodes: int | None = None,
    dry_run: bool = False,
    check: bool = True,
    timeout: float = 5.0,
    data_check: bool = True,
) -> int:
    """Everything `mhsft submit` does; returns the exit code."""
    cwd = Path.cwd()
    environment = environment_for(env_file)
    recipe = load_recipe(ref, [*overrides, *([f"slurm.nodes={nodes}"] if nodes else [])], environment)
    settings = _settings(recipe)
    downloads = download.planned(recipe, settings, environment, cwd)
    download.hub_datasets_need_the_gate(recipe, settings, cwd, data_check)
    local = download.localized(recipe, downloads)  # as the nodes see it: downloaded repositories by their folder
    nodes_run = node_recipe(local, settings)
    run_id = new_swanlab_run_id()
    plan = train_plan(nodes_run, environment, cwd, run_id=run_id)
    fetched = {str(d.target) for d in downloads}
    plan_here = replace(plan, inputs=tuple(p for p in plan.inputs if p not in fetched))  # not downloaded yet
    record = new_record(plan, environment, cwd, recipe, swanlab_run_id=run_id)
    batch = cwd / SLURM_DIR / f"{record.id}.sbatch"
    text = script.batch_script(settings, record.id, sys.executable, cwd, ref, plan.shell_line())
    processes = settings.gpus_per_node or int(recipe.launch_env.get("NPROC_PER_NODE", "1"))
    gate = [GATE_LINE] if data_check else []
    ui.pairs(
        [
            *plan.summary,
            *gate,
            ("Slurm", f"{settings.nodes} node(s) x {processes} process(es), job {settings.job_name}"),
            *download.where_lines(downloads),
            *where_lines(nodes_run, plan),
        ]
    )
    if dry_run:
        for path in plan_here.missing_inputs():
            ui.warn(f"{path} does not exist; the job would fail on it.")
        ui.echo(text)
        ui.echo(f"sbatch --parsable {shlex.quote(str(batch.relative_to(cwd)))}  # secret variables removed")
        return 0
    client.tool("sbatch")
    secrets_reach_the_job(plan, recipe, environment)
    job = recipe.launch_env | {"NNODES": str(settings.nodes), "NPROC_PER_NODE": str(processes)}  # as node.py sets
    found, report = checks_before_start(
        plan_here,
        local,
        environment,
        check=check,
        timeout=timeout,
        data_check=data_check,
        launch_env=job,
        before_gate=lambda: download.fetch(downloads, environment),
    )
    record.extra |= for_record(recipe, environment, found, run_id)
    if nodes_run.swanlab.mode == "offline":
        record.extra["swanlab_offline"] = True
    if downloads:
        record.extra["downloaded"] = {d.repo_id: str(d.target) for d in downloads}
    frozen = batch.with_suffix(".toml")
    record.slurm = SlurmPart(
        job_name=settings.job_name,
        output=settings.output,
        nodes_requested=settings.nodes,
        gpus_per_node=settings.gpus_per_node,
        requeue=settings.requeue,
        script=str(batch),
        recipe=str(frozen),
        env_file=str(Path(env_file).absolute()) if env_file else None,
        preexisting=[p.name for p in version_dirs(plan.output_dir)],  # type: ignore[arg-type]
        cached=training_args(report) if report else None,  # the nodes train from the gate's cached dataset
    )
    record.set_slurm_state(status.SUBMITTING)
    if report:
        record.extra["data_check"] = summary(report)
    batch.parent.mkdir(parents=True, exist_ok=True)
    frozen.write_text(frozen_recipe(nodes_run), encoding="utf-8")
    batch.write_text(text, encoding="utf-8")
    if "%" not in str(Path(settings.output).parent):
        (cwd / Path(settings.output).parent).mkdir(parents=True, exist_ok=True)  # Slurm does not create it
    record.save()  # before sbatch: a job that starts at once finds its record
    try:
        job_id = client.submit(batch, sbatch_env(), cwd)
    except MhsftError:
        for path in (record.path, batch, frozen):
            path.unlink(missing_ok=True)
        raise

    def queued(found: RunRecord) -> bool:  # the job may have started (and written) already
        if found.slurm.state == status.SUBMITTING:  # type: ignore[union-attr]
            found.set_slurm_state("PENDING")
        found.slurm.job_id = job_id  # type: ignore[union-attr]
        if nodes_run.swanlab.mode == "offline":
            found.extra["swanlab_follower"] = follower.start(found, env_file)
        return True

    record = store.update(record.path, queued)
    ui.info(f"run {record.id}: queued as Slurm job {job_id} (record: {record.path.relative_to(cwd)})")
    ui.info(f"follow it with `mhsft logs {record.id} -f`; stop it with `mhsft cancel {record.id}`")
    return 0
