"""`mhsft doctor`: is this machine, its secrets and (optionally) a recipe ready to train?

Local checks are instant; torch, SwanLab and ModelScope checks run in parallel threads, each bounded, so the
whole doctor answers within `timeout + ~5 s` even with no network. Secret values are never shown: only
where they came from and their last four characters.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mhsft import __version__
from mhsft.checks import FAIL, OK, WARN, Check, bounded
from mhsft.environment import Environment, hint
from mhsft.errors import MhsftError
from mhsft.recipe.hubs import hub_ids, hub_name, token_names
from mhsft.recipe.model import Recipe, SwanlabSettings
from mhsft.recipe.swift_args import swift_version
from mhsft.recipe.validate import FLASH_ATTN
from mhsft.runs.records import package_version
from mhsft.trained.backend import missing

SCHEMA_VERSION = 1
OPTIONAL = {
    "deepspeed": "DeepSpeed (deepspeed = zero2/zero3 recipes)",
    "vllm": "vLLM backend",
    "sglang": "SGLang backend",
    "lmdeploy": "LMDeploy backend",
    "evalscope": 'mhsft eval; pip install "mhsft[eval]"',
}
DISK_WARN_GB, DISK_FAIL_GB = 20, 2


def installed(module: str, dist: str | None = None) -> str | None:
    """The version of an importable package (without importing it), or None."""
    if importlib.util.find_spec(module) is None:
        return None
    return package_version(dist or module) or "installed"


def python_and_packages() -> list[Check]:
    """Python, mhsft, ms-swift (against the version mhsft was built for), flash-attn and the optional ones."""
    py = sys.version.split()[0]
    checks = [
        Check("python", OK, py) if sys.version_info >= (3, 10) else Check("python", FAIL, py, "use Python 3.10+"),
        Check("mhsft", OK, __version__),
    ]
    swift = package_version("ms-swift")
    built = swift_version()
    if swift is None:
        checks.append(Check("ms-swift", FAIL, "not installed", "pip install 'ms-swift>=4.6,<4.7'"))
    elif swift.split(".")[:2] != built.split(".")[:2]:
        checks.append(
            Check(
                "ms-swift",
                WARN,
                f"{swift}; mhsft's argument data is for {built}",
                "install ms-swift 4.6, or regenerate the data: python scripts/gen_swift_args.py",
            )
        )
    else:
        checks.append(Check("ms-swift", OK, swift))
    flash = installed("flash_attn", "flash-attn")
    checks.append(
        Check(
            "flash-attn",
            OK if flash else WARN,
            flash or "not installed",
            ""
            if flash
            else "pip install flash-attn --no-build-isolation (needs CUDA); the built-in "
            "7B/32B recipes use attn_impl = flash_attn and packing",
        )
    )
    for module, what in OPTIONAL.items():
        version = installed(module)
        checks.append(Check(module, OK, version or f"not installed (optional: {what})"))
    return checks


def torch_and_gpus() -> list[Check]:
    """torch's version, CUDA, and each GPU with its memory and bf16 support (imports torch)."""
    try:
        import torch
    except ImportError:
        return [Check("torch", FAIL, "not installed", "pip install torch (before ms-swift)")]
    checks = [Check("torch", OK, torch.__version__)]
    if not torch.cuda.is_available():
        return [
            *checks,
            Check(
                "cuda",
                WARN,
                "no CUDA GPU visible: training runs on the CPU (selftest only)",
                "check the NVIDIA driver, CUDA_VISIBLE_DEVICES and that torch is a CUDA build",
            ),
        ]
    checks.append(Check("cuda", OK, f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)"))
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        bf16 = props.major >= 8
        checks.append(
            Check(f"gpu {i}", OK, f"{props.name}, {props.total_memory / 2**30:.0f} GiB, bf16 {'yes' if bf16 else 'no'}")
        )
    return checks


def dotenv_and_tokens(environment: Environment) -> list[Check]:
    """.env presence and permissions, and which hub tokens are set (source and last 4 characters only)."""
    checks = []
    path = environment.dotenv_path
    if path is None:
        checks.append(
            Check(
                ".env",
                WARN,
                "no .env found here or in a parent folder",
                "cp .env.example .env and fill in SWANLAB_API_KEY; chmod 600 .env",
            )
        )
    else:
        mode = path.stat().st_mode
        loose = mode & (stat.S_IRWXG | stat.S_IRWXO)
        checks.append(
            Check(
                ".env",
                WARN if loose else OK,
                f"{path} (mode {stat.filemode(mode)})",
                f"chmod 600 {path}" if loose else "",
            )
        )
    for name, use in (
        ("MODELSCOPE_API_TOKEN", "private ModelScope models and --push modelscope:"),
        ("HF_TOKEN", "gated Hugging Face models and --push hf:"),
    ):
        value = environment.get(name)
        detail = (
            f"{hint(value)} from {environment.source(name)}; passed to swift only to runs that name a hub id "
            "(model, dataset) or push"
            if value
            else f"not set (needed for {use}): {environment.searched(name)}"
        )
        checks.append(Check(name, OK, detail))
    return checks


def hub_token(recipe: Recipe, environment: Environment, cwd: Path) -> Check:
    """Whether this recipe's `swift sft` gets a hub token (and so a login at preflight and at swift's start)."""
    args = recipe.args["sft"]
    ids = hub_ids(args, cwd)
    if not ids:
        return Check(
            "hub token",
            OK,
            "all inputs are local: swift sft gets no hub token and runs with the hubs' offline settings",
        )
    hub = hub_name(args, environment.values)
    names = token_names(hub, environment.values)
    if not names:
        return Check("hub token", OK, f"hub ids ({', '.join(ids)}) are fetched without a token (public only)")
    return Check(
        "hub token",
        OK,
        f"hub ids ({', '.join(ids)}): swift sft gets {', '.join(names)}; `mhsft train` logs in to {hub} first",
    )


def disk(output_dir: Path) -> Check:
    """Free space where checkpoints will be written."""
    probe = next((p for p in (output_dir, *output_dir.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free / 2**30
    status = FAIL if free < DISK_FAIL_GB else WARN if free < DISK_WARN_GB else OK
    return Check(
        "disk",
        status,
        f"{free:.0f} GiB free at {probe}",
        "" if status == OK else "free space or point [sft] output_dir at a bigger disk",
    )


def swanlab(
    settings: SwanlabSettings, environment: Environment, cwd: Path, timeout: float, needed: bool
) -> list[Check]:
    """SwanLab version, key source, server, login (cloud) or swanboard and log dir (local)."""
    from mhsft.preflight import swanlab as swanlab_check

    version = package_version("swanlab")
    board = package_version("swanboard")
    fix = "pip install 'swanlab[dashboard]'"
    checks = [
        Check("swanlab", OK, version) if version else Check("swanlab", FAIL, "not installed", fix),
        Check("swanlab local mode", OK, f"swanboard {board}")
        if board
        else Check("swanlab local mode", WARN, "swanboard missing: mode = local has no dashboard", fix),
    ]
    key, source, _host = swanlab_check.find_key(settings, environment, cwd)
    if settings.mode == "cloud" and not key:
        return [
            *checks,
            *swanlab_check.settings_pitfalls(environment, cwd),
            Check(
                "swanlab key",
                FAIL if needed else WARN,
                "no SwanLab API key (SWANLAB_API_KEY unset, no `swanlab login`)",
                "put SWANLAB_API_KEY=... in .env, or use mode = local",
            ),
        ]
    if key:
        checks.append(Check("swanlab key source", OK, f"{hint(key)} ({source})"))
    found = swanlab_check.run_checks(settings, environment, timeout, cwd)
    return checks + [c for c in found.checks if c.name != "swanlab key source"]


def modelscope(environment: Environment, timeout: float) -> list[Check]:
    """The ModelScope token, accepted by its hub SDK (whoami), and the hub reachable (repo lookup)."""
    os.environ.setdefault("MODELSCOPE_API_MAX_RETRIES", "1")
    os.environ.setdefault("MODELSCOPE_API_TIMEOUT", str(max(1, int(timeout))))
    os.environ.setdefault("MODELSCOPE_API_CONNECT_TIMEOUT", str(max(1, int(timeout))))
    from modelscope_hub import HubApi
    from modelscope_hub.errors import AuthenticationError, HubError

    token = environment.get("MODELSCOPE_API_TOKEN")
    checks = []
    try:
        if token:
            user = HubApi(token=token).whoami()
            checks.append(Check("modelscope token", OK, f"accepted for user {user.username}"))
        HubApi().repo_exists("Qwen/Qwen2.5-0.5B-Instruct", "model")
        checks.append(Check("modelscope hub", OK, "reachable"))
    except AuthenticationError:
        checks.append(
            Check(
                "modelscope token",
                FAIL,
                "MODELSCOPE_API_TOKEN was rejected",
                "copy a current token from modelscope.cn (Access Tokens) into .env",
            )
        )
    except HubError as exc:
        checks.append(
            Check(
                "modelscope hub",
                WARN,
                f"unreachable ({type(exc).__name__})",
                "models and datasets given as hub ids cannot download; local paths still work",
            )
        )
    return checks


def recipe_needs(recipe: Recipe, found: list[Check]) -> list[Check]:
    """What this recipe needs from the machine: flash-attn for flash_attn/packing, bf16-capable GPUs."""
    sft = recipe.args["sft"]
    by_name = {c.name: c for c in found}
    checks = [Check("recipe", OK, f"{recipe.path} is valid")]
    if sft.get("attn_impl") in FLASH_ATTN and by_name.get("flash-attn", Check("", FAIL, "")).status != OK:
        checks.append(
            Check(
                "recipe flash-attn",
                FAIL,
                f"attn_impl = {sft['attn_impl']}"
                f"{' with packing' if sft.get('packing') else ''} but flash-attn is not installed",
                'pip install flash-attn --no-build-isolation, or set attn_impl = "sdpa" and packing = false',
            )
        )
    for section in ("infer", "deploy", "eval"):
        backend = recipe.args[section].get("infer_backend")
        install = missing(backend)
        if install:
            checks.append(
                Check(
                    f"recipe {section} backend",
                    FAIL,
                    f"[{section}] infer_backend = {backend}, but {backend} is not installed (swift would load the "
                    "model, then fail)",
                    f"{install}, or set another infer_backend",
                )
            )
    if sft.get("bf16") or sft.get("torch_dtype") == "bfloat16":
        gpus = [c for c in found if c.name.startswith("gpu ")]
        if not gpus:
            checks.append(Check("recipe bf16", WARN, "bf16 requested but no GPU is visible", "run on a GPU machine"))
        elif any("bf16 no" in c.detail for c in gpus):
            checks.append(
                Check(
                    "recipe bf16",
                    FAIL,
                    "bf16 requested but a GPU here has no bf16 support",
                    'set bf16 = false, fp16 = true and torch_dtype = "float16"',
                )
            )
    return checks


def last_data_check(recipe: Recipe, cwd: Path) -> Check:
    """The dataset gate's last result for this recipe here, and whether the data changed since (no tokenising)."""
    from mhsft.datagate.gate import last
    from mhsft.datagate.spec import gate_spec

    found = last(recipe, cwd)
    rerun = f"mhsft data check {recipe.path}"
    if found is None:
        return Check("recipe data", WARN, "not checked yet in this folder", rerun)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(found["checked_at"]))
    tokens = found["tokens"]
    detail = (
        f"checked {when}: {found['rows_read']} rows read, {found['rows_kept']} kept, {found['rows_dropped']} dropped, "
        f"{found['rows_truncated']} truncated; tokens median {tokens['median']}, max {tokens['max']}; "
        f"{found['steps_per_epoch']} steps per epoch"
    )
    try:
        changed = gate_spec(recipe, cwd).key != found["key"]
    except OSError:
        changed = True
    if changed:
        return Check("recipe data", WARN, f"{detail}; the data or its settings changed since", rerun)
    share = found["rows_dropped"] / found["rows_read"] if found["rows_read"] else 0.0
    if found["rows_kept"] == 0 or share > recipe.data_check.max_dropped:
        return Check("recipe data", FAIL, f"{detail}; over the [data_check] budget", f"{rerun} shows the causes")
    return Check("recipe data", OK, detail)


def run(
    recipe: Recipe | None, recipe_error: MhsftError | None, environment: Environment, timeout: float
) -> tuple[list[Check], float]:
    """Every check, the slow groups in parallel; returns the checks (in a stable order) and seconds taken."""
    started = time.monotonic()
    cwd = Path.cwd()
    settings = recipe.swanlab if recipe else SwanlabSettings(project="mhsft", mode="cloud", exp_name="doctor")
    output_dir = recipe.output_dir(cwd) if recipe else cwd
    with ThreadPoolExecutor(max_workers=3) as pool:
        torch_job = pool.submit(bounded, "torch", torch_and_gpus, timeout + 10)
        swan_job = pool.submit(
            bounded, "swanlab", lambda: swanlab(settings, environment, cwd, timeout, bool(recipe)), timeout + 5
        )
        ms_job = pool.submit(bounded, "modelscope", lambda: modelscope(environment, timeout), timeout + 5)
        checks = python_and_packages() + dotenv_and_tokens(environment)
        checks.append(disk(output_dir))
        checks += torch_job.result() + swan_job.result() + ms_job.result()
    if recipe_error is not None:
        checks.append(Check("recipe", FAIL, recipe_error.message, "fix the recipe (see `mhsft validate`)"))
    elif recipe is not None:
        checks += [*recipe_needs(recipe, checks), hub_token(recipe, environment, cwd), last_data_check(recipe, cwd)]
    return checks, time.monotonic() - started


def as_json(checks: list[Check], elapsed: float) -> dict:
    """The documented `mhsft doctor --json` document (schema_version 1)."""
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL)}
    return {
        "schema_version": SCHEMA_VERSION,
        "mhsft_version": __version__,
        "ok": counts[FAIL] == 0,
        "counts": counts,
        "elapsed_s": round(elapsed, 2),
        "checks": [c.as_dict() for c in checks],
    }
