"""Whether the token swift will push with can write to the recipe's `[export] hub_model_id`, creating nothing.

ModelScope mints git credentials (what a push needs) only for a token of the write tier: its login endpoint
refuses a read-only token that `GET /users/me` still accepts. Hugging Face's `whoami` names the token's role
(read, write, or fine-grained with per-repo permissions) and the user's organisations. Both run in a child
process bounded like the preflight's login (`hub_check.check`).
"""

from __future__ import annotations

from typing import Any

from mhsft.checks import FAIL, OK, Check
from mhsft.environment import Environment
from mhsft.process import isolated
from mhsft.recipe.hubs import hub_name, token_names
from mhsft.recipe.model import Recipe
from mhsft.rehearse.verdict import FAILED, PASSED, PUSH, Moment

WRITE = "repo.write"


def decide(user: str, role: str, orgs: list[str], repo: str, scoped: list[dict[str, Any]] | None = None) -> str:
    """'' when a token of `user` with `role` may push to `repo`, else why not."""
    owner = repo.split("/")[0]
    if role == "read":
        return f"the token of {user} is read-only: the push of {repo} at the end of the run would be refused"
    if role == "fineGrained":
        granted = [
            s for s in scoped or [] if s.get("entity", {}).get("name") in (owner, repo) and WRITE in s["permissions"]
        ]
        return "" if granted else f"the fine-grained token of {user} has no {WRITE} permission on {repo}"
    if owner != user and owner not in orgs:
        return f"{owner} is neither the token's user {user} nor one of its organisations ({', '.join(orgs) or 'none'})"
    return ""


def _facts(hub: str, token: str) -> tuple[str, str, list[str], list[dict[str, Any]]]:
    """(user, role, organisations, fine-grained scopes) of `token` from the hub's own SDK."""
    if hub == "modelscope":
        from modelscope_hub import HubApi
        from modelscope_hub.errors import AuthenticationError, PermissionDeniedError

        api = HubApi()
        try:
            data, _ = api.legacy.login(token)  # the git credentials a push needs: write tier only
            return str(data.get("Username") or "?"), "write", [], []
        except (AuthenticationError, PermissionDeniedError):
            return api.login(token).username or "?", "read", [], []  # raises when the token is not valid at all
    from huggingface_hub import whoami

    info = whoami(token=token)
    access = (info.get("auth") or {}).get("accessToken") or {}
    orgs = [str(o.get("name")) for o in info.get("orgs") or []]
    return (
        str(info.get("name", "?")),
        str(access.get("role", "write")),
        orgs,
        access.get("fineGrained", {}).get("scoped", []),
    )


def access_in_child(args: dict[str, Any], emit: isolated.Emit) -> None:
    """In the child: the token's facts, then the decision, reported as one check."""
    from mhsft.preflight.hub import login_in_child

    name = f"{args['hub']} login"
    emit("step", f"the {args['hub']} write-permission check")
    try:
        user, role, orgs, scoped = _facts(args["hub"], args["token"])
    except Exception:  # the login's own diagnosis: rejected token, network
        login_in_child(args, emit)
        return
    why = decide(user, role, orgs, args["repo"], scoped)
    emit("check", Check(name, FAIL if why else OK, why or f"{user} ({role}) may push to {args['repo']}").as_dict())


def check_push(recipe: Recipe, environment: Environment, timeout: float) -> Moment | None:
    """The push moment for a recipe whose [export] pushes to a hub (None when it does not push)."""
    export = recipe.args.get("export", {})
    if not export.get("push_to_hub"):
        return None
    hub = hub_name(export, environment.values)
    repo = export.get("hub_model_id")
    if not repo:
        return Moment(PUSH, FAILED, "[export] push_to_hub is set but hub_model_id is not: swift would not know where")
    if not token_names(hub, environment.values):
        var = "HF_TOKEN" if hub == "hf" else "MODELSCOPE_API_TOKEN"
        return Moment(PUSH, FAILED, f"no {var} is set: the push to {repo} would be refused. Put it in .env")
    from mhsft.preflight.hub import check

    found = check(hub, environment, timeout, "mhsft.rehearse.push:access_in_child", {"repo": str(repo)})
    return Moment(PUSH, PASSED if found.status == OK else FAILED, found.detail)
