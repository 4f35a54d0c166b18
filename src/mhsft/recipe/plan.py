"""A `Plan`: the exact swift command, the environment it gets, and how to show it without secrets."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mhsft.environment import Environment, can_be_secret, spellings, without_secrets
from mhsft.errors import MhsftError
from mhsft.paths import absolute, exists
from mhsft.recipe.argv import argv_for, local_paths, localize
from mhsft.recipe.hubs import checkpoint_args, hub_ids, hub_name, offline_env, token_names
from mhsft.recipe.model import Recipe

SWIFT_DEFAULT_REPORTERS = ("tensorboard",)  # ms-swift 4.6 TrainingArguments.report_to
CACHED_REPLACES = ("dataset", "val_dataset", "split_dataset_ratio")  # what a cached dataset stands in for
MODES = {"cloud": "cloud", "local": "local", "offline": "offline: tracked locally, uploaded with `mhsft sync`"}


@dataclass(frozen=True)
class Plan:
    """What mhsft will start: `argv`, the variables it sets on top of the environment, and a summary.

    `secrets` names the only secret variables the child gets; `hubs` are the hubs whose tokens are among them.
    """

    command: str
    argv: list[str]
    env: dict[str, str]
    secrets: tuple[str, ...]
    summary: list[tuple[str, str]] = field(default_factory=list)
    output_dir: Path | None = None
    inputs: tuple[str, ...] = ()
    hubs: tuple[str, ...] = ()

    def child_env(self, environment: Environment) -> dict[str, str]:
        """The child's full environment: the real one, `.env` beneath it, mhsft's variables on top, and of the
        secret-named variables only those in `secrets` (a custom token or DB_PASSWORD never reaches swift); no
        SWANLAB_PROJECT-style plain string (swanlab fails on it; [swanlab] gives the project)."""
        kept = without_secrets(dict(environment.values)) | {k: environment.values[k] for k in self.secrets}
        return {**kept, **self.env}

    def missing_inputs(self) -> list[str]:
        """Local input paths (model dir, dataset files, adapters) that do not exist."""
        return [p for p in self.inputs if not exists(p)]

    def shell_line(self) -> str:
        """A paste-able shell command: variables first, secrets as `"$NAME"` references, one flag a line."""
        prefix = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()]
        prefix += [f'{name}="${name}"' for name in self.secrets]
        first_flag = next((i for i, tok in enumerate(self.argv) if tok.startswith("--")), len(self.argv))
        lines = [" ".join([*prefix, *map(shlex.quote, self.argv[:first_flag])])]
        for tok in self.argv[first_flag:]:
            if tok.startswith("--"):
                lines.append(tok)
            else:
                lines[-1] += " " + shlex.quote(tok)
        return " \\\n  ".join(lines)


def hub_access(args: dict[str, Any], environment: Environment, cwd: Path) -> tuple[str | None, dict[str, str]]:
    """(the hub whose token the child gets, or None; extra variables). A run that names no hub id gets no
    token and the hubs' offline settings; one that does gets that hub's token when it is set."""
    if not hub_ids(args, cwd):
        return None, offline_env(environment.values)
    hub = hub_name(args, environment.values)
    return (hub if token_names(hub, environment.values) else None), {}


def hub_secrets(hub: str | None, environment: Environment) -> list[str]:
    """The token variables passed for `hub` (none when no hub is used)."""
    return list(token_names(hub, environment.values)) if hub else []


def ensure_no_secret_on_argv(argv: list[str], env: dict[str, str], environment: Environment) -> None:
    """Refuse to start a command whose argv or extra variables would carry a secret's value."""
    for name, value in environment.secrets.items():
        if not can_be_secret(value):  # too short or plain to tell from an ordinary word such as "train"
            continue
        places = [*argv, *(v for k, v in env.items() if k != name)]
        if any(form in place for form in spellings(value) for place in places):
            raise MhsftError(
                f"the value of {name} would appear on swift's command line or in another variable. "
                "Secrets reach swift only through their own environment variable: take that value "
                "out of the recipe."
            )


def ensure_fits(argv: list[str], env: dict[str, str], environment: Environment) -> None:
    """Refuse a command whose arguments and environment together exceed what Linux passes to a new program."""
    child = {**environment.values, **env}
    strings = [*argv, *(f"{k}={v}" for k, v in child.items())]
    size = sum(len(os.fsencode(s)) + 1 + 8 for s in strings)  # bytes, NUL and pointer of each string
    limit = os.sysconf("SC_ARG_MAX")
    if size > limit:
        largest = max(env, key=lambda k: len(env[k]), default=None)
        hint = f" (the largest variable mhsft sets is {largest})" if largest else ""
        raise MhsftError(
            f"swift's command line and environment together take {size // 1024} KiB; Linux passes at most "
            f"{limit // 1024} KiB to a new program{hint}. Move long values (system prompts, JSON configs) to "
            "files and give their paths."
        )


def report_to(requested: Any) -> list[str]:
    """The reporters to render, `swanlab` always among them (tracking is always on).

    Unset: ms-swift's own default (`tensorboard`) plus swanlab, so its local logs stay. Set: the recipe's
    list plus swanlab (`none` dropped).
    """
    if requested is None:
        return [*SWIFT_DEFAULT_REPORTERS, "swanlab"]
    items = requested if isinstance(requested, list) else [requested]
    kept = [str(r) for r in items if str(r) not in ("none", "swanlab")]
    return [*kept, "swanlab"]


def processes(launch_env: dict[str, str]) -> str:
    """The plan's GPU line: GPUs x processes, and for a multi-node launch nodes, node rank and master."""
    gpus = launch_env.get("CUDA_VISIBLE_DEVICES", "all visible")
    per_node = launch_env.get("NPROC_PER_NODE", "1")
    if "NNODES" not in launch_env:
        return f"{gpus} x {per_node} process(es)"
    master = f"{launch_env.get('MASTER_ADDR', '127.0.0.1')}:{launch_env.get('MASTER_PORT', '29500')}"
    unset = "" if "MASTER_ADDR" in launch_env else " (torchrun's default: set [launch] master_addr)"
    return (
        f"{launch_env['NNODES']} node(s) x {per_node} process(es) per node (GPUs {gpus}), "
        f"node rank {launch_env.get('NODE_RANK', '0')}, master {master}{unset}"
    )


def swanlab_log_dir(recipe: Recipe, cwd: Path, run_id: str | None) -> Path:
    """Where swift's SwanLab writes locally: `[swanlab] log_dir` (default ./swanlog); offline, the run's own
    folder in it, named by the run id, which `mhsft sync` uploads."""
    root = Path(absolute(recipe.swanlab.log_dir or "swanlog", cwd))
    return root / run_id if recipe.swanlab.mode == "offline" and run_id else root


def swanlab_env(recipe: Recipe, cwd: Path, run_id: str | None) -> dict[str, str]:
    """SwanLab variables for the child. Never SWANLAB_PROJECT: swanlab parses it as a table and fails."""
    s = recipe.swanlab
    env: dict[str, str] = {}
    if s.api_host:
        env["SWANLAB_API_HOST"] = s.api_host
    if s.web_host:
        env["SWANLAB_WEB_HOST"] = s.web_host
    if s.log_dir or s.mode == "offline":
        env["SWANLAB_LOG_DIR"] = str(swanlab_log_dir(recipe, cwd, run_id))
    if run_id:
        env |= {"SWANLAB_RUN_ID": run_id, "SWANLAB_RUN_RESUME": "allow"}
    return env


def train_plan(
    recipe: Recipe,
    environment: Environment,
    cwd: Path,
    *,
    run_id: str | None = None,
    resume_from: Path | None = None,
    cached: dict[str, Any] | None = None,
    run_dir: Path | None = None,
) -> Plan:
    """The `swift sft` plan for a validated recipe, with SwanLab forced on.

    `cached` (the dataset gate's `cached_dataset`/`cached_val_dataset`) replaces the recipe's datasets;
    `run_dir` fixes swift's vN folder.
    """
    s = recipe.swanlab
    args = dict(recipe.args["sft"])
    output_dir = recipe.output_dir(cwd)
    if cached:
        args = {k: v for k, v in args.items() if k not in CACHED_REPLACES} | cached
    if run_dir is not None:
        args |= {"output_dir": str(run_dir), "add_version": False}
    reporters_origin = (
        " (the recipe's report_to + swanlab)" if "report_to" in args else " (ms-swift's default + swanlab)"
    )
    args["report_to"] = report_to(args.get("report_to"))
    if resume_from is not None:
        args["resume_from_checkpoint"] = str(resume_from)
    tracking = {
        "swanlab_project": s.project,
        "swanlab_workspace": s.workspace,
        "swanlab_exp_name": s.exp_name,
        "swanlab_mode": "local" if s.mode == "offline" else s.mode,  # swift knows cloud | local
        "swanlab_notification_method": s.notification_method,
        "swanlab_webhook_url": s.webhook_url,
    }
    args |= {k: v for k, v in tracking.items() if v is not None}
    hub, offline = hub_access(args, environment, cwd)
    if offline:
        args.setdefault("check_model", False)  # swift's "is this local model the hub's latest" lookup
    argv = ["swift", "sft", *argv_for("sft", args, cwd)]
    env = {**offline, **recipe.launch_env, **recipe.env, **swanlab_env(recipe, cwd, run_id)}
    passed = [*(["SWANLAB_API_KEY"] if s.mode != "offline" else []), *hub_secrets(hub, environment)]
    ensure_no_secret_on_argv(argv, env, environment)
    ensure_fits(argv, env, environment)
    data_key = "dataset" if args.get("dataset") else "cached_dataset"
    dataset = args[data_key] if isinstance(args[data_key], list) else [args[data_key]]
    summary = [
        ("recipe", f"{recipe.name} ({recipe.path})"),
        ("model", localize("model", str(args["model"]), cwd)),
        (data_key.replace("_", " "), ", ".join(localize(data_key, str(d), cwd) for d in dataset)),
        ("output dir", str(run_dir or output_dir)),
        ("GPUs", processes(recipe.launch_env)),
        (
            "SwanLab",
            f"{s.workspace + '/' if s.workspace else ''}{s.project} ({MODES[s.mode]}), experiment {s.exp_name}",
        ),
        ("reporters", " ".join(args["report_to"]) + reporters_origin),
    ]
    if resume_from is not None:
        summary.append(("resume from", str(resume_from)))
    input_keys = ("model", "dataset", "val_dataset", "cached_dataset", "cached_val_dataset")
    inputs = [p for key in input_keys for p in local_paths(key, args.get(key), cwd)]
    return Plan(
        command="sft",
        argv=argv,
        env=env,
        secrets=tuple(n for n in passed if environment.get(n)),
        summary=summary,
        output_dir=output_dir,
        inputs=tuple(inputs),
        hubs=(hub,) if hub else (),
    )


def command_plan(
    command: str,
    args: dict[str, Any],
    environment: Environment,
    cwd: Path,
    *,
    recipe: Recipe | None,
    summary: list[tuple[str, str]],
    env: dict[str, str] | None = None,
    secrets: Iterable[str] = (),
    program: tuple[str, ...] | None = None,
    output_dir: Path | None = None,
    push_hub: str | None = None,
) -> Plan:
    """The plan for `swift infer|deploy|export` (or `program`, e.g. mhsft's deploy entry point) with `args`.

    Only the recipe's GPU selection and [env] apply: torchrun variables would turn an interactive chat or a
    server into a distributed launch. The model comes from the checkpoint's args.json unless `args` names one;
    `secrets` are the command's own (deploy's API key, the token of `push_hub`).
    """
    adapters = args.get("adapters") or [None]
    saved = {k: v for k, v in checkpoint_args(adapters[0]).items() if k in ("model", "use_hf")} if adapters[0] else {}
    hub, offline = hub_access({**saved, **args}, environment, cwd)
    hubs = tuple(dict.fromkeys(h for h in (hub, push_hub) if h))
    argv = [*(program or ("swift", command)), *argv_for(command, args, cwd)]
    child_env = dict(offline) if push_hub is None else {}
    if recipe is not None:
        gpus = recipe.launch_env.get("CUDA_VISIBLE_DEVICES")
        child_env |= ({"CUDA_VISIBLE_DEVICES": gpus} if gpus else {}) | recipe.env
    child_env |= env or {}
    ensure_no_secret_on_argv(argv, child_env, environment)
    ensure_fits(argv, child_env, environment)
    inputs = [p for key in ("adapters", "val_dataset") for p in local_paths(key, args.get(key), cwd)]
    passed = [*secrets, *(name for h in hubs for name in hub_secrets(h, environment))]
    return Plan(
        command=command,
        argv=argv,
        env=child_env,
        secrets=tuple(dict.fromkeys(n for n in passed if environment.get(n))),
        summary=summary,
        output_dir=output_dir,
        inputs=tuple(inputs),
        hubs=hubs,
    )
