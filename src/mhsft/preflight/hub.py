"""The hub login swift does at start-up, done first by the preflight with the hub's own SDK.

ms-swift 4.6 logs in to ModelScope while it parses its arguments whenever MODELSCOPE_API_TOKEN is in its
environment, and a failed login kills it with a traceback. When a run passes a hub token to swift, the
preflight does the same login (`modelscope_hub.HubApi().login`, or `huggingface_hub.whoami` for Hugging
Face) with retries off, in a child process stopped at the timeout, and stops with exit 3 and the cause.
"""

from __future__ import annotations

import math
import tempfile
import threading
from typing import Any

from mhsft.checks import FAIL, OK, Check
from mhsft.environment import Environment, without_secrets
from mhsft.errors import PREFLIGHT, MhsftError
from mhsft.process import isolated
from mhsft.recipe.hubs import OFFLINE_ENV, TOKENS

ENDPOINTS = {"modelscope": "https://modelscope.cn", "hf": "https://huggingface.co"}
FIXES = {
    "rejected": "copy a current token into .env ({var}), or remove it if the run needs no private model",
    "network": "check the network, proxy and {endpoint_var}; a run with only local paths needs no hub",
}


def endpoint(hub: str, environment: Environment) -> str:
    """The hub's API address as its SDK will use it."""
    if hub == "hf":
        return (environment.get("HF_ENDPOINT") or ENDPOINTS["hf"]).rstrip("/")
    url = environment.get("MODELSCOPE_ENDPOINT") or environment.get("MODELSCOPE_DOMAIN") or ENDPOINTS["modelscope"]
    return (url if url.startswith("http") else f"https://{url}").rstrip("/")


def cause(exc: BaseException) -> str:
    """DNS, refused, timed out or unreachable, from a network exception's text."""
    text = str(exc)
    if "timed out" in text.lower() or isinstance(exc, TimeoutError):
        return "did not answer in time (timed out)"
    if "NameResolution" in text or "resolve" in text or "Name or service not known" in text:
        return "cannot be resolved (DNS)"
    if "refused" in text.lower():
        return "refused the connection (nothing listens there)"
    return f"is unreachable ({type(exc).__name__})"


def _login(hub: str, token: str) -> str:
    """The user name the hub's SDK logs in as; raises the SDK's own exceptions."""
    if hub == "modelscope":
        from modelscope_hub import HubApi

        return HubApi().login(token).username or "?"
    from huggingface_hub import whoami

    return str(whoami(token=token).get("name", "?"))


def login_in_child(args: dict[str, Any], emit: isolated.Emit) -> None:
    """In the child: the login, reported as one check."""
    hub, url, var = args["hub"], args["endpoint"], args["var"]
    name = f"{hub} login"
    emit("step", f"the {hub} login")
    try:
        user = _login(hub, args["token"])
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(exc, "status_code", None)
        rejected = status in (401, 403) or type(exc).__name__ in ("AuthenticationError", "PermissionDeniedError")
        if rejected:
            detail = f"{var} was rejected by {url} (HTTP {status or 401})"
            fix = FIXES["rejected"].format(var=var)
        elif isinstance(exc, (OSError, TimeoutError)) or "Connection" in type(exc).__name__:
            detail, fix = f"{url} {cause(exc)}", FIXES["network"].format(endpoint_var=args["endpoint_var"])
        else:
            detail = f"{url} answered the login unexpectedly ({type(exc).__name__}, HTTP {status or '?'})"
            fix = "the hub may be failing; try again later"
        emit("check", Check(name, FAIL, detail, fix).as_dict())
        return
    emit("check", Check(name, OK, f"{var} accepted by {url} for {user}").as_dict())


def check(
    hub: str,
    environment: Environment,
    timeout: float,
    child: str = "mhsft.preflight.hub:login_in_child",
    extra: dict[str, Any] | None = None,
) -> Check:
    """Log in to `hub` with its token as swift would, bounded by `timeout` seconds in all.

    `child` (`module:function(args, emit)`) may do another check with the same token, bounded the same way;
    it gets `extra` among its args."""
    var = next(name for name in TOKENS[hub] if environment.get(name))
    url = endpoint(hub, environment)
    endpoint_var = "HF_ENDPOINT" if hub == "hf" else "MODELSCOPE_ENDPOINT"
    seconds = str(max(1, math.ceil(timeout)))
    with tempfile.TemporaryDirectory(prefix="mhsft-hub-") as home:
        env = {k: v for k, v in without_secrets(environment.values).items() if k not in OFFLINE_ENV}
        env |= {
            "MODELSCOPE_HOME": home,  # the SDK saves what a login returns: not into the user's ~/.modelscope
            "MODELSCOPE_API_MAX_RETRIES": "1",
            "MODELSCOPE_API_TIMEOUT": seconds,
            "MODELSCOPE_API_CONNECT_TIMEOUT": seconds,
            "HF_HOME": home,
        }
        args = {"hub": hub, "token": environment.get(var), "endpoint": url, "var": var, "endpoint_var": endpoint_var}
        outcome = isolated.run(child, args | (extra or {}), timeout, env)
    stalled = isolated.failure(
        f"{hub} login", outcome, timeout, url, FIXES["network"].format(endpoint_var=endpoint_var)
    )
    return stalled or (outcome.checks[0] if outcome.checks else Check(f"{hub} login", FAIL, "no answer", ""))


class Logins:
    """The logins for a plan's hubs, run in the background so that they share the preflight's time with SwanLab's."""

    def __init__(self, hubs: tuple[str, ...], environment: Environment, timeout: float) -> None:
        self.hubs, self.timeout = hubs, timeout
        self.results: list[Check] = []
        self.thread = threading.Thread(target=self._run, args=(environment,), daemon=True)
        if hubs:
            self.thread.start()

    def _run(self, environment: Environment) -> None:
        self.results.extend(check(hub, environment, self.timeout) for hub in self.hubs)

    def outcome(self) -> str | None:
        """None when no hub is used; else the success line, or `MhsftError` (exit 3) with the cause."""
        if not self.hubs:
            return None
        self.thread.join(self.timeout + 1)
        done = list(self.results)
        failed = [c for c in done if c.status != OK] or ([] if done else [Check("hub login", FAIL, "no answer")])
        if failed:
            raise MhsftError(
                f"hub preflight failed ({failed[0].name}): {failed[0].detail}. Fix: {failed[0].fix}. swift was not "
                "started (it logs in to the hub with this token at start-up and would die the same way).",
                PREFLIGHT,
            )
        return "; ".join(f"{c.name.split()[0]} ok: {c.detail}" for c in done)
