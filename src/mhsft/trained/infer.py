"""`mhsft infer`: `swift infer --adapters CKPT`, interactive by default, batch with --dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from mhsft.errors import MhsftError
from mhsft.recipe.hubs import checkpoint_args
from mhsft.recipe.plan import command_plan
from mhsft.recipe.values import BACKEND_SETTINGS, check_options
from mhsft.trained.backend import ensure
from mhsft.trained.target import Target, backend_option

BASE_MODEL_ARGS = ("model", "model_type", "template", "system", "torch_dtype", "use_hf", "model_revision")


def backend_args(command: str, backend: str | None, friendly: dict[str, object]) -> dict[str, object]:
    """--tp / --session-len / --cache-fraction as the 4.6 argument names of the chosen backend."""
    given = {k: v for k, v in friendly.items() if v is not None}
    if not given:
        return {}
    names = BACKEND_SETTINGS.get(backend or "transformers")
    if names is None:
        raise MhsftError(
            f"option {next(iter(given))}: the {backend or 'transformers'} backend has no such setting. "
            "Use it with --backend lmdeploy, vllm or sglang."
        )
    return check_options(command, {names[opt[2:].replace("-", "_")]: (opt, value) for opt, value in given.items()})


def infer(
    target: Target,
    *,
    backend: str | None,
    dataset: Path | None,
    result_path: Path | None,
    max_new_tokens: int | None,
    temperature: float | None,
    stream: bool | None,
    friendly: dict[str, object],
    dry_run: bool,
    log: IO[str] | None = None,
    adapter: bool = True,
) -> int:
    """Build and run the `swift infer` plan; returns the exit code.

    Without `adapter`, the base model the checkpoint was trained from (its args.json model, template, system)."""
    cwd = Path.cwd()
    args = target.defaults("infer")
    if adapter:
        args["adapters"] = [str(target.checkpoint)]
    else:
        saved = checkpoint_args(target.checkpoint)
        if not saved.get("model"):
            raise MhsftError(
                f"{target.checkpoint}/args.json does not name the base model, so it cannot be run without the "
                "adapter. Give a checkpoint swift saved (its folder holds args.json)."
            )
        args |= {k: saved[k] for k in BASE_MODEL_ARGS if saved.get(k) not in (None, "", [])}
    chosen = backend_option(backend, args.get("infer_backend"))
    args |= check_options(
        "infer",
        {
            "infer_backend": ("--backend", chosen),
            "val_dataset": ("--dataset", [str(dataset)] if dataset else None),
            "result_path": ("--result-path", str(result_path) if result_path else None),
            "max_new_tokens": ("--max-new-tokens", max_new_tokens),
            "temperature": ("--temperature", temperature),
            "stream": ("--stream/--no-stream", stream),
        },
    )
    args |= backend_args("infer", chosen, friendly)
    batch = "val_dataset" in args
    mode = f"batch on {args['val_dataset'][0]}" if batch else "interactive chat (type, Enter; Ctrl-D or Ctrl-C to stop)"
    summary = [
        ("checkpoint", str(target.checkpoint) if adapter else f"none: the base model of {target.checkpoint}"),
        ("backend", str(args.get("infer_backend", "transformers"))),
        ("mode", mode),
    ]
    if batch:
        summary.append(("results", str(args.get("result_path", f"{target.checkpoint}/infer_result/<time>.jsonl"))))
    if not dry_run:
        ensure(args.get("infer_backend"), target.environment, "--backend")
    program = None if batch else (sys.executable, "-m", "mhsft.chat_entry")  # Ctrl-D ends the chat, exit 0
    plan = command_plan("infer", args, target.environment, cwd, recipe=target.recipe, summary=summary, program=program)
    extra = {"result_path": args.get("result_path")} if batch else {}
    return target.run(plan, dry_run, log=log, extra=extra | ({} if adapter else {"adapter": False}))


def batch(
    target: Target,
    prompts: Path,
    result_path: Path,
    log: IO[str],
    *,
    backend: str | None,
    max_new_tokens: int | None,
    temperature: float | None,
    adapter: bool = True,
) -> int:
    """Batch inference on a jsonl file into `result_path`, swift's output to `log` (no streaming or tuning)."""
    return infer(
        target,
        backend=backend,
        dataset=prompts,
        result_path=result_path,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        stream=False,
        friendly={},
        dry_run=False,
        log=log,
        adapter=adapter,
    )
