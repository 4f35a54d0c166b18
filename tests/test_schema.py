"""Validation: exact ms-swift 4.6 names, types, choices, renames, secrets and required values."""

from __future__ import annotations

from pathlib import Path

import pytest

from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.recipe.load import load
from mhsft.recipe.validate import validate

from support.environment import SECRET
from support.running import write

ENV = Environment(values={"MY_KEY": SECRET})


def check(workdir: Path, body: str, *overrides: str):
    write(workdir / "r.toml", 'extends = "qwen7b"\n' + body)
    return validate(load("r.toml", ENV, overrides))


def failure(workdir: Path, body: str, *overrides: str) -> str:
    with pytest.raises(MhsftError) as err:
        check(workdir, body, *overrides)
    assert err.value.exit_code == 2
    return err.value.message


@pytest.mark.parametrize("name", ["qwen7b", "qwen32b", "local-file", "tiny"])
def test_every_builtin_recipe_is_valid(workdir: Path, name: str) -> None:
    recipe = validate(load(name, ENV))
    assert recipe.args["sft"]["tuner_type"] == "lora"
    assert recipe.warnings == ()


def test_qwen7b_recipe_matches_the_spec(workdir: Path) -> None:
    sft = validate(load("qwen7b", ENV)).args["sft"]
    expected = {
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 4,
        "learning_rate": 2e-4,
        "max_length": 3072,
        "packing": True,
        "attn_impl": "flash_attn",
        "bf16": True,
        "gradient_checkpointing": True,
        "save_steps": 200,
        "save_total_limit": 3,
        "logging_steps": 20,
        "dataset": ["CodyWhy/mh-sharegpt-20250820"],
    }
    assert {k: sft[k] for k in expected} == expected
    big = validate(load("qwen32b", ENV)).args["sft"]
    assert (
        big["model"],
        big["per_device_train_batch_size"],
        big["gradient_accumulation_steps"],
        big["max_length"],
    ) == ("Qwen/Qwen2.5-32B-Instruct", 2, 8, 4096)


def test_prefix_of_a_real_name_is_rejected_with_the_reason(workdir: Path) -> None:
    message = failure(workdir, "[sft]\nlora_r = 8\n")
    assert "r.toml, [sft] lora_r" in message and "`lora_rank`" in message and "silently" in message


def test_typo_gets_did_you_mean(workdir: Path) -> None:
    message = failure(workdir, "[sft]\nlearnig_rate = 1e-4\n")
    assert "Did you mean `learning_rate`?" in message


def test_unknown_keys_in_every_section(workdir: Path) -> None:
    assert "[infer] max_new_tokns" in failure(workdir, "[infer]\nmax_new_tokns = 3\n")
    assert "[swanlab] projet" in failure(workdir, '[swanlab]\nprojet = "x"\n')
    assert "[launch] gpu" in failure(workdir, '[launch]\ngpu = "0"\n')


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[sft]\nlora_rank = "8"\n', '[sft] lora_rank: expected an integer, got a string "8"'),
        ("[sft]\nbf16 = 1\n", "[sft] bf16: expected true or false, got an integer 1"),
        ("[sft]\nlearning_rate = true\n", "[sft] learning_rate: expected a number, got a boolean"),
        ("[sft]\nmodel = ['a', 'b']\n", "[sft] model: expected a string, got an array"),
        ('[sft]\ntorch_dtype = "fp8"\n', '[sft] torch_dtype: "fp8" is not one of bfloat16, float16, float32'),
        ('[swanlab]\nmode = "online"\n', '[swanlab] mode: "online" is not one of cloud, local, offline'),
        ('[infer]\ninfer_backend = "tgi"\n', '[infer] infer_backend: "tgi" is not one of'),
        ("[launch]\nnproc_per_node = 0\n", "[launch] nproc_per_node: must be >= 1"),
        ('[launch]\ngpus = "0"\nnproc_per_node = 2\n', "2 processes per node but gpus lists only 1"),
        ('[swanlab]\napi_host = "swanlab.local"\n', "[swanlab] api_host: 'swanlab.local' is not a URL"),
    ],
)
def test_wrong_types_and_choices_name_file_section_key(workdir: Path, body: str, expected: str) -> None:
    message = failure(workdir, body)
    assert message.startswith("r.toml, ")
    assert expected in message


def test_old_names_are_translated_with_a_warning(workdir: Path) -> None:
    recipe = check(
        workdir,
        '[sft]\ntrain_type = "full"\n[infer]\ninfer_backend = "pt"\n'
        '[deploy]\ninfer_backend = "lmdeploy"\ntp = 2\nsession_len = 4096\ncache_max_entry_count = 0.5\n',
    )
    assert recipe.args["sft"]["tuner_type"] == "full" and "train_type" not in recipe.args["sft"]
    assert recipe.args["infer"]["infer_backend"] == "transformers"
    assert (
        recipe.args["deploy"].items()
        >= {
            "infer_backend": "lmdeploy",
            "lmdeploy_tp": 2,
            "lmdeploy_session_len": 4096,
            "lmdeploy_cache_max_entry_count": 0.5,
        }.items()
    )
    assert len(recipe.warnings) == 5
    assert any("`train_type` is the old name of `tuner_type`" in w for w in recipe.warnings)
    vllm = check(workdir, '[deploy]\ninfer_backend = "vllm"\ntp = 2\n')
    assert vllm.args["deploy"]["vllm_tensor_parallel_size"] == 2


def test_names_without_a_safe_translation_are_rejected_with_the_new_name(workdir: Path) -> None:
    assert "torch_dtype" in failure(workdir, '[export]\nmerge_dtype = "bfloat16"\n')
    assert "lmdeploy_tp" in failure(workdir, "[infer]\ntp = 2\n")


@pytest.mark.parametrize(
    "body",
    [
        '[sft]\nhub_token = "{s}"\n',
        '[deploy]\napi_key = "{s}"\n',
        '[sft]\nswanlab_token = "{s}"\n',
        '[swanlab]\napi_key = "{s}"\n',
        '[env]\nHF_TOKEN = "{s}"\n',
        '[sft]\nhub_token = "${{MY_KEY}}"\n',
    ],
)
def test_literal_secrets_are_rejected_without_echoing_them(workdir: Path, body: str) -> None:
    message = failure(workdir, body.format(s=SECRET))
    assert ".env" in message
    assert SECRET not in message and SECRET[-8:] not in message


def test_required_values(workdir: Path) -> None:
    write(workdir / "nomodel.toml", '[sft]\ndataset = ["d"]\n')
    with pytest.raises(MhsftError, match=r"nomodel.toml, \[sft\] model: a model is required"):
        validate(load("nomodel.toml", ENV))
    assert "nothing to train on" in failure(workdir, "[sft]\ndataset = []\n")
    assert "an empty path" in failure(workdir, "[sft]\ndataset = ['', 'x']\n")
    assert "an empty path" in failure(workdir, '[sft]\noutput_dir = "  "\n')
    assert "project must not be empty" in failure(workdir, '[swanlab]\nproject = ""\n')


def test_packing_needs_flash_attention(workdir: Path) -> None:
    assert "packing needs flash attention" in failure(workdir, '[sft]\nattn_impl = "sdpa"\n')
    assert check(workdir, '[sft]\nattn_impl = "sdpa"\npacking = false\n').args["sft"]["packing"] is False


def test_swanlab_settings_live_in_their_own_section(workdir: Path) -> None:
    assert "live in [swanlab]" in failure(workdir, '[sft]\nswanlab_project = "p"\n')
    recipe = check(workdir, '[swanlab]\nworkspace = "team"\nexp_name = ""\n')
    assert recipe.swanlab.workspace == "team" and recipe.swanlab.exp_name == "r"


def test_broken_notification_methods_are_rejected(workdir: Path) -> None:
    assert "crash on ms-swift 4.6" in failure(workdir, '[swanlab]\nnotification_method = "slack"\nwebhook_url = "u"\n')
    ok = check(workdir, '[swanlab]\nnotification_method = "lark"\nwebhook_url = "https://hook"\n')
    assert ok.swanlab.notification_method == "lark"


def test_env_section_rules(workdir: Path) -> None:
    recipe = check(workdir, "[env]\nTOKENIZERS_PARALLELISM = false\nOMP_NUM_THREADS = 4\n")
    assert recipe.env == {"TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "4"}
    assert "[swanlab] project" in failure(workdir, '[env]\nSWANLAB_PROJECT = "p"\n')
    assert "[launch] gpus" in failure(workdir, '[env]\nCUDA_VISIBLE_DEVICES = "0"\n')


def test_launch_becomes_environment(workdir: Path) -> None:
    recipe = check(workdir, "[launch]\ngpus = [0, 1]\nnproc_per_node = 2\nmaster_port = 29501\n")
    assert recipe.launch_env == {"CUDA_VISIBLE_DEVICES": "0,1", "NPROC_PER_NODE": "2", "MASTER_PORT": "29501"}


def test_resolved_hash_changes_with_overrides(workdir: Path) -> None:
    a = check(workdir, "")
    b = check(workdir, "", "sft.lora_rank=4")
    assert a.sha256 != b.sha256 and len(a.sha256) == 64


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[sft]\nmodel = 2024-01-01\n", "got a date/time"),
        ("[sft]\nmodel_kwargs = {a = 2024-01-01}\n", "expected a table or a JSON string"),
        ('[sft]\nmodel = "a\\u0000b"\n', "NUL character"),
        ("[env]\nWHEN = 2024-01-01T10:00:00\n", "got a date/time"),
        ('[env]\nSWANLAB_EXPERIMENT = "x"\n', "JSON table"),
        ('[swanlab]\nproject = "my project"\n', "not a SwanLab project name"),
    ],
)
def test_values_swift_or_swanlab_would_choke_on(workdir: Path, body: str, expected: str) -> None:
    assert expected in failure(workdir, body)


def test_infer_dataset_becomes_val_dataset(workdir: Path) -> None:
    recipe = check(workdir, '[infer]\ndataset = ["val.jsonl"]\n')
    assert recipe.args["infer"]["val_dataset"] == ["val.jsonl"] and "dataset" not in recipe.args["infer"]
    assert any("interactive mode" in w for w in recipe.warnings)


def test_dashed_secret_keys_are_still_secrets(workdir: Path) -> None:
    message = failure(workdir, f'[sft]\nhub-token = "{SECRET}"\n')
    assert ".env" in message and SECRET not in message
    assert ".env" in failure(workdir, f'[deploy]\napi-key = "{SECRET}"\n')


def test_secret_variables_cannot_be_expanded_into_a_recipe(workdir: Path) -> None:
    message = failure(workdir, '[sft]\nmodel_kwargs = {auth = "${MY_KEY}"}\n')
    assert "MY_KEY" in message and SECRET not in message


def test_cached_dataset_alone_is_enough_to_train(workdir: Path) -> None:
    from mhsft.recipe.plan import train_plan

    (workdir / "cache").mkdir()
    recipe = check(workdir, "", "sft.dataset=[]", "sft.cached_dataset=['cache']")
    assert recipe.args["sft"]["cached_dataset"] == ["cache"]
    summary = dict(train_plan(recipe, ENV, workdir).summary)
    assert summary["cached dataset"] == str(workdir / "cache")
    assert "dataset" not in summary
    assert "nothing to train on" in failure(workdir, "", "sft.dataset=[]", "sft.cached_dataset=[]")


def test_a_whole_variable_takes_the_type_its_key_expects(workdir: Path) -> None:
    body = (
        '[launch]\nnnodes = "${WORLD_SIZE:-2}"\nnode_rank = "${RANK:-0}"\nmaster_addr = "${MASTER:-10.0.0.1}"\n'
        '[sft]\nlora_rank = "${R:-16}"\nlearning_rate = "${LR:-2e-4}"\n'
        'gradient_checkpointing = "${GC:-false}"\nsystem = "${SYS:-7}"\n'
    )
    write(workdir / "r.toml", 'extends = "qwen7b"\n' + body)
    recipe = validate(load("r.toml", Environment(values={"WORLD_SIZE": "4", "RANK": "3", "GC": "True"})))
    assert recipe.launch_env == {
        "CUDA_VISIBLE_DEVICES": "0",
        "NPROC_PER_NODE": "1",
        "NNODES": "4",
        "NODE_RANK": "3",
        "MASTER_ADDR": "10.0.0.1",
    }
    sft = recipe.args["sft"]
    assert (sft["lora_rank"], sft["learning_rate"], sft["gradient_checkpointing"]) == (16, 2e-4, True)
    assert type(sft["lora_rank"]) is int and sft["system"] == "7"  # a string key keeps the string


@pytest.mark.parametrize(
    ("body", "env", "expected"),
    [
        ('[launch]\nnnodes = "${WORLD_SIZE:-2}"\n', {"WORLD_SIZE": "two"}, '${WORLD_SIZE} expands to "two"'),
        ('[sft]\nlora_rank = "${RANK_X:-8.5}"\n', {}, '${RANK_X} expands to "8.5", but this key takes an integer'),
        ('[sft]\nbf16 = "${BF:-maybe}"\n', {}, '${BF} expands to "maybe", but this key takes true or false'),
        ('[sft]\nlearning_rate = "${LR:-fast}"\n', {}, "${LR}"),
        ('[sft]\nlora_rank = "${A:-1}${B:-2}"\n', {}, 'expected an integer, got a string "12"'),  # not one variable
        ('[launch]\nnode_rank = "${RANK:--1}"\n', {}, "must be >= 0, got -1"),
    ],
)
def test_a_variable_that_does_not_convert_is_named(workdir: Path, body: str, env: dict, expected: str) -> None:
    write(workdir / "r.toml", 'extends = "qwen7b"\n' + body)
    with pytest.raises(MhsftError) as err:
        validate(load("r.toml", Environment(values=env)))
    assert expected in err.value.message and "r.toml, [" in err.value.message


@pytest.mark.parametrize(
    "body",
    [
        '[sft]\ndataset = ["x", "--report_to", "none", "--lora_r", "4"]\n',
        '[sft]\nsystem = "--report_to=none"\n',
        '[sft]\nsystem = "-h please"\n',  # -h with a space is still swift's --help
        '[sft]\nmodel = "--"\n',  # the end-of-options marker
        '[sft]\ntemplate = "-x"\n',
        '[infer]\nresult_path = "--report_to"\n',
        '[swanlab]\nexp_name = "--report_to"\n',
    ],
)
def test_values_that_swift_would_read_as_options_are_refused(workdir: Path, body: str) -> None:
    message = failure(workdir, body)
    key = body.split("\n")[1].split(" =")[0]
    assert f"[{body[1 : body.index(']')]}] {key}: " in message and "read it as an option" in message


@pytest.mark.parametrize("addr", ["--rdzv_backend=c10d", "-m x", "a b", ""])
def test_master_addr_must_be_a_host_as_torchrun_reads_it_from_its_argv(workdir: Path, addr: str) -> None:
    assert "[launch] master_addr: " in failure(workdir, f'[launch]\nmaster_addr = "{addr}"\n')


def test_values_starting_with_a_dash_that_swift_reads_as_values_pass(workdir: Path) -> None:
    recipe = check(workdir, '[sft]\nmax_steps = -1\nsystem = "- be brief"\nlearning_rate = -1e-5\n')
    assert recipe.args["sft"]["max_steps"] == -1 and recipe.args["sft"]["system"] == "- be brief"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[sft]\nreport_to = 1\n", "[sft] report_to: expected a string (or an array of them), got an integer 1"),
        ("[sft]\ndataset = [1, 2]\n", "[sft] dataset: expected a string"),
        (f'[sft]\nsystem = "{"s" * (128 * 1024)}"\n', "[sft] system: the value is 128 KiB; Linux passes at most"),
        (f'[env]\nBIG = "{"e" * (130 * 1024)}"\n', "[env] BIG: the value is 130 KiB"),
        (f'[sft]\nmodel_kwargs = {{a = "{"k" * (128 * 1024)}"}}\n', "[sft] model_kwargs: the value is 128 KiB"),
        (f'[sft]\noutput_dir = "out/{"n" * 256}"\n', "[sft] output_dir: a file or folder name in this path"),
        (f'[sft]\ndataset = ["{"d" * 300}.jsonl"]\n', "[sft] dataset: a file or folder name in this path"),
    ],
)
def test_values_the_kernel_or_swift_cannot_take(workdir: Path, body: str, expected: str) -> None:
    assert expected in failure(workdir, body)


def test_an_option_like_value_is_named_by_its_head_only(workdir: Path) -> None:
    message = failure(workdir, f'[sft]\nsystem = "--{SECRET}={SECRET} tail"\n')
    assert "[sft] system: the value starts with a dash" in message
    assert "sk-test" not in message and "tail" not in message  # nothing of a value that names no option
    assert "[sft] system: the value ('--lora_r') starts" in failure(workdir, '[sft]\nsystem = "--lora_r=4"\n')


def test_every_problem_is_reported_in_one_run(workdir: Path) -> None:
    message = failure(workdir, "[sft]\nlearnin_rate = 1e-4\nnum_train_epoch = 2\n[swanlab]\nprojct = 'x'\n")
    assert message.startswith("r.toml has 3 problems; fix them all: (1) r.toml, [sft] learnin_rate:")
    assert "\n" not in message and "(3) r.toml, [swanlab] projct" in message
    for typo, fix in (
        ("learnin_rate", "learning_rate"),
        ("num_train_epoch", "num_train_epochs"),
        ("projct", "project"),
    ):
        assert f"{typo}:" in message and f"`{fix}`" in message


@pytest.mark.parametrize(
    ("body", "expected", "misleading"),
    [
        ("[launch]\nlora_rank = 8\n", "`lora_rank` is a `swift sft` argument: move it under [sft].", "`node_rank`"),
        (
            "[infer]\nlearning_rate = 1e-4\n",
            "`learning_rate` is a `swift sft` argument: move it under [sft].",
            "packing",
        ),
        ("[infer]\nbackend = 'vllm'\n", "Did you mean `infer_backend`?", "ddp_backend"),
        ("[deploy]\nbackend = 'vllm'\n", "Did you mean `infer_backend`?", "ddp_backend"),
        ("[sft]\ngpus = '0'\n", "`gpus` is a [launch] key: move it under [launch].", "Did you mean"),
        ("[launch]\nproject = 'p'\n", "`project` is a [swanlab] key: move it under [swanlab].", "Did you mean"),
        ("[swanlab]\nswanlab_mode = 'local'\n", "Write it as `mode`", "Did you mean"),
        ("[sft]\nswanlab_mode = 'local'\n", "write `mode = ...` there", "Did you mean"),
    ],
)
def test_a_key_in_the_wrong_section_names_its_section(workdir: Path, body: str, expected: str, misleading: str) -> None:
    message = failure(workdir, body)
    assert expected in message and misleading not in message


def test_a_swift_argument_above_every_table_says_move_it_under_sft(workdir: Path) -> None:
    message = failure(workdir, "learning_rate = 1e-4\n[sft]\nlora_rnk = 8\n")
    assert (
        "unknown section or top-level key `learning_rate`. `learning_rate` is a `swift sft` argument: move it "
        "under [sft]." in message
    )
    assert "lora_rnk" in message  # reported in the same run
