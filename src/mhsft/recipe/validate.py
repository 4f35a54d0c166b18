"""Validation: a merged recipe becomes a `Recipe` whose every value swift will accept, or a clear error.

Swift sections are checked against the argument names, kinds and choices of the installed ms-swift (see
`swift_args`), exactly, because swift's own parser accepts prefixes (`lora_r` silently sets `lora_rank`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from mhsft.environment import NESTED_SWANLAB, is_secret_key, is_secret_name
from mhsft.errors import MhsftError
from mhsft.paths import display
from mhsft.recipe.argv import MAYBE_PATH_KEYS, PATH_KEYS
from mhsft.recipe.load import SECTIONS, TOP_KEYS, RawRecipe, type_name
from mhsft.recipe.model import DATA_CHECK_KEYS, DataBudget, Recipe, SlurmSettings, SwanlabSettings
from mhsft.recipe.swift_args import COMMANDS, ArgSpec, specs, suggest, swift_version
from mhsft.recipe.values import (
    BACKEND_SETTINGS,
    backend_name,
    check_value,
    error,
    plain,
    shown,
)

FLASH_ATTN = ("flash_attn", "flash_attention_2", "flash_attention_3", "flash_attention_4")
SAFE_RENAMES = {"train_type": "tuner_type", "sft_type": "tuner_type"}
# the names ms-swift 3.x took without a backend prefix
LMDEPLOY_RENAMES = {name.removeprefix("lmdeploy_"): name for name in BACKEND_SETTINGS["lmdeploy"].values()}
VLLM_RENAMES = {"tp": BACKEND_SETTINGS["vllm"]["tp"]}
REMOVED = {
    "merge_dtype": "ms-swift 4.6 has no merge_dtype: the merged model is saved in `torch_dtype`; set "
    "[export] torch_dtype instead",
    "hub_model_id_or_path": "use `hub_model_id`",
}
# [eval] keys that `mhsft eval` cannot honour, and why (it deploys both models itself and runs EvalScope's Native
# backend; the OpenCompass and VLMEvalKit backends need packages that replace numpy and pandas)
EVAL_REFUSED = {
    "eval_url": "mhsft eval deploys the base model and the checkpoint itself, so both run with the same settings; "
    "remove eval_url (to score a server you already run, use EvalScope directly)",
    "local_dataset": "this only applies to the OpenCompass backend, which mhsft eval does not run; remove it",
}
EVAL_OWN_KEYS = ("after_train",)  # mhsft's own [eval] keys (not swift eval arguments)
NOTIFY_OK = ("lark", "dingtalk")
NOTIFY_BROKEN = ("wxwork", "slack", "discord")
# [swanlab] keys: name -> (kind, choices)
SWANLAB_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "project": ("str", ()),
    "workspace": ("str", ()),
    "exp_name": ("str", ()),
    "mode": ("str", ("cloud", "local", "offline")),
    "api_host": ("str", ()),
    "web_host": ("str", ()),
    "log_dir": ("str", ()),
    "notification_method": ("str", NOTIFY_OK + NOTIFY_BROKEN + ("email",)),
    "webhook_url": ("str", ()),
}
# [launch] keys: name -> (kind, environment variable)
LAUNCH_KEYS = {
    "gpus": ("str", "CUDA_VISIBLE_DEVICES"),
    "nproc_per_node": ("int", "NPROC_PER_NODE"),
    "nnodes": ("int", "NNODES"),
    "node_rank": ("int", "NODE_RANK"),
    "master_addr": ("str", "MASTER_ADDR"),
    "master_port": ("int", "MASTER_PORT"),
}
# [slurm] keys (`mhsft submit`): name -> kind; "int" ones must be >= 1, "text" ones are strings or integers
SLURM_KEYS = {
    "partition": "str",
    "nodes": "int",
    "gpus_per_node": "int",
    "cpus_per_task": "int",
    "mem": "text",
    "time": "text",
    "account": "str",
    "qos": "str",
    "constraint": "str",
    "job_name": "str",
    "output": "str",
    "requeue": "bool",
    "sbatch_args": "list",
    "offline_nodes": "bool",
    "download_dir": "path",
}
SLURM_PATTERNS = re.compile(r"%(?![jxuA%])")  # Slurm filename patterns mhsft cannot resolve to find the log
RESERVED_ENV = {var: f"[launch] {key}" for key, (_, var) in LAUNCH_KEYS.items()} | {
    "SWANLAB_API_HOST": "[swanlab] api_host",
    "SWANLAB_WEB_HOST": "[swanlab] web_host",
    "SWANLAB_LOG_DIR": "[swanlab] log_dir",
    "SWANLAB_PROJECT": "[swanlab] project",
    "SWANLAB_RUN_ID": "mhsft (it assigns the run id)",
    "SWANLAB_RUN_RESUME": "mhsft train --resume",
}
SWANLAB_NAME = re.compile(r"^[0-9a-zA-Z_\-+.]{1,100}$")  # what swanlab.init accepts for a project
HOST = re.compile(r"^[A-Za-z0-9_.:\[\]%][A-Za-z0-9_.:\[\]%-]*$")  # a name, IPv4 or IPv6 address; no leading dash
NAME_MAX = 255  # bytes in one file or folder name
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Problems:
    """Every problem found in a recipe, so that one run of `validate` reports them all."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    @contextmanager
    def each(self) -> Iterator[None]:
        """Note the `MhsftError` raised inside, and go on."""
        try:
            yield
        except MhsftError as exc:
            self.messages.append(exc.message)

    def raise_any(self, raw: RawRecipe) -> None:
        if len(self.messages) == 1:
            raise MhsftError(self.messages[0])
        if self.messages:  # still one paragraph, each problem numbered
            listed = " ".join(f"({n}) {m}" for n, m in enumerate(self.messages, 1))
            raise MhsftError(f"{display(raw.path)} has {len(self.messages)} problems; fix them all: {listed}")


def home_section(key: str, section: str | None = None) -> str | None:
    """The recipe section that takes `key` when `section` does not: mhsft's own tables first, then a swift
    command's (`swanlab_mode` belongs in [swanlab], as `mode`)."""
    if key.startswith("swanlab_") and key.removeprefix("swanlab_") in SWANLAB_KEYS:
        return "swanlab"
    tables = {"launch": LAUNCH_KEYS, "swanlab": SWANLAB_KEYS, "slurm": SLURM_KEYS, "data_check": DATA_CHECK_KEYS}
    homes = [s for s, keys in tables.items() if key in keys] + [s for s in COMMANDS if key in specs(s)]
    homes = [h for h in homes if h != section]
    return homes[0] if homes else None


def moved(key: str, section: str | None = None) -> str:
    """' `lora_rank` is a `swift sft` argument: move it under [sft].' when another section takes `key`, else ''."""
    home = home_section(key, section)
    name = key.removeprefix("swanlab_") if home == "swanlab" else key
    if home is None or home == section:
        return f" Write it as `{name}`: [{home}] keys have no swanlab_ prefix." if home else ""
    what = f"a `swift {home}` argument" if home in COMMANDS else f"a [{home}] key"
    return f" `{key}` is {what}: move it under [{home}]" + (f" as `{name}`." if name != key else ".")


def _unknown(section: str, key: str, keys: Iterable[str]) -> str:
    """The message for a key [section] does not take: where it belongs, else the closest name."""
    return f"unknown [{section}] key.{moved(key, section) or suggest(key, list(keys))} The keys are {', '.join(keys)}."


def _swift_key(raw: RawRecipe, section: str, key: str, backend: str | None) -> tuple[str, str | None]:
    """The 4.6 name for `key` in a swift section, plus a warning when an old name was translated."""
    where = raw.where(section, key)
    if is_secret_key(section, key):
        raise error(
            where,
            "secrets never go in a recipe (mhsft never puts them on a command line). Remove this "
            "key and put the value in .env: SWANLAB_API_KEY for SwanLab, MODELSCOPE_API_TOKEN or "
            "HF_TOKEN for the hubs, MHSFT_DEPLOY_API_KEY for `mhsft deploy`.",
        )
    key = key.replace("-", "_")
    if section == "sft" and key.startswith("swanlab_"):
        raise error(
            where,
            f"SwanLab settings live in [swanlab]: write `{key.removeprefix('swanlab_')} = ...` "
            "there (tracking is always on; mhsft renders the swanlab_* flags itself).",
        )
    known = specs(section)
    if key in known and not (section == "infer" and key == "dataset"):
        return key, None
    if key in REMOVED:
        raise error(where, f"{REMOVED[key]}.")
    renames = dict(SAFE_RENAMES)
    if section == "infer" and key == "dataset":
        return "val_dataset", (
            f"{where}: batch inference takes `val_dataset` in ms-swift 4.6 (`dataset` alone "
            "falls into interactive mode); translated."
        )
    if section in ("infer", "deploy"):
        renames |= VLLM_RENAMES if backend == "vllm" else LMDEPLOY_RENAMES if backend == "lmdeploy" else {}
    if key in renames and renames[key] in known:
        return renames[key], f"{where}: `{key}` is the old name of `{renames[key]}` (ms-swift 4.6); translated."
    if key in LMDEPLOY_RENAMES:
        raise error(
            where,
            f"this is not a ms-swift 4.6 argument. With infer_backend lmdeploy it is "
            f"`{LMDEPLOY_RENAMES[key]}`; with vllm use the vllm_* options (e.g. "
            "vllm_tensor_parallel_size).",
        )
    prefixed = sorted(k for k in known if k.startswith(key))
    if prefixed and not moved(key, section):
        raise error(
            where,
            f"not an argument of `swift {section}` in ms-swift {swift_version()}. Did you mean "
            f"`{prefixed[0]}`? Names must match exactly: swift's parser would silently take "
            f"`{key}` as `{prefixed[0]}`.",
        )
    named = next((f" Did you mean `{n}`?" for n in (f"{section}_{key}", f"infer_{key}") if n in known), "")
    raise error(
        where,
        f"not an argument of `swift {section}` in ms-swift {swift_version()}."
        f"{named or moved(key, section) or suggest(key, known)}"
        f" See `swift {section} --help` or the ms-swift command-line docs for the names.",
    )


def _swift_section(raw: RawRecipe, section: str, warnings: list[str], problems: Problems) -> dict[str, Any]:
    table = raw.data[section]
    backend = table.get("infer_backend")
    if section in ("infer", "deploy") and isinstance(backend, str):
        backend, warning = backend_name(backend, raw.where(section, "infer_backend"))
        warnings += [warning] if warning else []
    out: dict[str, Any] = {}
    for key, value in table.items():
        if section == "eval" and key in EVAL_OWN_KEYS:
            continue
        with problems.each():
            if section == "eval" and key in EVAL_REFUSED:
                raise error(raw.where(section, key), f"{EVAL_REFUSED[key]}.")
            name, warning = _swift_key(raw, section, key, backend)
            if warning:
                warnings.append(warning)
            if name == "infer_backend":
                value = backend
            spec: ArgSpec = specs(section)[name]
            checked = check_value(spec.kind, spec.list, spec.choices, value, raw.where(section, key))
            if name in PATH_KEYS | MAYBE_PATH_KEYS:
                _check_paths(checked, raw.where(section, key))
            out[name] = checked
    return out


def _check_paths(value: Any, where: str) -> None:
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str) and not item.strip():
            raise error(where, "an empty path: give a file, a folder or a hub id, or remove it.")
        if isinstance(item, str) and any(len(os.fsencode(part)) > NAME_MAX for part in item.split("/")):
            raise error(
                where,
                f"a file or folder name in this path is longer than {NAME_MAX} bytes, which no file system "
                "allows. Shorten it.",
            )


def _given(value: Any) -> bool:
    """Whether a dataset-like value names at least one non-blank item."""
    items = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) and v.strip() for v in items)


def _check_sft(raw: RawRecipe, sft: dict[str, Any]) -> None:
    model = sft.get("model")
    if not isinstance(model, str) or not model.strip():
        raise error(
            raw.where("sft", "model"),
            'a model is required: set [sft] model to a hub id such as "Qwen/Qwen2.5-7B-Instruct" or a local directory.',
        )
    if not any(_given(sft.get(key)) for key in ("dataset", "cached_dataset")):
        raise error(
            raw.where("sft", "dataset"),
            "nothing to train on: set [sft] dataset to a hub id or a local .jsonl file, e.g. "
            'dataset = ["data/train.jsonl"], or cached_dataset to a folder written by `swift export '
            "--to_cached_dataset true`.",
        )
    for flag in ("packing", "padding_free"):
        if sft.get(flag) is True and sft.get("attn_impl") not in FLASH_ATTN:
            raise error(
                raw.where("sft", flag),
                f"{flag} needs flash attention: set [sft] attn_impl = "
                f'"flash_attn" (and install flash-attn), or set {flag} = false.',
            )


def _check_eval(raw: RawRecipe, args: dict[str, Any]) -> bool:
    """Check what `mhsft eval` needs of [eval]; return `after_train`."""
    backend = args.get("eval_backend", "Native")
    if backend != "Native":
        raise error(
            raw.where("eval", "eval_backend"),
            f"mhsft eval runs EvalScope's Native backend only (its benchmarks include ceval, mmlu, cmmlu, gsm8k "
            f"and custom sets); {backend} needs ms-opencompass/ms-vlmeval. Remove eval_backend or set it to "
            '"Native".',
        )
    limit = args.get("eval_limit")
    if limit is not None and limit < 1:
        raise error(raw.where("eval", "eval_limit"), f"the number of samples per benchmark must be >= 1; got {limit}.")
    after = raw.data["eval"].get("after_train", False)
    if not isinstance(after, bool):
        raise error(raw.where("eval", "after_train"), f"expected true or false; got {shown(after)}.")
    return after


def _swanlab(raw: RawRecipe) -> SwanlabSettings:
    table = dict(raw.data["swanlab"])
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = raw.where("swanlab", key)
        if is_secret_key("swanlab", key):
            raise error(where, "secrets never go in a recipe. Put the SwanLab key in .env as SWANLAB_API_KEY.")
        if key not in SWANLAB_KEYS:
            raise error(where, _unknown("swanlab", key, SWANLAB_KEYS))
        kind, choices = SWANLAB_KEYS[key]
        values[key] = str(check_value(kind, False, choices, value, where)).strip() or None
    if not values.get("project"):
        raise error(
            raw.where("swanlab", "project"),
            'the SwanLab project must not be empty: set [swanlab] project = "my-project".',
        )
    if not SWANLAB_NAME.match(values["project"]):
        raise error(
            raw.where("swanlab", "project"),
            f"{values['project']!r} is not a SwanLab project name: up to 100 "
            "letters, digits and _ - + . (swanlab.init would reject it after the model has loaded).",
        )
    for key in ("api_host", "web_host"):
        if values.get(key) and not re.match(r"^https?://[^/\s]+", values[key]):
            raise error(
                raw.where("swanlab", key),
                f'{values[key]!r} is not a URL: write it with its scheme, e.g. "https://swanlab.example.com".',
            )
    method = values.get("notification_method")
    if method in NOTIFY_BROKEN:
        raise error(
            raw.where("swanlab", "notification_method"),
            f"{method} notifications crash on ms-swift 4.6 "
            f"(it passes secret= to every callback and {method} rejects it). Use one of "
            f"{', '.join(NOTIFY_OK)}.",
        )
    if method == "email":
        raise error(
            raw.where("swanlab", "notification_method"),
            "email notifications need the SMTP password on "
            f"swift's command line, which mhsft never does. Use one of {', '.join(NOTIFY_OK)}.",
        )
    if method and not values.get("webhook_url"):
        raise error(raw.where("swanlab", "webhook_url"), f"{method} notifications need a webhook_url.")
    values["exp_name"] = values.get("exp_name") or str(raw.data["name"])
    return SwanlabSettings(**values)


def _launch(raw: RawRecipe) -> dict[str, str]:
    env: dict[str, str] = {}
    for key, value in raw.data["launch"].items():
        where = raw.where("launch", key)
        if key not in LAUNCH_KEYS:
            raise error(where, _unknown("launch", key, LAUNCH_KEYS))
        kind, var = LAUNCH_KEYS[key]
        if key == "gpus" and isinstance(value, list):
            value = ",".join(str(check_value("int", False, (), v, where)) for v in value)
        value = check_value(kind, False, (), value, where, argv=False)
        if key == "master_addr" and not HOST.match(value):
            raise error(
                where, f"{shown(value)} is not a host name or IP address (torchrun reads it on its command line)."
            )
        if kind == "int" and value < (0 if key == "node_rank" else 1):
            raise error(where, f"must be {'>= 0' if key == 'node_rank' else '>= 1'}, got {value}.")
        env[var] = str(value)
    gpus = [g for g in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    nproc = int(env.get("NPROC_PER_NODE", "1"))
    if gpus and nproc > len(gpus):
        raise error(
            raw.where("launch", "nproc_per_node"),
            f"{nproc} processes per node but gpus lists only "
            f"{len(gpus)} GPU(s) ({env['CUDA_VISIBLE_DEVICES']}). Make them match.",
        )
    return env


def _slurm_value(kind: str, value: Any, where: str) -> Any:
    if kind == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) and v.startswith("-") for v in value):
            raise error(where, 'expected an array of sbatch options, e.g. ["--exclusive", "--gres=gpu:8"].')
        items = value
    elif kind == "text":
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise error(where, f'expected a string such as "64G" or "24:00:00", got {type_name(value)}.')
        return str(value).strip() or None
    elif kind == "path":
        if not isinstance(value, str) or not value.strip():
            shown_as = "an empty string" if isinstance(value, str) else type_name(value)
            raise error(where, f'expected a folder as a string, e.g. "/shared/models", got {shown_as}.')
        items = [value.strip()]
    else:
        items = [check_value(kind, False, (), value, where)]
        if kind == "int" and value < 1:
            raise error(where, f"must be >= 1, got {value}.")
    if any(isinstance(v, str) and ("\n" in v or "\r" in v or not plain(v)) for v in items):
        raise error(where, "a line break or NUL character would break the batch script; write one line.")
    return tuple(items) if kind == "list" else items[0]


def _slurm(raw: RawRecipe, launch_env: dict[str, str]) -> SlurmSettings | None:
    if not raw.data["slurm"]:
        return None
    values: dict[str, Any] = {}
    for key, value in raw.data["slurm"].items():
        where = raw.where("slurm", key)
        if key not in SLURM_KEYS:
            raise error(where, _unknown("slurm", key, SLURM_KEYS))
        values[key] = _slurm_value(SLURM_KEYS[key], value, where)
        if SLURM_KEYS[key] == "str":
            values[key] = str(values[key]).strip() or None
    if values.get("output") and SLURM_PATTERNS.search(values["output"]):
        raise error(
            raw.where("slurm", "output"),
            f"{values['output']!r}: mhsft finds the log with %j (job id), %x (job name), %u (user), %A "
            "and %%; other Slurm patterns would hide it from `mhsft logs`.",
        )
    gpus = values.get("gpus_per_node")
    nproc = launch_env.get("NPROC_PER_NODE")
    visible = [g for g in launch_env.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    wrong_nproc = nproc is not None and int(nproc) != gpus
    if gpus is not None and (wrong_nproc or (visible and len(visible) != gpus)):
        said = f"nproc_per_node = {nproc}" if wrong_nproc else f"gpus lists {len(visible)}"
        raise error(
            raw.where("slurm", "gpus_per_node"),
            f"{gpus} GPUs per node, but [launch] {said}. On Slurm one process runs per GPU: remove them from "
            "[launch] (gpus_per_node sets NPROC_PER_NODE) or make them agree.",
        )
    values["job_name"] = values.get("job_name") or str(raw.data["name"])
    values = {k: v for k, v in values.items() if v is not None}
    return SlurmSettings(**values)


def _env(raw: RawRecipe) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw.data["env"].items():
        where = raw.where("env", key)
        if not _ENV_NAME.match(key):
            raise error(where, "not a valid environment variable name (letters, digits and _).")
        if is_secret_name(key):
            raise error(
                where,
                f"secrets never go in a recipe. Put {key} in .env or your environment; mhsft "
                "passes it to swift through the environment.",
            )
        if key in RESERVED_ENV:
            raise error(where, f"mhsft sets {key} itself; use {RESERVED_ENV[key]} instead.")
        if key in NESTED_SWANLAB:
            raise error(
                where,
                f"swanlab reads {key} as a JSON table and fails on anything else (SettingsError at "
                "swanlab.init, after the model has loaded). Remove it; use the [swanlab] section.",
            )
        if not isinstance(value, bool):
            check_value("str", False, (), value, where, argv=False)
        out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def _data_check(raw: RawRecipe) -> DataBudget:
    values: dict[str, Any] = {}
    for key, value in raw.data["data_check"].items():
        where = raw.where("data_check", key)
        if key not in DATA_CHECK_KEYS:
            raise error(where, _unknown("data_check", key, DATA_CHECK_KEYS))
        if key == "num_proc":
            values[key] = check_value("int", False, (), value, where, argv=False)
            if values[key] < 1:
                raise error(where, f"the processes the data check tokenises with, 1 or more; got {value}.")
            continue
        check_value("float", False, (), value, where, argv=False)  # never on a command line: -inf is a number
        if not 0 <= value <= 1:
            raise error(
                where,
                f"the largest share of rows that may be {DATA_CHECK_KEYS[key]}, from 0 (none) to 1 (all); "
                f"got {value}. Write 0.01 for 1 %.",
            )
        values[key] = float(value)
    return DataBudget(**values)


def _name(raw: RawRecipe) -> str:
    """The recipe's name, which names files (`.mhsft/data-check/NAME.json`): one plain file name."""
    name = str(raw.data["name"])
    if name in ("", ".", "..") or any(c in name for c in "/\\\0") or len(os.fsencode(name)) > NAME_MAX - 5:
        raise error(
            raw.where("name"),
            f"{name!r} cannot name a file, and mhsft names files after the recipe (e.g. .mhsft/data-check/"
            f"NAME.json): no / or \\, not . or .., at most {NAME_MAX - 5} bytes. Write a plain name such as "
            'name = "qwen7b-lora".',
        )
    return name


def _stray(raw: RawRecipe, problems: Problems) -> None:
    """Unknown top-level keys: say which section takes a swift argument written above every table."""
    for path, key in raw.stray:
        hint = moved(key) or suggest(key, TOP_KEYS + SECTIONS)
        problems.messages.append(
            f"{display(path)}: unknown section or top-level key `{key}`.{hint} Recipes have the top-level keys "
            f"{', '.join(TOP_KEYS)} and the sections {', '.join(f'[{s}]' for s in SECTIONS)}."
        )


def _key_names(raw: RawRecipe, problems: Problems) -> set[str]:
    """Unknown keys of mhsft's own sections, all of them; returns the sections that have one."""
    tables = {"launch": LAUNCH_KEYS, "swanlab": SWANLAB_KEYS, "slurm": SLURM_KEYS, "data_check": DATA_CHECK_KEYS}
    failed = set()
    for section, keys in tables.items():
        for key in raw.data[section]:
            if key not in keys and not is_secret_key(section, key):
                problems.messages.append(f"{raw.where(section, key)}: {_unknown(section, key, keys)}")
                failed.add(section)
    return failed


def validate(raw: RawRecipe) -> Recipe:
    """Check every section of a loaded recipe; raise one `MhsftError` naming the file, section and key of every
    problem found."""
    problems, warnings = Problems(), []
    _stray(raw, problems)
    args = {section: _swift_section(raw, section, warnings, problems) for section in COMMANDS}
    broken = {k.replace("-", "_") for k in raw.data["sft"]} - set(args["sft"])  # already reported
    if not raw.stray and not broken & {"model", "dataset", "cached_dataset", "packing", "padding_free", "attn_impl"}:
        with problems.each():
            _check_sft(raw, args["sft"])
    failed = _key_names(raw, problems)
    built: dict[str, Any] = {}
    steps = {"swanlab": _swanlab, "launch": _launch, "env": _env, "data_check": _data_check}
    for section, step in steps.items():
        if section not in failed:
            with problems.each():
                built[section] = step(raw)
    if "slurm" not in failed and "launch" in built:
        with problems.each():
            built["slurm"] = _slurm(raw, built["launch"])
    for key, step in (("name", _name), ("eval", lambda r: _check_eval(r, args["eval"]))):
        with problems.each():
            built[key] = step(raw)
    problems.raise_any(raw)
    resolved = {k: raw.data[k] for k in ("name", "description") if k in raw.data}
    resolved |= {s: raw.data[s] for s in SECTIONS if raw.data[s]}
    return Recipe(
        name=built["name"],
        description=str(raw.data.get("description", "")),
        path=raw.path,
        chain=tuple(raw.chain),
        swanlab=built["swanlab"],
        launch_env=built["launch"],
        env=built["env"],
        args=args,
        warnings=tuple(warnings),
        resolved=resolved,
        data_check=built["data_check"],
        slurm=built["slurm"],
        eval_after_train=built["eval"],
    )
