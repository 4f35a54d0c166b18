"""`mhsft recipes import`: swift shell scripts, configs and args.json become recipes whose swift command is the
original one, modulo the documented differences; secrets never reach the recipe or the screen."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import tomllib

from mhsft.environment import Environment
from mhsft.recipe.load import load
from mhsft.recipe.plan import train_plan
from mhsft.recipe.swift_import import from_args_json, from_config, from_shell, import_source
from mhsft.recipe.validate import validate

from support.environment import SECRET, TESTS
from support.running import mhsft, write

# the `swift sft` flags of the script below, as typed
ORIGINAL = [
    ("--model", ["Qwen/Qwen2.5-7B-Instruct"]),
    ("--train_type", ["lora"]),
    ("--dataset", ["data/mh_sharegpt.jsonl", "AI-ModelScope/alpaca-gpt4-data-zh#500"]),
    ("--torch_dtype", ["bfloat16"]),
    ("--num_train_epochs", ["2"]),
    ("--learning_rate", ["1e-4"]),
    ("--lora_rank", ["8"]),
    ("--target_modules", ["all-linear"]),
    ("--gradient_accumulation_steps", ["16"]),
    ("--eval_steps", ["50"]),
    ("--save_steps", ["50"]),
    ("--max_length", ["2048"]),
    ("--gradient_checkpointing", ["true"]),
    ("--output_dir", ["output/qwen7b-mh"]),
    ("--system", ["You are a helpful assistant."]),
    ("--lora_dropou", ["0.05"]),
    ("--report_to", ["tensorboard", "swanlab"]),
    ("--swanlab_token", ["${SWANLAB_API_KEY}"]),
    ("--swanlab_project", ["${SWANLAB_PROJECT:-mh-sft}"]),
    ("--swanlab_exp_name", ["qwen7b-lora-v1"]),
    ("--swanlab_mode", ["cloud"]),
]
# what the recipe changes, as README's "Coming from swift sft" says
RENAMED = {"--train_type": "--tuner_type", "--lora_dropou": "--lora_dropout"}
LEFT_OUT = {"--swanlab_token", "--report_to"}  # the key reaches swift through SWANLAB_API_KEY; swanlab is forced
PATHS = {"--output_dir", "--dataset"}  # made absolute from the folder mhsft runs in


def script(flags: list[tuple[str, list[str]]] = ORIGINAL) -> str:
    lines = ["#!/bin/bash", "# our 7B run", "set -e", "export MASTER_PORT=29501", "CUDA_VISIBLE_DEVICES=0,1 \\"]
    lines += ["NPROC_PER_NODE=2 \\", "swift sft \\"]
    for flag, values in flags:
        quoted = " ".join(
            f"'{v}'" if " " in v or "#" in v else v.replace("${", '"${') + '"' * ("${" in v) for v in values
        )
        lines.append(f"    {flag} {quoted} \\")
    lines += ["    2>&1 | tee train.log", ""]
    lines += ["CUDA_VISIBLE_DEVICES=0 swift infer --adapters output/qwen7b-mh/v0-20250101-000000/checkpoint-100 \\"]
    lines += ["    --infer_backend lmdeploy --tp 1 --stream true --max_new_tokens 512", ""]
    lines += ["swift export --adapters output/qwen7b-mh/v0-20250101-000000/checkpoint-100 --merge_lora true"]
    return "\n".join(lines) + "\n"


def as_flags(argv: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for token in argv:
        if token.startswith("--"):
            out[token] = []
        elif out:
            out[list(out)[-1]].append(token)
    return out


def same(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b))
    except ValueError:
        return a == b


def imported_plan(text: str, folder: Path, environ: dict[str, str] | None = None):
    imported = from_shell(text, "train.sh")
    path = write(folder / "r.toml", imported.toml())
    environment = Environment(environ or {})
    return imported, train_plan(validate(load(str(path), environment)), environment, folder)


def test_round_trip_the_rendered_argv_is_the_scripts_modulo_the_documented_differences(tmp_path: Path) -> None:
    imported, plan = imported_plan(script(), tmp_path)
    rendered = as_flags(plan.argv[2:])
    expected = {RENAMED.get(f, f): v for f, v in ORIGINAL if f not in LEFT_OUT}
    expected["--swanlab_project"] = ["mh-sft"]  # ${SWANLAB_PROJECT:-mh-sft} with SWANLAB_PROJECT unset
    for flag, values in expected.items():
        if flag in PATHS:
            values = [os.path.normpath(tmp_path / v) if v.startswith(("data/", "output/")) else v for v in values]
        assert flag in rendered, flag
        assert len(rendered[flag]) == len(values) and all(map(same, rendered[flag], values)), (flag, rendered[flag])
    added = set(rendered) - set(expected)
    assert added <= {"--report_to", "--check_model"}, added  # mhsft's own: swanlab forced, the offline lookup off
    assert rendered["--report_to"] == ["tensorboard", "swanlab"]
    assert {k: plan.env[k] for k in ("CUDA_VISIBLE_DEVICES", "NPROC_PER_NODE", "MASTER_PORT")} == {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "NPROC_PER_NODE": "2",
        "MASTER_PORT": "29501",
    }
    assert any("--train_type is the old name of --tuner_type" in n for n in imported.notes)
    assert any("--lora_dropou is a prefix" in n for n in imported.notes)


def test_swanlab_default_is_kept_as_the_recipes_own_variable(tmp_path: Path) -> None:
    imported, plan = imported_plan(script(), tmp_path, {"SWANLAB_PROJECT": "team-proj"})
    assert imported.data["swanlab"]["project"] == "${SWANLAB_PROJECT:-mh-sft}"
    assert as_flags(plan.argv)["--swanlab_project"] == ["team-proj"]
    assert "report_to" not in imported.data["sft"]


def test_following_infer_and_export_lines_become_sections_without_the_checkpoint() -> None:
    imported = from_shell(script(), "train.sh")
    assert imported.data["infer"] == {
        "infer_backend": "lmdeploy",
        "lmdeploy_tp": 1,
        "stream": True,
        "max_new_tokens": 512,
    }
    assert imported.data["export"] == {"merge_lora": True}
    assert any("--adapters left out: `mhsft infer` passes the run's checkpoint" in n for n in imported.notes)
    assert any("CUDA_VISIBLE_DEVICES left out" in n for n in imported.notes)  # infer's own GPU differs


def test_secrets_become_masked_env_lines_never_recipe_values_nor_output(workdir: Path, env: dict) -> None:
    flags = [*ORIGINAL[:3], ("--swanlab_token", [SECRET]), ("--hub_token", ["${MY_MS_TOKEN}"])]
    write(workdir / "train.sh", script(flags))
    done = mhsft("recipes", "import", "train.sh", "-o", "mine", env=env, cwd=workdir)
    assert done.returncode == 0, done.stderr
    recipe = (workdir / "mine.toml").read_text()
    assert SECRET not in recipe + done.stdout + done.stderr
    assert "hub_token" not in recipe and "swanlab_token" not in recipe
    assert f"SWANLAB_API_KEY=****{SECRET[-4:]}" in done.stderr
    assert "MODELSCOPE_API_TOKEN=${MY_MS_TOKEN}" in done.stderr
    shown = mhsft("train", "mine.toml", "--dry-run", env=env, cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    assert "--tuner_type lora" in shown.stdout and "hub_token" not in shown.stdout


def test_a_pasted_command_on_stdin_and_a_quoted_one(workdir: Path, env: dict) -> None:
    line = "swift sft --model m --dataset d.jsonl --sft_type lora --learning_rate 2e-5 --swanlab_mode local"
    piped = mhsft("recipes", "import", "-", env=env, cwd=workdir, input=line + "\n")
    quoted = mhsft("recipes", "import", line, env=env, cwd=workdir)
    assert piped.returncode == quoted.returncode == 0, piped.stderr + quoted.stderr
    assert tomllib.loads(piped.stdout)["sft"] == tomllib.loads(quoted.stdout)["sft"]
    assert 'description = "imported from a pasted command"' in quoted.stdout
    assert 'tuner_type = "lora"' in piped.stdout and "learning_rate = 2e-05" in piped.stdout
    assert 'mode = "local"' in piped.stdout
    assert "changed: stdin (swift sft): --sft_type is the old name of --tuner_type" in piped.stderr


def test_a_swift_config_with_its_env_table() -> None:
    config = {
        "ENV": {"CUDA_VISIBLE_DEVICES": "0,1,2,3", "NPROC_PER_NODE": 4, "MAX_PIXELS": 1003520},
        "model": "Qwen/Qwen2.5-VL-7B-Instruct",
        "dataset": ["AI-ModelScope/LaTeX_OCR#2000"],
        "train_type": "lora",
        "deepspeed": "zero2",
        "lora_alpha": 32,
        "columns": {"query": "question"},
        "report_to": ["swanlab"],
        "swanlab_project": "ocr",
    }
    imported = from_config(config, "sft.yaml")
    assert imported.data["launch"] == {"gpus": "0,1,2,3", "nproc_per_node": 4}
    assert imported.data["env"] == {"MAX_PIXELS": "1003520"}
    assert imported.data["sft"] == {
        "model": "Qwen/Qwen2.5-VL-7B-Instruct",
        "dataset": ["AI-ModelScope/LaTeX_OCR#2000"],
        "tuner_type": "lora",
        "deepspeed": "zero2",
        "lora_alpha": 32,
        "columns": {"query": "question"},
    }
    assert imported.data["swanlab"] == {"project": "ocr"}


def test_a_yaml_config_file(tmp_path: Path) -> None:
    path = write(tmp_path / "sft.yaml", "model: m\ndataset:\n  - d.jsonl\nnum_train_epochs: 1\nbf16: true\n")
    assert import_source(str(path)).data["sft"] == {
        "model": "m",
        "dataset": ["d.jsonl"],
        "num_train_epochs": 1,
        "bf16": True,
    }


def test_an_args_json_keeps_only_what_differs_from_swifts_defaults(tmp_path: Path) -> None:
    """A real args.json (ms-swift 4.6, the tiny selftest run: 347 keys) reads like the command that was typed."""
    args = json.loads((TESTS / "data" / "swift_sft_args.json").read_text())
    imported = from_args_json(args, "args.json")
    typed = {  # what mhsft passed to that run, less report_to/swanlab_* (which become [swanlab])
        "model": "/tmp/imp/st/model",
        "model_type": "qwen2",
        "template": "qwen2_5",
        "system": "You are a helpful assistant.",
        "torch_dtype": "float32",
        "max_length": 512,
        "max_steps": 20,
        "per_device_train_batch_size": 2,
        "learning_rate": 0.001,
        "logging_steps": 2,
        "save_steps": 10,
        "save_total_limit": 2,
        "output_dir": "/tmp/imp/st/output/v0-20261201-085445",
        "cached_dataset": ["/tmp/imp/st/.mhsft/data-cache/e7df972af3b3dbb8ac79ca38/export/train"],
        "add_version": False,
        "check_model": False,
    }
    assert imported.data["sft"] == typed
    assert imported.data["swanlab"] == {"project": "mhsft-tiny", "exp_name": "tiny", "mode": "local"}
    folder = tmp_path / "output" / "v0-20261201-085445"
    write(folder / "args.json", json.dumps(args | {"add_version": True}))
    again = import_source(str(tmp_path / "output"))  # the output_dir: its newest vN folder
    assert again.data["sft"]["output_dir"] == "/tmp/imp/st/output"  # swift adds the vN folder itself
    assert "add_version" not in again.data["sft"]


def test_no_swift_sft_is_an_error_naming_what_to_give(workdir: Path, env: dict) -> None:
    write(workdir / "notes.sh", "echo hello\nswift infer --adapters x\n")
    done = mhsft("recipes", "import", "notes.sh", env=env, cwd=workdir)
    assert done.returncode == 2 and "no `swift sft` command found" in done.stderr
    assert "Traceback" not in done.stderr
    missing = mhsft("recipes", "import", "nope.sh", env=env, cwd=workdir)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr


def test_a_script_that_runs_swift_with_a_config_file_reads_it(tmp_path: Path) -> None:
    write(
        tmp_path / "cfg" / "sft.yaml", "ENV:\n  NPROC_PER_NODE: 4\nmodel: m\ndataset: [d.jsonl]\nlearning_rate: 1e-4\n"
    )
    script = write(tmp_path / "cfg" / "run.sh", "NPROC_PER_NODE=2 swift sft sft.yaml --learning_rate 2e-5\n")
    imported = import_source(str(script))
    assert imported.data["sft"] == {"model": "m", "dataset": ["d.jsonl"], "learning_rate": 2e-5}  # the flag wins
    assert imported.data["launch"] == {"nproc_per_node": 2}  # the config's ENV never replaces a set variable
    assert any("read its config sft.yaml" in n for n in imported.notes)
