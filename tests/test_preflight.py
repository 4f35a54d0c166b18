"""SwanLab preflight: the real swanlab SDK against a SwanLab stand-in on 127.0.0.1, before any swift starts."""

from __future__ import annotations

import socket
import time

import pytest

from support.environment import SECRET
from support.running import mhsft, write
from support.swanlab_server import SwanLabCloud
from support.waiting import scaled

GOOD = "good-key-0123456789"


@pytest.fixture
def cloud():
    server = SwanLabCloud().start()
    yield server
    server.stop()


def cloud_recipe(workdir, url: str, extra: str = "") -> str:
    write(workdir / "data" / "train.jsonl", "{}\n")
    write(
        workdir / "c.toml",
        f'[swanlab]\nproject = "mh-sft"\napi_host = "{url}"\n{extra}\n'
        '[sft]\nmodel = "Qwen/Qwen2.5-7B-Instruct"\ndataset = ["data/train.jsonl"]\noutput_dir = "out"\n',
    )
    return "c.toml"


def train(workdir, env, *args: str, key: str | None = GOOD, timeout: str | None = None):
    """`mhsft train` with a key; without `timeout`, the preflight's default bound (scaled in `env`)."""
    e = env | ({"SWANLAB_API_KEY": key} if key else {})
    started = time.monotonic()
    bound = ["--preflight-timeout", timeout] if timeout else []
    result = mhsft("train", *args, *bound, env=e, cwd=workdir)
    return result, time.monotonic() - started


def test_valid_key_passes_with_one_line_and_starts_swift(workdir, env, fake_swift, cloud) -> None:
    result, _ = train(workdir, env, cloud_recipe(workdir, cloud.url))
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stderr.splitlines() if ln.startswith("swanlab ok:"))
    assert f"user=alice workspace=alice project=mh-sft (new) host={cloud.url}" in line
    assert len(fake_swift.calls()) == 1
    assert ("POST", "/api/login/api_key") in [(m, p) for m, p, _ in cloud.requests]
    assert any(h.get("authorization") == GOOD for _, _, h in cloud.requests)  # the key went in the header


def test_existing_project_in_team_workspace(workdir, env, fake_swift, cloud) -> None:
    cloud.projects.add("team/mh-sft")
    result, _ = train(workdir, env, cloud_recipe(workdir, cloud.url, 'workspace = "team"'))
    assert result.returncode == 0
    assert "workspace=team project=mh-sft host=" in result.stderr  # exists: no "(new)"


def test_inaccessible_workspace_fails(workdir, env, fake_swift, cloud) -> None:
    result, _ = train(workdir, env, cloud_recipe(workdir, cloud.url, 'workspace = "strangers"'))
    assert result.returncode == 3 and "workspace 'strangers' is not accessible" in result.stderr
    assert fake_swift.calls() == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("case", "expected", "bound"),
    [
        ("rejected", "the API key was rejected by", 8),
        ("server 500", "answered HTTP 500", 8),
        ("refused", "refused (nothing listens there)", 8),
        ("hanging", "within 3 s", 3 + 3),  # "did not answer within 3 s (timed out)"
        ("no key", "no SwanLab API key found", 8),
    ],
)
def test_failures_exit_3_fast_with_the_cause(workdir, env, fake_swift, cloud, case, expected, bound) -> None:
    url, key = cloud.url, GOOD
    if case == "rejected":
        key = SECRET
    elif case == "server 500":
        cloud.behaviour = "500"
    elif case == "refused":
        url = f"http://127.0.0.1:{free_port()}"
    elif case == "hanging":
        cloud.behaviour, cloud.delay = "hang", 30
    elif case == "no key":
        key = None
    result, elapsed = train(
        workdir, env, cloud_recipe(workdir, url), key=key, timeout="3" if case == "hanging" else None
    )
    assert result.returncode == 3, result.stderr
    assert expected in result.stderr and "Fix:" in result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stderr + result.stdout
    assert elapsed < scaled(bound), f"{case} took {elapsed:.1f} s"
    assert fake_swift.calls() == []
    assert not (workdir / ".mhsft").exists()


def test_no_preflight_skips_with_a_warning(workdir, env, fake_swift) -> None:
    result, _ = train(workdir, env, cloud_recipe(workdir, "http://127.0.0.1:9"), "--no-preflight")
    assert result.returncode == 0 and "--no-preflight" in result.stderr and "warning" in result.stderr
    assert len(fake_swift.calls()) == 1


def test_swanlab_project_pitfall_in_dotenv(workdir, env, fake_swift, cloud) -> None:
    write(workdir / ".env", f"SWANLAB_API_KEY={GOOD}\nSWANLAB_PROJECT=mh-sft\n")
    result, _ = train(workdir, env, cloud_recipe(workdir, cloud.url), key=None)
    assert result.returncode == 3 and "SWANLAB_PROJECT is set" in result.stderr
    assert fake_swift.calls() == []


def test_key_saved_by_swanlab_login_is_found(workdir, env, fake_swift, cloud) -> None:
    write(
        workdir.parent / "home" / ".swanlab" / ".netrc",
        f"machine {cloud.url}\n  login {cloud.url}\n  password {GOOD}\n",
    )
    result = mhsft("preflight", cloud_recipe(workdir, cloud.url), env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "user=alice" in result.stderr


def test_local_mode_checks_the_log_dir(workdir, env, fake_swift) -> None:
    write(workdir / "data" / "train.jsonl", "{}\n")
    write(
        workdir / "l.toml",
        '[swanlab]\nmode = "local"\nlog_dir = "logs/swan"\n[sft]\nmodel = "m/m"\ndataset = ["data/train.jsonl"]\n',
    )
    result = mhsft("preflight", "l.toml", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert f"mode=local project=mhsft log_dir={workdir / 'logs' / 'swan'}" in result.stderr
    write(workdir / "a-file", "")  # a folder cannot be made under a file, even by root
    result = mhsft("preflight", "l.toml", "--set", "swanlab.log_dir=a-file/x", env=env, cwd=workdir)
    assert result.returncode == 3 and "not writable" in result.stderr


@pytest.mark.parametrize(
    ("behaviour", "step"),
    [
        ("stall_lookup", "during the workspace and project lookup"),
        ("trickle_login", "during the login"),
        ("huge_login", "during the login"),
        ("hang", ""),
    ],
)
def test_a_stall_after_any_step_ends_within_the_timeout_and_says_so(
    workdir, env, fake_swift, cloud, behaviour, step
) -> None:
    cloud.behaviour, cloud.delay = behaviour, 30
    started = time.monotonic()
    result = mhsft(
        "preflight",
        cloud_recipe(workdir, cloud.url),
        "--preflight-timeout",
        "4",
        env=env | {"SWANLAB_API_KEY": GOOD},
        cwd=workdir,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    assert "SwanLab preflight failed" in result.stderr and "Fix:" in result.stderr and step in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 4 + scaled(2), f"{behaviour}: {elapsed:.1f} s"  # the timeout, plus mhsft's own start-up (~0.3 s)


def test_the_default_bound_comes_from_mhsft_preflight_timeout(workdir, env, fake_swift, cloud) -> None:
    cloud.behaviour, cloud.delay = "hang", 30
    recipe = cloud_recipe(workdir, cloud.url)
    keyed = env | {"SWANLAB_API_KEY": GOOD, "MHSFT_PREFLIGHT_TIMEOUT": "2"}
    result = mhsft("preflight", recipe, env=keyed, cwd=workdir)
    assert result.returncode == 3 and "within 2 s" in result.stderr, result.stderr  # either stall message
    result = mhsft("preflight", recipe, "--preflight-timeout", "3", env=keyed, cwd=workdir)
    assert result.returncode == 3 and "within 3 s" in result.stderr, result.stderr  # the option wins
    result = mhsft("train", recipe, env=keyed | {"MHSFT_PREFLIGHT_TIMEOUT": "soon"}, cwd=workdir)
    assert result.returncode == 2 and "MHSFT_PREFLIGHT_TIMEOUT" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and fake_swift.calls() == []


def test_a_missing_key_says_which_env_files_were_searched(workdir, env, cloud) -> None:
    recipe = str(workdir / cloud_recipe(workdir, cloud.url))
    sub = workdir / "experiments"
    sub.mkdir()
    result = mhsft("preflight", recipe, env=env, cwd=sub)
    assert result.returncode == 3
    assert f"there is no .env in {sub} or any folder above it" in result.stderr, result.stderr
    write(workdir / ".env", "HF_TOKEN=hf_x\n")  # found from the subfolder, but without the SwanLab key
    result = mhsft("preflight", recipe, env=env, cwd=sub)
    assert result.returncode == 3
    where = f"{workdir / '.env'} (the nearest .env from {sub})"
    assert f"SWANLAB_API_KEY is neither in the environment nor in {where}" in result.stderr, result.stderr
