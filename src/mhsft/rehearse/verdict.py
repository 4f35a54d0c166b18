"""The rehearsal's verdict: each risky moment passed or failed, speed and memory as swift logged them, and the
full run's projected wall time."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.runs.checkpoints import checkpoints
from mhsft.view.history import rows

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
BATCHES, EVALUATION, SAVE, PUSH = "longest batches", "evaluation", "checkpoint save", "hub push permission"
_EVAL_FRAMES = {"evaluate", "_evaluate", "evaluation_loop", "prediction_step", "_determine_best_metric"}
_SAVE_FRAMES = {"_save_checkpoint", "save_model", "_save", "_save_optimizer_and_scheduler", "_save_rng_state"}
_FRAME = re.compile(r'^\s*File ".*", line \d+, in (\w+)')
_ERROR = re.compile(r"^[A-Za-z_.]*(Error|Exception)\b(: |$)")


@dataclass
class Moment:
    """One risky moment of the full run and how the rehearsal went through it."""

    name: str
    status: str
    detail: str = ""


@dataclass
class Verdict:
    moments: list[Moment]
    measured: dict[str, Any] = field(default_factory=dict)
    projection: dict[str, Any] = field(default_factory=dict)
    swift_exit: int = 0
    log: str = ""
    run_dir: str = ""

    @property
    def passed(self) -> bool:
        return all(m.status != FAILED for m in self.moments)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


def swift_error(text: str) -> str:
    """The last exception line swift's output shows ('' when none)."""
    found = [line.strip() for line in text.splitlines() if _ERROR.match(line.strip())]
    return found[-1] if found else ""


def crashed_in(text: str) -> str | None:
    """The moment whose code the last traceback in swift's output passes through, or None (not training yet)."""
    start = text.rfind("Traceback (most recent call last)")
    frames = [m.group(1) for line in text[max(start, 0) :].splitlines() if (m := _FRAME.match(line))]
    for name in reversed(frames):
        if name in _SAVE_FRAMES:
            return SAVE
        if name in _EVAL_FRAMES:
            return EVALUATION
    return BATCHES if "training_step" in frames or "Train:" in text else None


def judge(run_dir: Path, text: str, code: int, steps: int, evaluate: bool, save: bool) -> list[Moment]:
    """The moments of the rehearsal from swift's exit code, its output `text`, logging.jsonl and the checkpoints."""
    logged = rows(run_dir / "logging.jsonl")
    reached = max((_step(r) for r in logged if "loss" in r), default=0)
    evaluated = any("eval_loss" in r for r in logged)
    saved = any(p.name == f"checkpoint-{steps}" for p in checkpoints(run_dir))
    culprit = crashed_in(text) if code != 0 else None
    error = swift_error(text) if code != 0 else ""
    outcome = {
        BATCHES: (reached >= steps, f"{reached}/{steps} steps"),
        EVALUATION: (evaluated and culprit != EVALUATION, "eval loss logged" if evaluated else "no eval logged"),
        SAVE: (saved, f"checkpoint-{steps} written" if saved else f"no complete checkpoint-{steps}"),
    }
    wanted = {BATCHES: True, EVALUATION: evaluate, SAVE: save}
    moments = []
    for name, (ok, detail) in outcome.items():
        if not wanted[name]:
            moments.append(Moment(name, SKIPPED, "not configured in the recipe"))
        elif culprit == name:
            moments.append(Moment(name, FAILED, error or f"swift exited with {code}"))
        elif ok:
            moments.append(Moment(name, PASSED, detail))
        else:
            moments.append(Moment(name, SKIPPED, "not reached") if code != 0 else Moment(name, FAILED, detail))
    return moments


def _step(row: dict[str, Any]) -> int:
    try:
        return int(str(row["global_step/max_steps"]).split("/")[0])
    except (KeyError, ValueError):
        return 0


def measure(run_dir: Path, steps: int, wall_s: float) -> dict[str, Any]:
    """Seconds per step, eval and save time, start-up, memory and tokens per second from logging.jsonl."""
    logged = rows(run_dir / "logging.jsonl")
    train = [r for r in logged if "loss" in r and _step(r)]
    last = next((r for r in reversed(train) if _step(r) <= steps), {})
    evals = [r for r in logged if "eval_runtime" in r]
    final = next((r for r in reversed(logged) if "train_runtime" in r), {})
    first = next((r for r in train if _step(r) == 1), {})
    mean_s, first_s, done = last.get("train_speed(s/it)"), first.get("train_speed(s/it)"), _step(last)
    steady = (mean_s * done - first_s) / (done - 1) if mean_s and first_s and done > 1 else mean_s
    step_s = round(steady, 6) if steady is not None else None  # after the first step's warm-up
    eval_s = sum(r["eval_runtime"] for r in evals) / len(evals) if evals else 0.0
    runtime = final.get("train_runtime")
    found: dict[str, Any] = {"steps": done, "first_step_s": first_s, "step_s": step_s, "eval_s": round(eval_s, 3)}
    if runtime is not None and mean_s is not None:
        found["save_s"] = round(max(runtime - mean_s * done - eval_s * len(evals), 0.0), 3)
        found["overhead_s"] = round(max(wall_s - runtime, 0.0), 3)  # model load, swift start-up and shutdown
    memory = [r["memory(GiB)"] for r in logged if isinstance(r.get("memory(GiB)"), (int, float))]
    found["peak_memory_gib"] = max(memory) if memory else None
    tokens = last.get("num_input_tokens_seen")
    if tokens and step_s:
        found["tokens_seen"] = tokens
        found["tokens_per_s"] = round(tokens / (mean_s * done), 1)
    return found


def project(measured: dict[str, Any], full_steps: int, evals: int, saves: int, eval_scale: float) -> dict[str, Any]:
    """The full run's wall time: start-up + the first step + the other steps x step time + evaluations x eval
    time + saves x save time."""
    if measured.get("step_s") is None or "save_s" not in measured:
        return {}
    parts = {
        "start-up": measured["overhead_s"],
        "steps": (measured["first_step_s"] or measured["step_s"]) + (full_steps - 1) * measured["step_s"],
        "evaluation": evals * measured["eval_s"] * eval_scale,
        "saves": saves * measured["save_s"],
    }
    return {
        "steps": full_steps,
        "evaluations": evals,
        "saves": saves,
        "parts_s": {k: round(v, 1) for k, v in parts.items()},
        "wall_s": round(sum(parts.values()), 1),
    }


def duration(seconds: float) -> str:
    """0.4 s, 12 s, 3 min 4 s, 2 h 05 min."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def show(verdict: Verdict, as_json: bool) -> None:
    """The verdict table (or JSON on stdout)."""
    if as_json:
        ui.echo(json.dumps(verdict.as_dict(), indent=2))
        return
    m, p = verdict.measured, verdict.projection
    table = [[x.name, x.status, x.detail] for x in verdict.moments]
    memory = m.get("peak_memory_gib")
    table.append(["peak GPU memory", "", f"{memory} GiB (swift's memory(GiB))" if memory else "no GPU"])
    if m.get("step_s") is not None:
        first = f" (the first {m['first_step_s']:.3f} s)" if m.get("first_step_s") else ""
        table.append(["seconds per step", "", f"{m['step_s']:.3f} s at the longest batches{first}"])
    if m.get("tokens_per_s"):
        table.append(["tokens per second", "", f"{m['tokens_per_s']:.0f}"])
    if p:
        parts = ", ".join(f"{k} {duration(v)}" for k, v in p["parts_s"].items())
        table.append(["projected full run", "", f"{duration(p['wall_s'])} ({p['steps']} steps; {parts})"])
    styles = {PASSED: "green", FAILED: "bold red", SKIPPED: "yellow"}
    ui.table(f"rehearsal: {'passed' if verdict.passed else 'FAILED'}", ["moment", "result", "detail"], table, styles)


def full_schedule(sft: dict[str, Any], steps_per_epoch: int, has_eval: bool) -> tuple[int, int, int]:
    """(optimizer steps, evaluations, saves) of the full run, as swift 4.6 schedules them."""
    max_steps = int(sft.get("max_steps") or -1)
    total = max_steps if max_steps > 0 else math.ceil(steps_per_epoch * float(sft.get("num_train_epochs", 3)))
    save_steps = int(sft.get("save_steps") or 500)
    eval_steps = int(sft.get("eval_steps") or save_steps)  # swift: eval_steps defaults to save_steps
    evaluate = has_eval and sft.get("eval_strategy", "steps") != "no"
    save = sft.get("save_strategy", "steps") != "no"
    return total, math.ceil(total / eval_steps) if evaluate else 0, math.ceil(total / save_steps) if save else 0
