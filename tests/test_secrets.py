"""Secrets: which names count, which values are hidden, which child gets which secret, the hub login preflight,
and redaction of everything mhsft prints (usage errors and tracebacks of bugs included)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mhsft.environment import Environment, is_secret_key, is_secret_name, redact
from mhsft.recipe.plan import command_plan
from mhsft.recipe.swift_args import specs
from mhsft.trained.deploy import API_KEY_VAR

from support.environment import SECRET, loopback_only
from support.hub_server import HubStandIn
from support.running import local_recipe, mhsft, write

GOOD_MS = "ms-good-token-0123456789"
# names from ms-swift 4.6's own environment variables (os.environ / get_env_args in the installed source)
SWIFT_SETTINGS = [
    "IMAGE_MAX_TOKEN_NUM",
    "IMAGE_MIN_TOKEN_NUM",
    "VIDEO_MAX_TOKEN_NUM",
    "VIDEO_MIN_TOKEN_NUM",
    "MAX_PIXELS",
    "VIDEO_MAX_PIXELS",
    "TOKENIZERS_PARALLELISM",
    "TTS_TOKENIZER_PATH",
    "GENERATIVE_RERANKER_POSITIVE_TOKEN",
    "GENERATIVE_RERANKER_NEGATIVE_TOKEN",
    "MAX_NEGATIVE_SAMPLES",
    "NPROC_PER_NODE",
    "CUDA_VISIBLE_DEVICES",
    "SWIFT_MAX_DOWNLOAD_SIZE_MB",
    "MAX_TOKENS",
    "KEYS_PATH",
    "PASSTHROUGH_MODE",
]
SECRET_NAMES = [
    "SWANLAB_API_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "MODELSCOPE_API_TOKEN",
    "OPENAI_API_KEY",
    "DASHSCOPE_API_KEY",
    "WANDB_API_KEY",
    "GITHUB_TOKEN",
    "MHSFT_DEPLOY_API_KEY",
    "DB_PASSWORD",
    "SMTP_PASS",
    "AWS_SECRET_ACCESS_KEY",
    "GCP_CREDENTIALS",
    "MY_CUSTOM_TOKEN",
    "my_lower_secret",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_names_whose_last_word_is_a_secret_word_are_secrets(name: str) -> None:
    assert is_secret_name(name) and is_secret_key("env", name)


@pytest.mark.parametrize("name", SWIFT_SETTINGS)
def test_swift_settings_that_merely_contain_token_or_key_are_not(name: str) -> None:
    assert not is_secret_name(name) and not is_secret_key("env", name)


def test_secret_swift_arguments_are_exactly_the_token_and_key_ones() -> None:
    found = {k for command in ("sft", "infer", "deploy", "export") for k in specs(command) if is_secret_key("sft", k)}
    assert found == {"hub_token", "swanlab_token", "swanlab_secret", "api_key"}  # not reft_layer_key & co.


@pytest.mark.parametrize("value", ["1024", "true", "False", "0.5", "1e-4", "short", "-12345678", "yes"])
def test_values_that_cannot_be_secrets_are_never_masked(value: str) -> None:
    text = f"--max_length {value} --flag {value}"
    assert redact(text, [value]) == text


def test_a_token_setting_in_env_is_accepted_and_a_numeric_secret_masks_nothing(workdir: Path, env) -> None:
    local_recipe(workdir, 'max_length = 1024\n[env]\nIMAGE_MAX_TOKEN_NUM = "1024"\nVIDEO_MAX_TOKEN_NUM = "128"\n')
    write(workdir / ".env", "SOME_SERVICE_TOKEN=1024\n")
    result = mhsft("train", "r.toml", "--dry-run", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "--max_length 1024" in result.stdout and "IMAGE_MAX_TOKEN_NUM=1024" in result.stdout


def test_a_secret_with_both_quotes_is_masked_in_repr_built_messages(workdir: Path, env) -> None:
    secret = "sk-a'b\"c\\d-0123456789"
    result = mhsft(
        "validate", "qwen7b", "--set", f"nonsense{secret}", env=env | {"SWANLAB_API_KEY": secret}, cwd=workdir
    )
    assert result.returncode == 2 and "expected section.key=value" in result.stderr
    assert "0123456789" not in result.stderr + result.stdout and "****" in result.stderr


def test_usage_errors_printed_by_the_cli_parser_are_masked(workdir: Path, env) -> None:
    result = mhsft("train", "qwen7b", "--preflight-timeout", SECRET, env=env | {"SWANLAB_API_KEY": SECRET}, cwd=workdir)
    assert result.returncode == 2 and "--preflight-timeout" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_a_bug_prints_a_masked_traceback_and_exits_non_zero(workdir: Path, env) -> None:
    """A stand-in bug: an exception carrying secrets (one from .env only) raised inside a command."""
    write(workdir / ".env", f"HF_TOKEN=hf_{SECRET}\n")
    code = (
        "import os, mhsft.launch as launch, mhsft.cli as cli\n"
        "def bug(*args):\n"
        "    raise RuntimeError('boom ' + os.environ['SWANLAB_API_KEY'] + ' ' + repr('hf_' + os.environ['S2']))\n"
        "launch.load_recipe = bug\n"
        "cli.main()\n"
    )
    result = mhsft_code(code, ["validate", "qwen7b"], env | {"SWANLAB_API_KEY": SECRET, "S2": SECRET}, workdir)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: boom ****" in result.stderr and "a bug" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def mhsft_code(code: str, args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


EVERYTHING = {
    "SWANLAB_API_KEY": SECRET,
    "MODELSCOPE_API_TOKEN": f"ms-{SECRET}",
    "HF_TOKEN": f"hf-{SECRET}",
    "MY_CUSTOM_TOKEN": f"custom-{SECRET}",
    "DB_PASSWORD": f"db-{SECRET}",
    API_KEY_VAR: f"deploy-{SECRET}",
}


def dotenv(workdir: Path) -> None:
    write(workdir / ".env", "".join(f"{k}={v}\n" for k, v in EVERYTHING.items()) + "PLAIN_SETTING=kept\n")


def child_secrets(call: dict) -> set[str]:
    return {k for k, v in call["env"].items() if SECRET in v}


def test_a_local_sft_gets_only_the_swanlab_key_and_the_offline_settings(workdir: Path, env, fake_swift) -> None:
    local_recipe(workdir)
    dotenv(workdir)
    assert mhsft("train", "r.toml", env=env, cwd=workdir).returncode == 0
    (call,) = fake_swift.calls()
    assert child_secrets(call) == {"SWANLAB_API_KEY"} and call["env"]["PLAIN_SETTING"] == "kept"
    assert call["env"]["HF_HUB_OFFLINE"] == "1" and call["env"]["HF_DATASETS_OFFLINE"] == "1"
    assert call["argv"][call["argv"].index("--check_model") + 1] == "false"


@pytest.mark.parametrize(("extra", "token"), [("", "MODELSCOPE_API_TOKEN"), ("use_hf = true\n", "HF_TOKEN")])
def test_a_hub_sft_gets_that_hubs_token_and_nothing_else(workdir: Path, env, fake_swift, extra, token) -> None:
    local_recipe(workdir, extra)
    dotenv(workdir)
    result = mhsft("train", "r.toml", "--set", "sft.model=Qwen/Qwen2.5-0.5B", "--no-preflight", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    (call,) = fake_swift.calls()
    assert child_secrets(call) == {"SWANLAB_API_KEY", token}
    assert "HF_DATASETS_OFFLINE" not in call["env"] and "--check_model" not in call["argv"]
    (record,) = [json.loads(p.read_text()) for p in (workdir / ".mhsft" / "runs").glob("*.json")]
    assert record["secrets"] == ["SWANLAB_API_KEY", token]


def test_export_push_gets_only_that_hubs_token(workdir: Path, env, fake_swift) -> None:
    local_recipe(workdir)
    assert mhsft("train", "r.toml", env=env, cwd=workdir).returncode == 0
    dotenv(workdir)
    assert mhsft("export", "--push", "modelscope:alice/x", env=env, cwd=workdir).returncode == 0
    assert mhsft("export", "--merge-lora", "--overwrite", env=env, cwd=workdir).returncode == 0
    push, merge = [c for c in fake_swift.calls() if c["argv"][0] == "export"]
    assert child_secrets(push) == {"MODELSCOPE_API_TOKEN"} and "HF_DATASETS_OFFLINE" not in push["env"]
    assert child_secrets(merge) == set() and merge["env"]["HF_DATASETS_OFFLINE"] == "1"


def test_deploy_gets_only_its_api_key(workdir: Path) -> None:
    environment = Environment(values=EVERYTHING | {"PATH": "/bin"})
    (workdir / "ckpt").mkdir()
    write(workdir / "ckpt" / "args.json", json.dumps({"model": str(workdir)}))
    plan = command_plan(
        "deploy",
        {"adapters": [str(workdir / "ckpt")]},
        environment,
        workdir,
        recipe=None,
        summary=[],
        secrets=[API_KEY_VAR],
    )
    child = plan.child_env(environment)
    assert {k for k, v in child.items() if SECRET in v} == {API_KEY_VAR} and child["PATH"] == "/bin"
    write(workdir / "ckpt" / "args.json", json.dumps({"model": "Qwen/Qwen2.5-0.5B"}))  # a hub model: its token too
    plan = command_plan("deploy", {"adapters": [str(workdir / "ckpt")]}, environment, workdir, recipe=None, summary=[])
    assert {k for k, v in plan.child_env(environment).items() if SECRET in v} == {"MODELSCOPE_API_TOKEN"}


@pytest.fixture
def hub():
    server = HubStandIn().start()
    yield server
    server.stop()


def hub_train(
    workdir: Path, env: dict, token: str, endpoint: str, model: str = "Qwen/Qwen2.5-0.5B", timeout="5", prefix=()
):
    local_recipe(workdir)
    started = time.monotonic()
    result = subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "mhsft",
            "train",
            "r.toml",
            "--set",
            f"sft.model={model}",
            "--preflight-timeout",
            timeout,
        ],
        env=env | {"MODELSCOPE_API_TOKEN": token, "MODELSCOPE_ENDPOINT": endpoint},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, time.monotonic() - started


def test_a_hub_run_logs_in_first_with_modelscopes_sdk(workdir: Path, env, fake_swift, hub) -> None:
    result, _ = hub_train(workdir, env, GOOD_MS, hub.url)
    assert result.returncode == 0, result.stderr
    assert f"modelscope ok: MODELSCOPE_API_TOKEN accepted by {hub.url} for alice" in result.stderr
    assert ("POST", "/api/v1/login") in hub.requests and len(fake_swift.calls()) == 1
    assert not (Path(env["HOME"]) / ".modelscope").exists()  # the preflight's login saved nothing for the user


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("rejected", "MODELSCOPE_API_TOKEN was rejected by"),
        ("dns", "http://modelscope.invalid cannot be resolved (DNS)"),
        ("refused", "refused the connection"),
        ("hanging", "gave no complete answer within 3 s during the modelscope login"),
    ],
)
def test_a_failing_hub_login_stops_before_swift_with_the_cause(workdir, env, fake_swift, hub, case, expected) -> None:
    token, url, prefix = GOOD_MS, hub.url, []
    if case == "rejected":
        token = f"ms-{SECRET}"
    elif case == "dns":  # in a loopback-only network namespace, so that no lookup leaves the machine
        url, prefix = "http://modelscope.invalid", loopback_only()
        if not prefix:
            pytest.skip("a DNS failure is tested only where `unshare -n` is allowed (no lookup may leave the machine)")
    elif case == "refused":
        url = "http://127.0.0.1:9"
    else:
        hub.behaviour = "hang"
    result, elapsed = hub_train(workdir, env, token, url, timeout="3", prefix=prefix)
    assert result.returncode == 3, result.stderr
    assert "hub preflight failed (modelscope login)" in result.stderr and expected in result.stderr
    assert "Fix:" in result.stderr and "Traceback" not in result.stderr and SECRET not in result.stderr
    assert fake_swift.calls() == [] and elapsed < 3 + 3


def test_a_local_run_makes_no_hub_login_and_passes_no_token(workdir: Path, env, fake_swift, hub) -> None:
    result, _ = hub_train(workdir, env, GOOD_MS, hub.url, model="model")
    assert result.returncode == 0, result.stderr
    assert hub.requests == [] and "MODELSCOPE_API_TOKEN" not in fake_swift.calls()[0]["env"]


def test_doctor_says_which_runs_take_the_hub_token(workdir: Path, env) -> None:
    local_recipe(workdir)
    write(workdir / ".env", f"MODELSCOPE_API_TOKEN=ms-{SECRET}\n")
    report = json.loads(mhsft("doctor", "r.toml", "--json", "--timeout", "1", env=env, cwd=workdir).stdout)
    by_name = {c["name"]: c for c in report["checks"]}
    assert "only to runs that name a hub id" in by_name["MODELSCOPE_API_TOKEN"]["detail"]
    assert "local" in by_name["hub token"]["detail"] and "gets no hub token" in by_name["hub token"]["detail"]
    write(workdir / "h.toml", 'extends = "r.toml"\n[sft]\nmodel = "Qwen/Qwen2.5-0.5B"\n')
    report = json.loads(mhsft("doctor", "h.toml", "--json", "--timeout", "1", env=env, cwd=workdir).stdout)
    detail = {c["name"]: c for c in report["checks"]}["hub token"]["detail"]
    assert "Qwen/Qwen2.5-0.5B" in detail and "MODELSCOPE_API_TOKEN" in detail


def test_a_hugging_face_run_logs_in_with_huggingface_hub(workdir: Path, env, hub) -> None:
    hub.tokens["hf_good_token_0123456789"] = "bob"
    local_recipe(workdir, "use_hf = true\n")
    args = ("preflight", "r.toml", "--set", "sft.model=Qwen/Qwen2.5-0.5B")
    good = mhsft(*args, env=env | {"HF_TOKEN": "hf_good_token_0123456789", "HF_ENDPOINT": hub.url}, cwd=workdir)
    assert good.returncode == 0 and f"hf ok: HF_TOKEN accepted by {hub.url} for bob" in good.stderr
    bad = mhsft(*args, env=env | {"HF_TOKEN": f"hf_{SECRET}", "HF_ENDPOINT": hub.url}, cwd=workdir)
    assert bad.returncode == 3 and "HF_TOKEN was rejected" in bad.stderr and SECRET not in bad.stderr
    assert ("GET", "/api/whoami-v2") in hub.requests
