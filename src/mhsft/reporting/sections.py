"""The report's sections as document blocks, from the run record, swift's output folder and other records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mhsft.reporting.document import Block, Code, Heading, Image, Para, Table
from mhsft.reporting.samples import Sample
from mhsft.runs import status as run_status
from mhsft.runs.records import RunRecord
from mhsft.view import compare, show
from mhsft.view.benchmarks import table as benchmark_table
from mhsft.view.links import flags

TUNER_KEYS = (
    "tuner_type", "train_type", "lora_rank", "lora_alpha", "lora_dropout", "target_modules", "learning_rate",
    "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length",
    "packing", "deepspeed", "torch_dtype",
)  # fmt: skip
METRICS = (*show.SHOWN_METRICS, "best_metric", "global_step", "train_samples_per_second")


def _loss(value: float | None) -> str:
    return f"{value:.6g}" if value is not None else "-"


def state(status: str, exit_code: int | None) -> str:
    """A run's state in words: `still running` while it goes, else the status and swift's exit code."""
    if status in run_status.ACTIVE:
        return f"still {status}"
    return status if exit_code is None else f"{status} (exit {exit_code})"


def overview(record: RunRecord, info: dict[str, Any], machine: list[tuple[str, str]]) -> list[Block]:
    """Recipe, model, data (with the dataset gate's summary), tuner, versions, duration and state."""
    args = flags(record.argv)
    named = ("dataset", "val_dataset", "cached_dataset", "cached_val_dataset")
    datasets = record.extra.get("datasets") or {k: args[k] for k in named if k in args}
    rows = [
        ["run", record.id],
        ["recipe", f"{record.recipe_name} ({record.recipe}), sha256 {record.recipe_sha256 or '-'}"],
        ["model", args.get("model", "-")],
        *([k, str(v)] for k, v in datasets.items()),
        ["status", state(info["status"], record.exit_code)],
        ["started", record.started_at],
        ["duration", show.duration_text(info["duration_s"])],
        ["output", info["run_dir"] or info["output_dir"] or "-"],
    ]
    blocks: list[Block] = [Heading("1. Overview and set-up"), Table(["", ""], rows)]
    if gate := record.extra.get("data_check"):
        tokens = gate.get("tokens", {})
        blocks += [
            Para("Dataset gate (mhsft data check):"),
            Table(
                ["rows read", "kept", "dropped", "truncated", "tokens min / median / p95 / max", "steps per epoch"],
                [
                    [
                        *(str(gate.get(k, "-")) for k in ("rows_read", "rows_kept", "rows_dropped", "rows_truncated")),
                        " / ".join(str(tokens.get(k, "-")) for k in ("min", "median", "p95", "max")),
                        str(gate.get("steps_per_epoch", "-")),
                    ]
                ],
            ),
        ]
    tuner = [[k, args[k]] for k in TUNER_KEYS if k in args]
    if tuner:
        blocks += [Para("Tuner and its key settings:"), Table(["setting", "value"], tuner)]
    versions = [[k, v or "-"] for k, v in record.versions.items()] + [[k, v] for k, v in machine]
    blocks += [Para("Versions (recorded at the start of the run):"), Table(["package", "version"], versions)]
    return [*blocks, Para("The resolved recipe and the exact command are in the appendix (section 5).")]


def appendix(record: RunRecord, info: dict[str, Any]) -> list[Block]:
    """The resolved recipe as swift got it and the exact (redacted) command."""
    return [
        Heading("5. Appendix: resolved recipe and the exact command"),
        Para("Resolved recipe, as swift got it (arguments and environment, secrets masked):"),
        Table(["key", "value"], [[k, v] for k, v in compare.settings(record).items()]),
        Para("The exact command:"),
        Code(info["command_line"]),
    ]


def training(info: dict[str, Any], images: list[Image]) -> list[Block]:
    """Loss curves, final and best metrics, the checkpoints with their losses, the SwanLab link."""
    blocks: list[Block] = [Heading("2. Training results"), *(Para(f"Warning: {w}") for w in info["warnings"])]
    blocks += images or [Para("No loss was logged (swift stopped before its first logging step).")]
    metrics = info["metrics"]
    if shown := [[k, show.metric_text(metrics[k])] for k in dict.fromkeys(METRICS) if k in metrics]:
        blocks += [Para("Final and best metrics (logging.jsonl):"), Table(["metric", "value"], shown)]
    rows = [
        [
            str(r["step"]),
            _loss(r["train_loss"]),
            _loss(r["eval_loss"]),
            ", ".join(m for m in ("best", "last") if r[m]),
            r["path"],
        ]
        for r in info["checkpoints"]
    ]
    blocks += (
        [Para("Checkpoints:"), Table(["step", "train loss", "eval loss", "", "path"], rows, css="checkpoints")]
        if rows
        else [Para("No checkpoint was saved.")]
    )
    if (swanlab := show.swanlab_line(info["swanlab"])) is not None:
        blocks.append(Para(f"SwanLab: {swanlab}"))
    return blocks


def benchmarks(record: RunRecord) -> list[Block]:
    """`mhsft eval`'s scores of this run (base vs fine-tuned, same settings), when it was evaluated."""
    found = record.extra.get("eval")
    if not isinstance(found, dict) or not found.get("benchmarks"):
        return []
    header, cells = benchmark_table(found["benchmarks"])
    settings = found.get("settings", {})
    return [
        Heading("Benchmarks: base vs fine-tuned"),
        Para(
            f"`mhsft eval` of {Path(str(found.get('checkpoint', '-'))).name} at {found.get('evaluated_at', '-')}: "
            f"limit {settings.get('limit') or 'all'}, generation {settings.get('generation_config')}; EvalScope's "
            f"reports in {found.get('output_dir', '-')}."
        ),
        Table(header, cells),
    ]


def answer(text: str) -> str:
    """An answer as shown: trimmed, and said to be blank when it is only whitespace."""
    return text.strip() or f"(blank: {len(text)} whitespace characters)"


def comparison(samples: list[Sample] | None, why_not: str, source: str, settings: str) -> list[Block]:
    """The side-by-side table, or why there is none."""
    blocks: list[Block] = [Heading("3. Base vs fine-tuned, side by side")]
    if samples is None:
        return [*blocks, Para(why_not)]
    blocks.append(Para(f"{len(samples)} held-out prompts from {source}; {settings}."))
    rows = [[str(i), s.prompt, s.reference or "-", answer(s.base), answer(s.tuned)] for i, s in enumerate(samples, 1)]
    return [
        *blocks,
        Table(["#", "prompt", "reference", "base model", "fine-tuned"], rows, css="side-by-side"),
    ]


def artifacts(record: RunRecord, records: list[RunRecord], run_dir: Path | None) -> list[Block]:
    """The export and deploy runs whose adapters came from this run's folder."""
    blocks: list[Block] = [Heading("4. Exported and deployed")]
    inside = f"{run_dir}/" if run_dir else None
    rows = []
    for r in records:
        if r.command in ("export", "deploy") and inside and (r.checkpoint or "").startswith(inside):
            made = r.extra.get("export_dir") or flags(r.argv).get("output_dir") or "-"
            push = r.extra.get("push") or "-"
            rows.append([r.id, r.command, r.status, Path(r.checkpoint or "").name, made, push])
    if not rows:
        return [*blocks, Para(f"Nothing yet: `mhsft export --merge-lora --run {record.id}` or `mhsft deploy`.")]
    return [*blocks, Table(["run", "command", "status", "from", "output", "push"], rows)]
