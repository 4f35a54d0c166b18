"""What the dataset gate asks swift to do, and the cache key that names its result.

The export gets every [sft] argument that changes how rows are read, standardised or tokenised, and nothing
else (no output, packing, hub push or training settings). With `truncation_strategy = "delete"` (swift's
default) it runs with a very large max_length, so every row that encodes is kept with its true token count and
the gate itself can say which rows `max_length` would drop and how long they are; `swift sft
--cached_dataset` drops the same rows when it loads the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xxhash import xxh3_128

from mhsft import __version__
from mhsft.recipe.argv import local_paths, looks_local
from mhsft.recipe.model import Recipe
from mhsft.runs.records import package_version

CACHE_DIR = Path(".mhsft") / "data-cache"
UNLIMITED = 100_000_000  # max_length for the export when the gate applies max_length itself
MAX_PROCESSES = 32  # the export's processes at most, whatever the machine
MEMORY_PER_PROCESS = 1 << 30  # free memory kept per export process (a one-process export of 100k rows: ~0.9 GiB)
ROWS_PER_PROCESS = 1000  # fewer rows a process do not repay starting it (swift encodes 1000 rows a batch)
ENCODING_KEYS = frozenset(
    {
        "model",
        "model_type",
        "model_revision",
        "model_kwargs",
        "rope_scaling",
        "max_model_len",
        "new_special_tokens",
        "task_type",
        "num_labels",
        "problem_type",
        "use_hf",
        "local_repo_path",
        "template",
        "template_backend",
        "system",
        "agent_template",
        "norm_bbox",
        "response_prefix",
        "padding_side",
        "use_chat_template",
        "enable_thinking",
        "add_non_thinking_prefix",
        "preserve_thinking",
        "disable_ignore_empty_think",
        "loss_scale",
        "is_binary_loss_scale",
        "truncation_strategy",
        "max_pixels",
        "dataset",
        "val_dataset",
        "split_dataset_ratio",
        "data_seed",
        "dataset_shuffle",
        "val_dataset_shuffle",
        "columns",
        "strict",
        "remove_unused_columns",
        "interleave_prob",
        "stopping_strategy",
        "download_mode",
        "custom_dataset_info",
        "custom_register_path",
        "external_plugins",
        "model_name",
        "model_author",
        "disable_auto_column_mapping",
        "decision_drop_instructions",
        "decision_shuffle_fields",
        "decision_state_as_text",
        "decision_subsample_options",
    }
)
FOLDER_SET_ASIDE = ("dataset_infos.json", "dataset_infos.json_bak")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "chat_template.json",
    "chat_template.jinja",
    "config.json",
)


@dataclass(frozen=True)
class GateSpec:
    """The export's arguments, the settings the report needs, and the files whose contents key the cache."""

    args: dict[str, Any]
    max_length: int | None
    truncation: str
    packing: dict[str, Any] | None
    local_files: tuple[str, ...]

    def stats(self) -> dict[str, tuple[int, int]]:
        """Each local file's size and mtime (ns): a write moves them, so comparing them is a cheap first check
        for a change (the hash decides)."""
        return {name: _stat(name) for name in self.local_files}

    def digests(self) -> dict[str, str]:
        """The content hash of every local file the export reads."""
        return {name: _digest(name).hex() for name in self.local_files}

    def key_of(self, digests: dict[str, str]) -> str:
        """Everything that changes the result: arguments, max_length (the report applies it), file contents
        (`digests`), tokenizer files, versions."""
        h = hashlib.sha256()
        h.update(
            json.dumps(
                [self.args, self.packing, self.max_length, __version__, package_version("ms-swift")],
                sort_keys=True,
                default=str,
            ).encode()
        )
        for name, digest in digests.items():
            h.update(name.encode() + b"\0" + digest.encode())
        return h.hexdigest()[:24]

    @property
    def key(self) -> str:
        """The cache key of the files as they are now."""
        return self.key_of(self.digests())


def _stat(path: str) -> tuple[int, int]:
    try:
        now = os.stat(path)
    except OSError:
        return -1, -1
    return now.st_size, now.st_mtime_ns


def _digest(path: str) -> bytes:
    """A file's content hash (xxh3-128, several GB/s), streamed in 4 MiB blocks."""
    h = xxh3_128()
    block = bytearray(1 << 22)
    view = memoryview(block)
    with open(path, "rb") as f:
        while n := f.readinto(block):
            h.update(view[:n])
    return h.digest()


def dataset_files(path: str) -> list[str]:
    """The regular files a local dataset path holds: itself, or every file under a folder (sorted).

    A folder's `dataset_infos.json` is left out: swift renames it to `dataset_infos.json_bak` when it loads the
    folder (and reads neither).
    """
    if os.path.isfile(path):
        return [path]
    found = []
    for top, folders, names in os.walk(path):
        folders.sort()
        found += [os.path.join(top, n) for n in sorted(names) if n not in FOLDER_SET_ASIDE]
    return [name for name in found if os.path.isfile(name)]


def processes(recipe: Recipe, rows: int | None) -> tuple[int, str]:
    """How many processes the export tokenises with, and why. `[data_check] num_proc`, else the recipe's
    `dataset_num_proc`, else every core this process may run on, capped by free memory, MAX_PROCESSES and (when
    the line scan counted the rows) one process a ROWS_PER_PROCESS rows. Not in the key: swift's rows are the
    same whatever the count (its map keeps the order)."""
    if recipe.data_check.num_proc is not None:
        return recipe.data_check.num_proc, "[data_check] num_proc"
    if "dataset_num_proc" in recipe.args["sft"]:
        return int(recipe.args["sft"]["dataset_num_proc"]), "[sft] dataset_num_proc; [data_check] num_proc overrides"
    cores = len(os.sched_getaffinity(0))
    limits = [cores, MAX_PROCESSES, max(1, _available_memory() // MEMORY_PER_PROCESS)]
    if rows is not None:
        limits.append(-(-rows // ROWS_PER_PROCESS))
    return max(1, min(limits)), f"of {cores} cores; [data_check] num_proc sets it"


def _available_memory() -> int:
    """MemAvailable from /proc/meminfo, in bytes (no limit known: as if plenty)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return MAX_PROCESSES * MEMORY_PER_PROCESS


def _tokenizer_files(model: str, cwd: Path) -> list[str]:
    folder = Path(local_paths("model", model, cwd)[0]) if looks_local(model, cwd) else None
    if folder is None or not folder.is_dir():
        return []
    return [str(folder / n) for n in TOKENIZER_FILES if (folder / n).is_file()]


def gate_spec(recipe: Recipe, cwd: Path) -> GateSpec:
    """The export the gate runs for a validated recipe."""
    sft = recipe.args["sft"]
    args = {k: v for k, v in sft.items() if k in ENCODING_KEYS}
    truncation = str(sft.get("truncation_strategy", "delete"))
    max_length = sft.get("max_length")
    packing = None
    if sft.get("packing"):
        packing = {
            "length": sft.get("packing_length") or max_length,
            "strategy": sft.get("packing_strategy", "binpack"),
            "max_length": max_length,
            "truncation": truncation,
        }
    if max_length is not None:
        exact = truncation == "split" or (truncation in ("left", "right") and packing)
        args["max_length"] = max_length if exact else UNLIMITED
    files = [
        f for key in ("dataset", "val_dataset") for p in local_paths(key, sft.get(key), cwd) for f in dataset_files(p)
    ]
    files += _tokenizer_files(str(sft["model"]), cwd)
    return GateSpec(args, max_length, truncation, packing, tuple(files))
