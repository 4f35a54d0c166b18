"""Rendering: swift 4.6 token rules, absolute local paths, SwanLab forced on, secrets never on argv."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.recipe.argv import argv_for, localize
from mhsft.recipe.load import load
from mhsft.recipe.plan import report_to, train_plan
from mhsft.recipe.validate import validate

from support.environment import SECRET
from support.running import local_recipe, write


def plan_for(ref: str, env: Environment | None = None, *overrides: str, **kw):
    env = env or Environment(values={})
    return train_plan(validate(load(ref, env, overrides)), env, Path.cwd(), **kw)


def flag(argv: list[str], name: str) -> list[str]:
    """The values after --name, up to the next flag."""
    i = argv.index(f"--{name}")
    out = []
    for tok in argv[i + 1 :]:
        if tok.startswith("--"):
            break
        out.append(tok)
    return out


def test_tokens_bools_lists_tables(workdir: Path) -> None:
    argv = argv_for(
        "sft",
        {
            "bf16": False,
            "packing": True,
            "target_modules": ["q_proj", "v_proj"],
            "model_kwargs": {"a": 1, "b": [True]},
            "learning_rate": 2e-4,
            "dataset": [],
        },
        workdir,
    )
    assert argv == [
        "--bf16",
        "false",
        "--packing",
        "true",
        "--target_modules",
        "q_proj",
        "v_proj",
        "--model_kwargs",
        '{"a":1,"b":[true]}',
        "--learning_rate",
        "0.0002",
    ]


def test_local_paths_become_absolute_hub_ids_do_not(workdir: Path) -> None:
    (workdir / "models" / "m").mkdir(parents=True)
    assert localize("model", "models/m", workdir) == str(workdir / "models" / "m")
    assert localize("model", "Qwen/Qwen2.5-7B-Instruct", workdir) == "Qwen/Qwen2.5-7B-Instruct"
    assert localize("dataset", "data/x.jsonl#500", workdir) == f"{workdir}/data/x.jsonl#500"
    assert (
        localize("dataset", "AI-ModelScope/alpaca-gpt4-data-en#500", workdir) == "AI-ModelScope/alpaca-gpt4-data-en#500"
    )
    assert localize("output_dir", "out/run", workdir) == str(workdir / "out" / "run")
    assert localize("output_dir", "~/x", workdir) == str(Path.home() / "x")
    assert localize("deepspeed", "zero2", workdir) == "zero2"


def test_report_to_always_includes_swanlab_and_keeps_swifts_default_when_unset() -> None:
    assert report_to(None) == ["tensorboard", "swanlab"]  # ms-swift's own default stays
    assert report_to(["tensorboard"]) == ["tensorboard", "swanlab"]
    assert report_to("none") == ["swanlab"]
    assert report_to(["none"]) == ["swanlab"]
    assert report_to(["swanlab", "wandb"]) == ["wandb", "swanlab"]
    assert report_to("wandb") == ["wandb", "swanlab"]


def test_train_plan_forces_swanlab_and_never_renders_a_token(workdir: Path) -> None:
    env = Environment(values={"SWANLAB_API_KEY": SECRET})
    plan = plan_for("qwen7b", env, "sft.report_to=['tensorboard']", "swanlab.workspace=team", run_id="abc")
    argv = plan.argv
    assert argv[:2] == ["swift", "sft"]
    assert flag(argv, "report_to") == ["tensorboard", "swanlab"]
    assert flag(argv, "swanlab_project") == ["mh-sft"]
    assert flag(argv, "swanlab_workspace") == ["team"]
    assert flag(argv, "swanlab_exp_name") == ["mh-sft-qwen2p5-7b-lora"]
    assert flag(argv, "swanlab_mode") == ["cloud"]
    assert "--swanlab_token" not in argv and not any(SECRET in t for t in argv)
    assert flag(argv, "output_dir") == [str(workdir / "output" / "mh-sft-7b-lora")]
    assert plan.env == {
        "CUDA_VISIBLE_DEVICES": "0",
        "NPROC_PER_NODE": "1",
        "SWANLAB_RUN_ID": "abc",
        "SWANLAB_RUN_RESUME": "allow",
    }
    assert "SWANLAB_PROJECT" not in plan.child_env(env)
    assert plan.secrets == ("SWANLAB_API_KEY",)
    assert all(f"--{k}" in argv for k in ("bf16", "packing", "gradient_checkpointing"))
    assert flag(argv, "bf16") == ["true"]


def test_exp_name_defaults_to_recipe_name_and_hosts_go_to_env(workdir: Path) -> None:
    local_recipe(workdir)
    write(workdir / "r2.toml", 'extends = "r.toml"\n[swanlab]\napi_host = "http://127.0.0.1:9"\nlog_dir = "logs"\n')
    plan = plan_for("r2.toml")
    assert flag(plan.argv, "swanlab_exp_name") == ["r2"]
    assert plan.env["SWANLAB_API_HOST"] == "http://127.0.0.1:9"
    assert plan.env["SWANLAB_LOG_DIR"] == str(workdir / "logs")


def test_shell_line_is_pasteable_and_references_secrets(workdir: Path) -> None:
    env = Environment(values={"SWANLAB_API_KEY": SECRET, "MODELSCOPE_API_TOKEN": "ms_" + "x" * 20})
    plan = plan_for("qwen7b", env, "sft.system=You are 'helpful'", run_id="rid")
    line = plan.shell_line()
    assert SECRET not in line and "ms_xxxx" not in line
    assert 'SWANLAB_API_KEY="$SWANLAB_API_KEY"' in line and 'MODELSCOPE_API_TOKEN="$MODELSCOPE_API_TOKEN"' in line
    tokens = shlex.split(line.replace("\\\n", " "))
    start = tokens.index("swift")
    assert tokens[start:] == plan.argv
    assert "CUDA_VISIBLE_DEVICES=0" in tokens[:start]


def test_a_secret_expanded_into_argv_is_refused(workdir: Path) -> None:
    env = Environment(values={"HF_TOKEN": SECRET})
    with pytest.raises(MhsftError) as err:
        plan_for("qwen7b", env, "sft.system=${HF_TOKEN}")
    assert "HF_TOKEN" in err.value.message and SECRET not in err.value.message


def test_missing_local_inputs_are_reported(workdir: Path) -> None:
    local_recipe(workdir)
    assert plan_for("r.toml").missing_inputs() == []
    (workdir / "data" / "train.jsonl").unlink()
    assert plan_for("r.toml").missing_inputs() == [str(workdir / "data" / "train.jsonl")]


def test_redaction_catches_json_escaped_spellings() -> None:
    from mhsft.environment import redact

    secret = 'hf_ab"cd\\é-EFGH'
    text = json.dumps({"auth": secret}) + " " + json.dumps(secret, ensure_ascii=False) + " " + secret
    assert secret not in redact(text, [secret]) and "EFGH" not in redact(text, [secret])


def test_a_secret_copied_literally_into_a_table_value_is_refused(workdir: Path) -> None:
    secret = 'hf_ab"cdEFGH1234'
    env = Environment(values={"HF_TOKEN": secret})
    write(workdir / "t.toml", 'extends = "qwen7b"\n[sft]\nmodel_kwargs = {auth = ' + json.dumps(secret) + "}\n")
    with pytest.raises(MhsftError, match="HF_TOKEN would appear"):
        plan_for("t.toml", env)


def test_a_short_common_secret_value_does_not_block_unrelated_runs(workdir: Path) -> None:
    local_recipe(workdir)
    plan = plan_for("r.toml", Environment(values={"MY_DB_PASSWORD": "train"}))
    assert plan.argv[:2] == ["swift", "sft"]


def test_the_plan_says_which_reporters_and_why(workdir: Path) -> None:
    local_recipe(workdir)
    summary = dict(plan_for("r.toml").summary)
    assert summary["reporters"] == "tensorboard swanlab (ms-swift's default + swanlab)"
    summary = dict(plan_for("r.toml", None, "sft.report_to=['wandb']").summary)
    assert summary["reporters"] == "wandb swanlab (the recipe's report_to + swanlab)"


def test_the_plan_of_a_multi_node_recipe_shows_nodes_rank_and_master(workdir: Path) -> None:
    local_recipe(workdir)
    write(
        workdir / "multi.toml",
        'extends = "r.toml"\n[launch]\ngpus = "0,1,2,3"\nnproc_per_node = 4\nnnodes = "${WORLD_SIZE:-2}"\n'
        'node_rank = "${RANK:-0}"\nmaster_addr = "10.1.2.3"\nmaster_port = 29600\n',
    )
    plan = plan_for("multi.toml", Environment(values={"RANK": "1"}))
    assert dict(plan.summary)["GPUs"] == (
        "2 node(s) x 4 process(es) per node (GPUs 0,1,2,3), node rank 1, master 10.1.2.3:29600"
    )
    assert plan.env["NNODES"] == "2" and plan.env["NODE_RANK"] == "1"
    write(workdir / "nomaster.toml", 'extends = "r.toml"\n[launch]\nnnodes = 2\n')
    assert dict(plan_for("nomaster.toml").summary)["GPUs"] == (
        "2 node(s) x 1 process(es) per node (GPUs all visible), node rank 0, "
        "master 127.0.0.1:29500 (torchrun's default: set [launch] master_addr)"
    )
    assert dict(plan_for("r.toml").summary)["GPUs"] == "all visible x 1 process(es)"


def test_negative_floats_are_rendered_as_values_not_options(workdir: Path) -> None:
    local_recipe(workdir)
    argv = plan_for("r.toml", None, "sft.learning_rate=-1e-5", "sft.max_steps=-1").argv
    assert flag(argv, "learning_rate") == ["-0.00001"] and flag(argv, "max_steps") == ["-1"]


def test_rendering_refuses_option_like_values_from_any_source(workdir: Path) -> None:
    with pytest.raises(MhsftError, match=r"swift deploy --served_model_name: the value \('-h'\) starts with a dash"):
        argv_for("deploy", {"served_model_name": "-h"}, workdir)
    assert argv_for("infer", {"adapters": ["-ckpt"]}, workdir) == ["--adapters", str(workdir / "-ckpt")]
