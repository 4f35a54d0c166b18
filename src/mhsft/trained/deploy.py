"""`mhsft deploy`: `swift deploy` with a readiness wait, the URL and a curl example, clean Ctrl-C."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

from mhsft import ui
from mhsft.process.ports import free_port
from mhsft.recipe.plan import command_plan
from mhsft.recipe.values import check_options
from mhsft.trained.backend import ensure
from mhsft.trained.infer import backend_args
from mhsft.trained.target import Target, backend_option

API_KEY_VAR = "MHSFT_DEPLOY_API_KEY"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000


def models(base_url: str, api_key: str | None, timeout: float = 2.0) -> list[str] | None:
    """The model ids `GET {base_url}/models` lists, or None while the server is not answering."""
    request = urllib.request.Request(f"{base_url}/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return [m["id"] for m in json.load(response).get("data", [])]
    except (OSError, ValueError, KeyError):
        return None


def curl_example(base_url: str, model: str, with_key: bool) -> str:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
    auth = f' -H "Authorization: Bearer ${API_KEY_VAR}"' if with_key else ""
    return f"curl {base_url}/chat/completions -H 'Content-Type: application/json'{auth} -d {shlex.quote(body)}"


def wait_ready(pid: int, base_url: str, api_key: str | None, timeout: float, state: dict) -> None:
    """Poll until the server lists its models, then print how to use it; stop it if it never gets there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        found = models(base_url, api_key)
        if found is not None:
            state["ready"] = found
            ui.info(f"\nready: OpenAI-compatible API at {base_url} (models: {', '.join(found) or 'none listed'})")
            ui.info(f"  {curl_example(base_url, found[0] if found else 'default', bool(api_key))}")
            ui.info("Ctrl-C stops the server.")
            return
        time.sleep(0.5)
    state["timed_out"] = True
    ui.error(
        f"the server did not answer GET {base_url}/models within {timeout:g} s; stopping it. Raise "
        "--ready-timeout for large models."
    )
    os.killpg(pid, signal.SIGTERM)


def deploy(
    target: Target,
    *,
    backend: str | None,
    host: str | None,
    port: int | None,
    served_model_name: str | None,
    friendly: dict[str, object],
    ready_timeout: float,
    dry_run: bool,
) -> int:
    """Build and run the `swift deploy` plan; returns the exit code."""
    args = target.defaults("deploy")
    args["adapters"] = [str(target.checkpoint)]
    chosen = backend_option(backend, args.get("infer_backend"))
    host = host or str(args.get("host") or DEFAULT_HOST)
    port = port or int(args.get("port") or DEFAULT_PORT)
    actual = port if dry_run else free_port(port)
    if actual != port:
        ui.warn(f"port {port} is in use; serving on {actual} (swift would move there silently).")
    args |= check_options(
        "deploy",
        {
            "infer_backend": ("--backend", chosen),
            "host": ("--host", host),
            "port": ("--port", actual),
            "served_model_name": ("--served-model-name", served_model_name),
        },
    )
    args |= backend_args("deploy", chosen, friendly)
    api_key = target.environment.get(API_KEY_VAR)
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{actual}/v1"
    summary = [
        ("checkpoint", str(target.checkpoint)),
        ("backend", str(args.get("infer_backend", "transformers"))),
        ("listen", f"{host}:{actual}"),
        ("API key", f"required ({API_KEY_VAR})" if api_key else "none"),
    ]
    if not dry_run:
        ensure(args.get("infer_backend"), target.environment, "--backend")
    program = (sys.executable, "-m", "mhsft.deploy_entry") if api_key else None
    plan = command_plan(
        "deploy",
        args,
        target.environment,
        Path.cwd(),
        recipe=target.recipe,
        summary=summary,
        secrets=[API_KEY_VAR] if api_key else [],
        program=program,
    )
    state: dict = {}

    def watch(pid: int) -> None:
        threading.Thread(target=wait_ready, args=(pid, base_url, api_key, ready_timeout, state), daemon=True).start()

    code = target.run(plan, dry_run, watch=watch, redact_output=True, extra={"url": base_url})
    return 1 if state.get("timed_out") and code == 0 else code
