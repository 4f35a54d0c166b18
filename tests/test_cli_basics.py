"""The command line itself: help with examples, version, recipes commands, and what the fast paths import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from mhsft import __version__
from mhsft.recipe import builtin

from support.environment import SECRET
from support.running import local_recipe, mhsft, write

HEAVY = {"torch", "swift", "swanlab", "modelscope", "transformers", "evalscope"}
COMMANDS = [
    "train",
    "validate",
    "preflight",
    "doctor",
    "recipes",
    "infer",
    "deploy",
    "export",
    "runs",
    "submit",
    "logs",
    "cancel",
    "board",
    "report",
    "data",
    "eval",
]


def test_version(workdir, env) -> None:
    result = mhsft("--version", env=env, cwd=workdir)
    assert result.returncode == 0 and result.stdout.strip() == f"mhsft {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(workdir, env, command) -> None:
    result = mhsft(command, "--help", env=env, cwd=workdir)
    assert result.returncode == 0
    assert "Example" in result.stdout or command == "recipes"
    assert "Usage: mhsft " in result.stdout


def test_top_level_help_lists_commands_and_completion(workdir, env) -> None:
    out = mhsft("--help", env=env, cwd=workdir).stdout
    for command in COMMANDS:
        assert command in out
    assert "--install-completion" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["train", "--help"],
        ["train", "qwen7b", "--dry-run"],
        ["submit", "qwen32b", "--nodes", "2", "--dry-run"],
        ["validate", "qwen32b"],
        ["recipes", "show", "local-file"],
        ["recipes", "import", "swift sft --model m --dataset d.jsonl --train_type lora"],
        ["train", "nope.toml"],
    ],
)
def test_fast_paths_import_no_heavy_package(workdir, env, args) -> None:
    loaded = loaded_modules(args, env, workdir)
    assert "mhsft" in loaded
    assert loaded & HEAVY == set()


def loaded_modules(args: list[str], env: dict[str, str], cwd: Path) -> set[str]:
    """The top-level packages loaded by the end of `mhsft ARGS`."""
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print('MODULES=' + json.dumps(sorted({m.split('.')[0] for m in sys.modules})),"
        " file=sys.stderr))\n"
        f"sys.argv = ['mhsft', *{args!r}]\n"
        "from mhsft.cli import main\nmain()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True)
    line = next(ln for ln in result.stderr.splitlines() if ln.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES=")))


def test_recipes_list_show_new(workdir, env) -> None:
    listing = mhsft("recipes", "list", env=env, cwd=workdir)
    assert listing.returncode == 0
    for name in builtin.names():
        assert name in listing.stdout
    shown = mhsft("recipes", "show", "qwen32b", "--set", "sft.lora_rank=4", env=env, cwd=workdir)
    assert shown.returncode == 0
    resolved = tomllib.loads(shown.stdout)
    assert resolved["sft"]["model"] == "Qwen/Qwen2.5-32B-Instruct" and resolved["sft"]["packing"] is True
    assert resolved["sft"]["lora_rank"] == 4 and "extends" not in resolved
    created = mhsft("recipes", "new", "mine", "--from", "qwen32b", env=env, cwd=workdir)
    assert created.returncode == 0 and (workdir / "mine.toml").exists()
    assert mhsft("validate", "mine.toml", env=env, cwd=workdir).returncode == 0
    again = mhsft("recipes", "new", "mine", "--from", "qwen32b", env=env, cwd=workdir)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_validate_and_doctor_refuse_what_train_refuses_without_the_network(workdir: Path, env: dict) -> None:
    """A missing dataset file, and a secret's value pasted into a recipe value, passed `validate` and `doctor`
    while `train` refused them."""
    local_recipe(workdir, mode="local")
    (workdir / "data" / "train.jsonl").unlink()
    missing = mhsft("validate", "r.toml", env=env, cwd=workdir)
    assert missing.returncode == 2 and "train.jsonl does not exist" in missing.stderr, missing.stderr
    doctor = mhsft("doctor", "r.toml", "--json", "--timeout", "1", env=env, cwd=workdir)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert doctor.returncode == 1 and checks["recipe"]["status"] == "fail"
    assert "train.jsonl does not exist" in checks["recipe"]["detail"]
    local_recipe(workdir, mode="local")
    recipe = (workdir / "r.toml").read_text().replace('mode = "local"', f'mode = "local"\nexp_name = "run-{SECRET}"')
    write(workdir / "r.toml", recipe)
    write(workdir / ".env", f"SWANLAB_API_KEY={SECRET}\n")
    pasted = mhsft("validate", "r.toml", env=env, cwd=workdir)
    assert pasted.returncode == 2 and "the value of SWANLAB_API_KEY would appear" in pasted.stderr, pasted.stderr
    assert SECRET not in pasted.stdout + pasted.stderr
