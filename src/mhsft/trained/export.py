"""`mhsft export`: merge LoRA into the base model and/or push to ModelScope or Hugging Face."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.paths import absolute, exists
from mhsft.recipe.plan import command_plan
from mhsft.trained.target import Target

HUBS = {
    "modelscope": ("MODELSCOPE_API_TOKEN", False),
    "ms": ("MODELSCOPE_API_TOKEN", False),
    "hf": ("HF_TOKEN", True),
    "huggingface": ("HF_TOKEN", True),
}


def parse_push(value: str) -> tuple[str, str, bool]:
    """`modelscope:OWNER/NAME` or `hf:OWNER/NAME` -> (repo id, token variable, use_hf)."""
    hub, _, repo = value.partition(":")
    if hub not in HUBS or repo.count("/") != 1 or not all(repo.split("/")):
        raise MhsftError(
            f"--push {value}: expected modelscope:OWNER/NAME or hf:OWNER/NAME, e.g. "
            "--push modelscope:alice/qwen7b-mh-lora."
        )
    token_var, use_hf = HUBS[hub]
    return repo, token_var, use_hf


def export(
    target: Target,
    *,
    merge_lora: bool,
    output: Path | None,
    overwrite: bool,
    push: str | None,
    dry_run: bool,
    log: IO[str] | None = None,
) -> int:
    """Build and run the `swift export` plan; returns the exit code."""
    cwd = Path.cwd()
    args = target.defaults("export")
    args["adapters"] = [str(target.checkpoint)]
    push_hub = None
    if merge_lora:
        args["merge_lora"] = True
    if push:
        repo, token_var, use_hf = parse_push(push)
        if not target.environment.get(token_var):
            raise MhsftError(
                f"--push {push} needs {token_var}: put it in .env (see .env.example). It reaches swift "
                "through the environment only, never its command line."
            )
        args |= {"push_to_hub": True, "hub_model_id": repo} | ({"use_hf": True} if use_hf else {})
        push_hub = "hf" if use_hf else "modelscope"
    if len(args) == 1:
        raise MhsftError(
            "nothing to export: pass --merge-lora and/or --push HUB:OWNER/NAME (or put swift export "
            "settings in the recipe's [export])."
        )
    wanted = output or args.pop("output_dir", None)  # --output, else the recipe's [export] output_dir
    dest = Path(absolute(str(wanted), cwd)) if wanted else None
    if args.get("merge_lora") and push:
        if dest is not None:
            ui.warn(
                "the output folder is ignored: with --merge-lora and --push, ms-swift 4.6 writes <checkpoint>-merged."
            )
        dest = Path(f"{target.checkpoint}-merged")
    elif args.get("merge_lora"):
        dest = dest or Path(f"{target.checkpoint}-merged")
        args["output_dir"] = str(dest)
    elif dest is not None:
        args["output_dir"] = str(dest)
    if dest is not None and exists(dest):
        if not overwrite:
            raise MhsftError(
                f"{dest} already exists. Pass --overwrite to replace it, or --output DIR for another folder."
            )
        args["exist_ok"] = True
    summary = [
        ("checkpoint", str(target.checkpoint)),
        ("merge LoRA", "yes" if args.get("merge_lora") else "no"),
        ("output", str(dest) if dest else "-"),
        ("push", push or "no"),
    ]
    plan = command_plan(
        "export",
        args,
        target.environment,
        cwd,
        recipe=target.recipe,
        summary=summary,
        output_dir=dest,
        push_hub=push_hub,
    )
    return target.run(plan, dry_run, log=log, extra={"export_dir": str(dest) if dest else None, "push": push})
