"""`mhsft selftest`: the whole chain on a tiny local model through mhsft's own code paths.

Builds the fixtures, trains a short LoRA run (SwanLab local), runs batch inference on the validation file,
merges the LoRA into a full model and generates a few tokens with it. No GPU, account or network needed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mhsft import ui
from mhsft.errors import MhsftError

MADE = ("merged", "logs", "infer.jsonl")  # fixed names the selftest writes in its folder
MANIFEST = ".mhsft-selftest.json"  # what the last selftest made (so that a re-run removes that, nothing else)


class StepFailed(Exception):
    """A selftest step did not produce what it should."""


@dataclass
class Selftest:
    """The work directory and what earlier steps produced."""

    root: Path
    facts: dict[str, object] = field(default_factory=dict)

    def log(self, step: str):
        (self.root / "logs").mkdir(exist_ok=True)
        return (self.root / "logs" / f"{step}.log").open("w", encoding="utf-8")

    def ran(self, step: str, code: int) -> None:
        if code != 0:
            tail = (self.root / "logs" / f"{step}.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise StepFailed(f"exit {code}; see logs/{step}.log: " + " | ".join(tail))


def fixtures(t: Selftest) -> str:
    from mhsft.selfcheck.tiny import build

    fx = build(t.root)
    t.facts["fixtures"] = fx
    return f"model {fx.model.name}/, {sum(1 for _ in fx.train.open())} train + {sum(1 for _ in fx.val.open())} val"


def train_step(t: Selftest) -> str:
    from mhsft.runs import checkpoints
    from mhsft.train.command import train

    with t.log("train") as log:
        t.ran("train", train("tiny", [], None, log=log))
    checkpoint = checkpoints.resolve("latest", t.root)
    if not any(checkpoint.glob("adapter_model.*")):
        raise StepFailed(f"{checkpoint} holds no adapter weights")
    rows = [json.loads(ln) for ln in (checkpoint.parent / "logging.jsonl").read_text().splitlines() if ln.strip()]
    losses = [row["loss"] for row in rows if "loss" in row]
    if not losses or not all(math.isfinite(v) for v in losses):
        raise StepFailed(f"no finite loss in logging.jsonl: {losses}")
    run_id = checkpoints.last_training(t.root).swanlab_run_id  # type: ignore[union-attr]
    if not any((t.root / "swanlog").glob(f"run-*{run_id}*")):
        raise StepFailed(f"SwanLab (local mode) wrote no run {run_id} under swanlog/")
    t.facts["checkpoint"] = checkpoint
    return f"{checkpoint.relative_to(t.root)}, loss {losses[0]:.2f} -> {losses[-1]:.2f}, SwanLab run in swanlog/"


def infer_step(t: Selftest) -> str:
    from mhsft.trained.infer import batch
    from mhsft.trained.target import resolve_target

    fx = t.facts["fixtures"]
    result = t.root / "infer.jsonl"
    with t.log("infer") as log:
        target = resolve_target(None, [], None, "latest", None)
        code = batch(target, fx.val, result, log, backend="transformers", max_new_tokens=16, temperature=0.0)
    t.ran("infer", code)
    expected = sum(1 for _ in fx.val.open())
    got = len(result.read_text().splitlines()) if result.exists() else 0
    if got != expected:
        raise StepFailed(f"{got} result lines for {expected} inputs")
    return f"{got} results in infer.jsonl"


def export_step(t: Selftest) -> str:
    from mhsft.trained.export import export
    from mhsft.trained.target import resolve_target

    merged = t.root / "merged"
    with t.log("export") as log:
        code = export(
            resolve_target(None, [], None, "latest", None),
            merge_lora=True,
            output=merged,
            overwrite=True,
            push=None,
            dry_run=False,
            log=log,
        )
    t.ran("export", code)
    if not any(merged.glob("*.safetensors")):
        raise StepFailed(f"no weights in {merged}")
    return "merged/ (base model + LoRA)"


def generate_step(t: Selftest) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = t.root / "merged"
    tokenizer = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "add two and three"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    new = output[0][inputs["input_ids"].shape[1] :]
    if len(new) == 0:
        raise StepFailed("the merged model generated no token")
    return f"{len(new)} tokens: {tokenizer.decode(new, skip_special_tokens=True)!r}"


STEPS: list[tuple[str, Callable[[Selftest], str]]] = [
    ("build tiny model + data", fixtures),
    ("train (LoRA, SwanLab local)", train_step),
    ("batch inference", infer_step),
    ("merge LoRA", export_step),
    ("load merged + generate", generate_step),
]


def made_by(root: Path, before: set[str]) -> list[str]:
    """What this selftest made in `root` (paths relative to it): its fixed outputs, and for each run it recorded
    (the records not in `before`) the record, a training's vN folder and its SwanLab log folder."""
    from mhsft.runs.store import load_all

    found = [name for name in MADE if (root / name).exists()]
    for record in load_all(root):
        if record.id in before:
            continue
        found.append(str(record.path.relative_to(root)))
        if record.command == "sft" and record.run_dir and Path(record.run_dir).is_relative_to(root):
            found.append(str(Path(record.run_dir).relative_to(root)))
        if record.command == "sft" and record.swanlab_run_id:
            found += [str(p.relative_to(root)) for p in (root / "swanlog").glob(f"run-*{record.swanlab_run_id}*")]
    return found


def remove_previous(root: Path) -> None:
    """Remove what the previous selftest in `root` made (its manifest), and nothing else: trainings a user ran
    there with the built-in `tiny` recipe stay."""
    manifest = root / MANIFEST
    listed = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else list(MADE)
    for name in listed:
        path = root / name
        if not path.resolve().is_relative_to(root.resolve()):
            continue  # a hand-edited manifest never reaches outside the folder
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    manifest.unlink(missing_ok=True)


def selftest(workdir: Path, keep: bool) -> int:
    """Run every step in `workdir` (made the current directory); 0 only if all passed."""
    from mhsft.selfcheck.tiny import MARKER

    root = workdir.absolute()
    if root.exists() and not root.is_dir():
        raise MhsftError(f"--workdir {root} is a file; give a new or empty folder.")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).exists():
        raise MhsftError(
            f"--workdir {root} is not empty and was not made by `mhsft selftest`; give a new or empty "
            "folder (the selftest clears its outputs there)."
        )
    root.mkdir(parents=True, exist_ok=True)
    if not keep:
        remove_previous(root)
    os.chdir(root)
    os.environ["MHSFT_TINY_DIR"] = str(root)
    from mhsft.runs.store import load_all

    before = {r.id for r in load_all(root)}
    t = Selftest(root)
    rows, failed = [], False
    try:
        for name, step in STEPS:
            if failed:
                rows.append([name, "skipped", "-", ""])
                continue
            ui.info(f"selftest: {name} ...")
            started = time.monotonic()
            try:
                detail, status = step(t), "ok"
            except (StepFailed, MhsftError) as exc:
                detail, status, failed = getattr(exc, "message", str(exc)), "fail", True
            except Exception as exc:  # an unexpected error is a failed step in the table, not a traceback
                detail, status, failed = f"{type(exc).__name__}: {exc}", "fail", True
            rows.append([name, status, f"{time.monotonic() - started:.1f} s", detail])
    finally:
        kept = json.loads((root / MANIFEST).read_text(encoding="utf-8")) if keep and (root / MANIFEST).is_file() else []
        made = list(dict.fromkeys([*kept, *made_by(root, before)]))
        (root / MANIFEST).write_text(json.dumps(made, indent=1), encoding="utf-8")
    ui.table(
        f"mhsft selftest in {root}",
        ["step", "status", "time", "detail"],
        rows,
        {"ok": "green", "fail": "bold red", "skipped": "yellow"},
    )
    return 1 if failed else 0
