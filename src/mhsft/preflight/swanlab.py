"""SwanLab checks that run before swift starts: key, server, login, workspace, project, local mode.

A bad key or an unreachable server otherwise shows up only at `swanlab.init`, after the model has loaded,
and swift then blames the key even for a network fault. These checks use the swanlab SDK (its session and
`swanlab.login`) with retries turned off, in a child process stopped at the timeout (see `isolated`), so
each answer comes within the timeout, SDK import included, and says what is wrong.
"""

from __future__ import annotations

import contextlib
import importlib.util
import netrc
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mhsft.checks import FAIL, OK, Check
from mhsft.environment import NESTED_SWANLAB, Environment, breaks_swanlab, without_secrets
from mhsft.errors import PREFLIGHT, MhsftError
from mhsft.paths import absolute, unwritable
from mhsft.process import isolated
from mhsft.recipe.model import Recipe, SwanlabSettings

DEFAULT_API_HOST = "https://api.swanlab.cn"


@dataclass
class Findings:
    """The checks, plus the facts the one-line summary needs."""

    checks: list[Check] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]


def netrc_credentials(cwd: Path, environment: Environment) -> tuple[str, str, str] | None:
    """(api_key, api_host, path) saved by `swanlab login`: ./.swanlab/.netrc, else SWANLAB_ROOT or ~/.swanlab."""
    root = environment.get("SWANLAB_ROOT") or environment.get("SWANLAB_SAVE_DIR") or str(Path.home() / ".swanlab")
    for path in (cwd / ".swanlab" / ".netrc", Path(root) / ".netrc"):
        try:
            hosts = netrc.netrc(path).hosts
        except (OSError, netrc.NetrcParseError):
            continue
        for host, (_login, _account, password) in hosts.items():
            if password:
                api_host = host if host.startswith("http") else f"https://{host}"
                return password, api_host.rstrip("/"), str(path)
    return None


def find_key(settings: SwanlabSettings, environment: Environment, cwd: Path) -> tuple[str | None, str, str]:
    """(key, where it came from, api host) with the precedence swift's child will see."""
    saved = netrc_credentials(cwd, environment)
    key = environment.get("SWANLAB_API_KEY")
    host = settings.api_host or environment.get("SWANLAB_API_HOST")
    if key:
        return key, f"SWANLAB_API_KEY from {environment.source('SWANLAB_API_KEY')}", (host or DEFAULT_API_HOST)
    if saved and (host is None or host.rstrip("/") == saved[1]):
        return saved[0], f"`swanlab login` ({saved[2]})", saved[1]
    return None, "", (host or DEFAULT_API_HOST).rstrip("/")


def settings_pitfalls(environment: Environment, cwd: Path) -> list[Check]:
    """SWANLAB_PROJECT (and siblings) as plain strings, in the environment or in ./.env, which swanlab reads."""
    from dotenv import dotenv_values

    local_env = cwd / ".env"
    sources = [(environment.values, "the environment")]
    if local_env.is_file():
        try:
            sources.append(({k: v for k, v in dotenv_values(local_env).items() if v is not None}, str(local_env)))
        except (OSError, UnicodeDecodeError) as exc:
            return [
                Check(
                    "swanlab settings",
                    FAIL,
                    f"{local_env} cannot be read ({type(exc).__name__}); swanlab reads it too and would fail",
                    f"fix or remove {local_env}",
                )
            ]
    found, left_out = [], []
    for values, where in sources:
        for name in NESTED_SWANLAB:
            if name not in values or not breaks_swanlab(name, values[name]):
                continue
            if values is environment.values:
                left_out.append(name)  # a team's `export SWANLAB_PROJECT=...`: children never see it
                continue
            found.append(
                Check(
                    "swanlab settings",
                    FAIL,
                    f"{name} is set in {where} as a plain string; swanlab "
                    "parses it as a JSON table and every login and init then fails (SettingsError)",
                    f"remove {name} from {where}; put the project in the recipe's [swanlab] project",
                )
            )
    if left_out and not found:
        detail = (
            f"{', '.join(left_out)} set (for the recipe's ${{VAR}}s, e.g. a team's export); mhsft leaves it out of "
            "swift's and the SDK's environment, where swanlab would fail on a plain string"
        )
        return [Check("swanlab settings", OK, detail)]
    return found or [Check("swanlab settings", OK, "no SWANLAB_PROJECT-style pitfalls")]


def network_error(exc: BaseException, host: str, timeout: float) -> Check:
    """Tell DNS failure, refusal, timeout and other network faults apart."""
    import requests

    text = str(exc)
    if isinstance(exc, requests.exceptions.Timeout) or "timed out" in text.lower():
        return Check(
            "swanlab server",
            FAIL,
            f"{host} did not answer within {timeout:g} s (timed out)",
            "check the network or proxy, or raise --preflight-timeout",
        )
    if "NameResolution" in text or "resolve" in text or "Name or service not known" in text:
        return Check(
            "swanlab server",
            FAIL,
            f"cannot resolve the host of {host} (DNS)",
            "check the spelling of [swanlab] api_host / SWANLAB_API_HOST and your DNS / network",
        )
    if "refused" in text.lower():
        return Check(
            "swanlab server",
            FAIL,
            f"connection to {host} refused (nothing listens there)",
            "check [swanlab] api_host / SWANLAB_API_HOST and that the server is up",
        )
    return Check(
        "swanlab server",
        FAIL,
        f"{host} unreachable: {type(exc).__name__}",
        "check the network, proxy variables (HTTPS_PROXY) and the host",
    )


def probe(host: str, timeout: float, budget: float | None = None) -> Check:
    """`GET {host}/api`, which a SwanLab server answers with `OK` (what `swanlab ping` probes); `timeout` is what
    is left of the preflight's `budget`."""
    from swanlab.exceptions import ApiError
    from swanlab.sdk.internal.pkg.client import session

    started = time.monotonic()
    with session.create(timeout=timeout, default_retry=0) as s:
        try:
            resp = s.get(f"{host}/api", retries=0, log_error=False, timeout=timeout)
        except ApiError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", "?")
            return Check(
                "swanlab server",
                FAIL,
                f"{host}/api answered HTTP {status}, not OK (unexpected answer)",
                "the server is failing or this is not a SwanLab API host (use the API host, not the web host)",
            )
        except Exception as exc:
            return network_error(exc, host, budget or timeout)
    ms = (time.monotonic() - started) * 1000
    if resp.text.strip().strip('"') != "OK":
        return Check(
            "swanlab server",
            FAIL,
            f'{host}/api answered "{resp.text[:60]}", not OK (unexpected answer)',
            "this does not look like a SwanLab API host; check [swanlab] api_host",
        )
    return Check("swanlab server", OK, f"{host} answers ({ms:.0f} ms)")


def _login_status(key: str, host: str, timeout: float) -> int | None:
    """The HTTP status of the login endpoint for `key` (to explain a failed `swanlab.login`)."""
    from swanlab.exceptions import ApiError
    from swanlab.sdk.internal.pkg.client import session

    with session.create(timeout=timeout, default_retry=0) as s:
        try:
            s.post(f"{host}/api/login/api_key", headers={"authorization": key}, retries=0, log_error=False)
        except ApiError as exc:
            return getattr(getattr(exc, "response", None), "status_code", None)
        except Exception:
            return None
    return 200


@contextlib.contextmanager
def quiet_sdk() -> Iterator[None]:
    """swanlab SDK calls with retries and HTTP error logs off (its console output goes to the child's scratch
    file: these calls run only in `isolated`'s child process)."""
    from swanlab.sdk.internal.pkg.client.session import request_log_error_ctx, request_retries_ctx

    tokens = request_retries_ctx.set(0), request_log_error_ctx.set(False)
    try:
        yield
    finally:
        request_log_error_ctx.reset(tokens[1])
        request_retries_ctx.reset(tokens[0])


def login(key: str, host: str, timeout: float) -> Check:
    """Verify the key with `swanlab.login`; on failure, tell a rejected key from a failing server."""
    import swanlab
    from swanlab.exceptions import AuthenticationError

    try:
        with quiet_sdk():
            swanlab.login(api_key=key, host=host, relogin=True, save=False, timeout=timeout)  # type: ignore[arg-type]
    except AuthenticationError:
        status = _login_status(key, host, timeout)
        if status in (401, 403):
            return Check(
                "swanlab key",
                FAIL,
                f"the API key was rejected by {host} (HTTP {status})",
                "copy a current key from SwanLab (Settings -> API Key) into .env as SWANLAB_API_KEY",
            )
        return Check(
            "swanlab key",
            FAIL,
            f"login to {host} failed (HTTP {status or 'no answer'}): unexpected answer",
            "the server may be failing; try again later or check [swanlab] api_host",
        )
    return Check("swanlab key", OK, f"accepted by {host}")


def account(key: str, host: str, workspace: str | None, project: str) -> tuple[list[Check], dict[str, str]]:
    """The user, whether the workspace is accessible (fail if not) and whether the project exists (info)."""
    import swanlab

    with quiet_sdk():
        api = swanlab.Api(api_key=key, host=host)
        workspace = workspace or api.username
        ws_ok = api.workspace(workspace).wrapper().ok
        exists = ws_ok and api.project(f"{workspace}/{project}").wrapper().ok
    facts = {"user": api.username, "workspace": workspace, "new": "" if exists else " (new)"}
    if not ws_ok:
        return [
            Check(
                "swanlab workspace",
                FAIL,
                f"workspace {workspace!r} is not accessible with this key",
                "fix [swanlab] workspace (a team you belong to), or leave it empty for your own",
            )
        ], facts
    state = "exists" if exists else "does not exist yet; the first run creates it"
    return [
        Check("swanlab workspace", OK, f"{workspace} is accessible to {api.username}"),
        Check("swanlab project", OK, f"{workspace}/{project} {state}"),
    ], facts


def reached_and_logged_in(args: dict[str, Any], emit: isolated.Emit) -> bool:
    """In the child: the server probe, then the login with args' key, each reported; whether both passed."""
    key, host = args["key"], args["host"]

    def left() -> float:
        return max(0.1, args["deadline"] - time.monotonic())

    emit("step", "the swanlab SDK import")
    with quiet_sdk():
        emit("step", f"GET {host}/api")
        probed = probe(host, left(), args.get("timeout"))
        emit("check", probed.as_dict())
        if probed.status != OK:
            return False
        emit("step", "the login")
        logged_in = login(key, host, left())
        emit("check", logged_in.as_dict())
        return logged_in.status == OK


def cloud_network(args: dict[str, Any], emit: isolated.Emit) -> None:
    """In the child: server probe, login, workspace and project, stopping at the first failure."""
    if not reached_and_logged_in(args, emit):
        return
    emit("step", "the workspace and project lookup")
    checks, facts = account(args["key"], args["host"], args["workspace"], args["project"])
    emit("facts", facts)
    for check in checks:
        emit("check", check.as_dict())


def child_env(environment: Environment) -> dict[str, str]:
    """The environment of a check's child process: mhsft's, without any secret (those go in the payload)."""
    return without_secrets(environment.values)


def cloud_checks(
    settings: SwanlabSettings, environment: Environment, cwd: Path, timeout: float, found: Findings
) -> None:
    """Key, server, login, workspace and project, stopping at the first failure, within `timeout` in all."""
    key, source, host = find_key(settings, environment, cwd)
    found.facts["host"] = host
    if not key:
        found.checks.append(
            Check(
                "swanlab key",
                FAIL,
                f"no SwanLab API key found ({environment.searched('SWANLAB_API_KEY')}; no `swanlab login` either)",
                'put SWANLAB_API_KEY=... in .env (see .env.example), or set [swanlab] mode = "local"',
            )
        )
        return
    found.checks.append(Check("swanlab key source", OK, source))
    args = {"key": key, "host": host, "workspace": settings.workspace, "project": settings.project, "timeout": timeout}
    outcome = isolated.run("mhsft.preflight.swanlab:cloud_network", args, timeout, child_env(environment))
    found.checks += outcome.checks
    found.facts |= outcome.facts
    stalled = isolated.failure(
        "swanlab server",
        outcome,
        timeout,
        host,
        "check the network, proxy and [swanlab] api_host, or raise --preflight-timeout",
    )
    if stalled and not found.failed:
        found.checks.append(stalled)


def local_checks(settings: SwanlabSettings, environment: Environment, cwd: Path, found: Findings) -> None:
    """Local mode: the dashboard package and a writable log directory."""
    if importlib.util.find_spec("swanboard") is None:
        found.checks.append(
            Check(
                "swanlab local",
                FAIL,
                "the swanboard package (swanlab's local dashboard) is missing",
                "pip install 'swanlab[dashboard]'",
            )
        )
    log_dir = Path(absolute(settings.log_dir or environment.get("SWANLAB_LOG_DIR") or "swanlog", cwd))
    found.facts["log_dir"] = str(log_dir)
    if (exc := unwritable(log_dir)) is None:
        found.checks.append(Check("swanlab log dir", OK, f"{log_dir} is writable"))
    else:
        found.checks.append(
            Check(
                "swanlab log dir",
                FAIL,
                f"{log_dir} is not writable ({exc.strerror})",
                "set [swanlab] log_dir to a folder you can write",
            )
        )


def run_checks(
    settings: SwanlabSettings, environment: Environment, timeout: float, cwd: Path | None = None
) -> Findings:
    """All SwanLab checks for a mode, the network part bounded by `timeout` seconds."""
    cwd = cwd or Path.cwd()
    found = Findings(settings_pitfalls(environment, cwd))
    if found.failed:
        return found
    if settings.mode in ("local", "offline"):  # offline: nothing reaches the server until `mhsft sync`
        local_checks(settings, environment, cwd, found)
        return found

    cloud_checks(settings, environment, cwd, timeout, found)
    return found


def checked(recipe: Recipe, environment: Environment, timeout: float) -> tuple[str, dict[str, str]]:
    """`preflight`, also returning what the checks found (cloud: user, workspace, host; local: log_dir)."""
    started = time.monotonic()
    found = run_checks(recipe.swanlab, environment, timeout)
    ms = (time.monotonic() - started) * 1000
    if found.failed:
        first = found.failed[0]
        raise MhsftError(
            f"SwanLab preflight failed ({first.name}): {first.detail}. Fix: {first.fix}. swift was not "
            "started (--no-preflight skips this check).",
            PREFLIGHT,
        )
    s, f = recipe.swanlab, found.facts
    if s.mode in ("local", "offline"):
        return f"swanlab ok: mode={s.mode} project={s.project} log_dir={f['log_dir']} {ms:.0f} ms", f
    return (
        f"swanlab ok: user={f['user']} workspace={f['workspace']} project={s.project}{f['new']} "
        f"host={f['host']} {ms:.0f} ms"
    ), f
