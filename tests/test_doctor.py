"""`mhsft doctor`: the JSON schema, .env and SWANLAB_PROJECT findings, secrets masked, bounded with no network."""

from __future__ import annotations

import json
import time

import pytest

from support.environment import SECRET
from support.running import mhsft, tiny_fixtures, write
from support.swanlab_server import SwanLabCloud
from support.waiting import scaled


def doctor(workdir, env, *args: str):
    started = time.monotonic()
    result = mhsft("doctor", "--json", *args, env=env, cwd=workdir, timeout=60)
    return result, json.loads(result.stdout), time.monotonic() - started


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_json_schema_and_exit_code(workdir, env) -> None:
    result, report, _ = doctor(workdir, env)
    assert set(report) == {"schema_version", "mhsft_version", "ok", "counts", "elapsed_s", "checks"}
    assert report["schema_version"] == 1
    assert set(report["counts"]) == {"ok", "warn", "fail"}
    assert sum(report["counts"].values()) == len(report["checks"])
    for check in report["checks"]:
        assert set(check) == {"name", "status", "detail", "fix"} and check["status"] in ("ok", "warn", "fail")
        assert check["status"] == "ok" or check["fix"], check
    names = by_name(report)
    for expected in (
        "python",
        "mhsft",
        "ms-swift",
        "torch",
        "flash-attn",
        "deepspeed",
        "vllm",
        "sglang",
        "lmdeploy",
        "evalscope",
        "swanlab",
        "swanlab local mode",
        ".env",
        "MODELSCOPE_API_TOKEN",
        "HF_TOKEN",
        "disk",
    ):
        assert expected in names, expected
    assert result.returncode == (0 if report["ok"] else 1)


def test_loose_dotenv_permissions_and_swanlab_project_are_flagged(workdir, env) -> None:
    dotenv = write(workdir / ".env", f"SWANLAB_API_KEY={SECRET}\nSWANLAB_PROJECT=mh-sft\n")
    dotenv.chmod(0o644)
    result, report, _ = doctor(workdir, env)
    names = by_name(report)
    assert names[".env"]["status"] == "warn" and "chmod 600" in names[".env"]["fix"]
    assert names["swanlab settings"]["status"] == "fail" and "SWANLAB_PROJECT" in names["swanlab settings"]["detail"]
    assert result.returncode == 1
    dotenv.chmod(0o600)
    dotenv.write_text(f"SWANLAB_API_KEY={SECRET}\n")
    _, report, _ = doctor(workdir, env)
    assert by_name(report)[".env"]["status"] == "ok"


def test_secrets_show_only_source_and_last_four(workdir, env) -> None:
    write(workdir / ".env", f"SWANLAB_API_KEY={SECRET}\nMODELSCOPE_API_TOKEN=ms-{SECRET}\n").chmod(0o600)
    result = mhsft("doctor", env=env | {"COLUMNS": "200"}, cwd=workdir, timeout=60)
    _, report, _ = doctor(workdir, env)
    text = result.stdout + result.stderr + json.dumps(report)
    assert SECRET not in text and SECRET[:-4] not in text
    assert f"****{SECRET[-4:]}" in by_name(report)["swanlab key source"]["detail"]
    assert ".env" in by_name(report)["MODELSCOPE_API_TOKEN"]["detail"]


def test_no_network_is_bounded_by_the_timeout_not_the_server(workdir, env) -> None:
    # the server hangs for 120 s; doctor's 5 s checks end long before (the figure: scripts/bench_preflight.py)
    hanging = SwanLabCloud(behaviour="hang", delay=120).start()
    try:
        e = env | {"SWANLAB_API_KEY": SECRET, "SWANLAB_API_HOST": hanging.url, "MODELSCOPE_API_TOKEN": "ms-x" * 5}
        _, report, elapsed = doctor(workdir, e, "--timeout", "5")
    finally:
        hanging.stop()
    assert elapsed < scaled(60), elapsed
    assert any(c["status"] == "fail" and "swanlab" in c["name"] for c in report["checks"])


@pytest.mark.parametrize(("recipe", "finding"), [("qwen7b", "recipe flash-attn"), ("tiny", None)])
def test_recipe_specific_needs(workdir, env, recipe, finding) -> None:
    if recipe == "tiny":  # a local recipe: doctor checks its inputs exist, as train does
        missing = by_name(doctor(workdir, env, recipe)[1])["recipe"]
        assert missing["status"] == "fail" and "does not exist" in missing["detail"]
        env = env | {"MHSFT_TINY_DIR": str(tiny_fixtures(workdir).fx.root)}
    _, report, _ = doctor(workdir, env, recipe)
    names = by_name(report)
    assert names["recipe"]["status"] == "ok"
    if finding:
        assert names[finding]["status"] == "fail" and "flash-attn is not installed" in names[finding]["detail"]
        assert names["swanlab key"]["status"] == "fail"  # a cloud recipe with no key
    else:
        assert not any(n.startswith("recipe ") for n in names if n != "recipe data")
    assert names["recipe data"]["status"] == "warn" and "not checked yet" in names["recipe data"]["detail"]


def test_an_invalid_recipe_is_a_failed_check(workdir, env) -> None:
    write(workdir / "bad.toml", 'extends = "qwen7b"\n[sft]\nlora_r = 8\n')
    result, report, _ = doctor(workdir, env, "bad.toml")
    assert result.returncode == 1
    assert by_name(report)["recipe"]["status"] == "fail" and "lora_rank" in by_name(report)["recipe"]["detail"]


def test_an_exported_swanlab_project_is_left_out_of_children_and_said_so(workdir, env) -> None:
    _, report, _ = doctor(workdir, env | {"SWANLAB_PROJECT": "mh-sft"})
    settings = by_name(report)["swanlab settings"]
    assert settings["status"] == "ok" and "leaves it out of swift's and the SDK's environment" in settings["detail"]
