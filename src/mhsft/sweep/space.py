"""A sweep's search space: `--grid`/`--zip` lists and `--range` bounds (or `[sweep]` in the recipe), and the
trials a grid makes. Only syntax is checked here; each value is then validated like a `--set` value."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from mhsft.errors import MhsftError
from mhsft.recipe.load import SECTIONS, loads
from mhsft.recipe.toml_out import value_text

METHODS = ("grid", "random", "tpe")
OWNED = ("swanlab", "launch", "slurm", "sweep")  # the sweep names trials, splits GPUs and queues jobs itself
SHORT = {
    "learning_rate": "lr",
    "lora_rank": "r",
    "lora_alpha": "alpha",
    "lora_dropout": "drop",
    "max_length": "len",
    "per_device_train_batch_size": "bs",
    "gradient_accumulation_steps": "ga",
    "num_train_epochs": "ep",
    "weight_decay": "wd",
    "warmup_ratio": "warm",
    "max_steps": "steps",
}
_RANGE = re.compile(r"^\s*([^.\s]+)\s*\.\.\s*([^:\s]+)\s*(:log)?\s*$")


@dataclass(frozen=True)
class Range:
    """A sampled interval; integers when both ends are, on a log scale when `log`."""

    low: float
    high: float
    log: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


@dataclass
class Space:
    """Lists that combine (`grid`), lists that move together (`zip`) and sampled intervals (`ranges`)."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    zip: dict[str, list[Any]] = field(default_factory=dict)
    ranges: dict[str, Range] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return [*self.grid, *self.zip, *self.ranges]

    def combinations(self) -> list[dict[str, Any]]:
        """Every trial of a grid: the product of the grid lists, each with every zipped row."""
        grid = [dict(zip(self.grid, values, strict=True)) for values in itertools.product(*self.grid.values())]
        rows = [dict(zip(self.zip, values, strict=True)) for values in zip(*self.zip.values(), strict=True)] or [{}]
        return [g | z for g in grid for z in rows]


def checked_key(key: str, option: str) -> str:
    section, _, name = key.strip().partition(".")
    if section not in SECTIONS or not name:
        raise MhsftError(
            f"{option} {key!r}: `{key}` is not section.key. Write e.g. {option} sft.learning_rate=[1e-4,2e-4]."
        )
    if section in OWNED:
        raise MhsftError(
            f"{option} {key}: [{section}] cannot be swept (the sweep names each trial's SwanLab experiment, splits "
            "[launch] gpus between trials and queues the Slurm jobs itself). Sweep [sft] or [data_check] values."
        )
    return f"{section}.{name.strip()}"


def parse_list(text: str, option: str) -> tuple[str, list[Any]]:
    """`section.key=[a, b]` -> (key, values); a non-empty TOML array, else exit 2 naming the option."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise MhsftError(f"{option} {text!r}: expected section.key=[value, ...], e.g. {option} sft.lora_rank=[8,16].")
    key = checked_key(key, option)
    try:
        values = loads(f"v = {raw}", f"{option} {key}")["v"]
    except ValueError as exc:
        raise MhsftError(
            f"{option} {key}={raw}: not a TOML array ({exc}). Write the values in brackets, strings quoted: "
            f"{option} {key}=[1e-4,2e-4] or {option} sft.template=['qwen2_5','chatml']."
        ) from None
    return key, checked_list(key, values, option)


def checked_list(key: str, values: Any, option: str) -> list[Any]:
    """A list of sweep values: non-empty; in a grid no value twice (zipped lists may repeat one: paired rows)."""
    if not isinstance(values, list):
        raise MhsftError(f"{option} {key}: expected an array of values, e.g. [1e-4, 2e-4]; got {values!r}.")
    if not values:
        raise MhsftError(f"{option} {key}=[]: the list is empty, so the sweep would have no trial. Give 1+ values.")
    texts = [value_text(v) for v in values]
    if "zip" not in option and len(set(texts)) != len(texts):
        raise MhsftError(f"{option} {key}: {values!r} lists a value twice; each value makes one trial.")
    return values


def parse_range(text: str) -> tuple[str, Range]:
    """`section.key=LOW..HIGH[:log]` -> (key, Range)."""
    key, sep, raw = text.partition("=")
    found = _RANGE.match(raw) if sep else None
    if not found:
        raise MhsftError(
            f"--range {text!r}: expected section.key=LOW..HIGH, with :log for a log scale, e.g. "
            "--range sft.learning_rate=1e-5..1e-3:log or --range sft.lora_rank=4..64."
        )
    return checked_key(key, "--range"), checked_range(key, found.group(1), found.group(2), bool(found.group(3)))


def checked_range(key: str, low: Any, high: Any, log: bool) -> Range:
    """Numbers low < high (and > 0 on a log scale)."""
    try:
        ends = [v if isinstance(v, (int, float)) else loads(f"v = {v}", f"--range {key}")["v"] for v in (low, high)]
    except ValueError:
        ends = []
    if len(ends) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ends):
        raise MhsftError(f"--range {key}: {low}..{high} are not two numbers. Write e.g. 1e-5..1e-3 or 4..64.")
    lo, hi = ends
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi) or (log and lo <= 0):
        need = "0 < LOW < HIGH" if log else "LOW < HIGH"
        raise MhsftError(f"--range {key}={low}..{high}: a range needs {need}, both finite.")
    return Range(lo, hi, log)


def from_options(grid: list[str], zipped: list[str], ranges: list[str]) -> Space:
    """The space the command line gives."""
    space = Space()
    for text in grid:
        key, values = parse_list(text, "--grid")
        _add(space.grid, key, values, space)
    for text in zipped:
        key, values = parse_list(text, "--zip")
        _add(space.zip, key, values, space)
    for text in ranges:
        key, bounds = parse_range(text)
        _add(space.ranges, key, bounds, space)
    return space


def _add(into: dict[str, Any], key: str, value: Any, space: Space) -> None:
    if key in space.keys:
        raise MhsftError(f"{key} is swept twice (--grid, --zip, --range or [sweep]); give each key once.")
    into[key] = value


def label(values: dict[str, Any]) -> str:
    """A trial's name from its values, e.g. `lr2e-4-r16` (SwanLab experiment name, table row)."""
    return "-".join(short(key) + number_text(value) for key, value in values.items())


def short(key: str) -> str:
    """`sft.learning_rate` -> `lr`; a key without a short name -> its name (`max_grad_norm`)."""
    name = key.split(".", 1)[1]
    return SHORT.get(name, name)


def number_text(value: Any) -> str:
    """`2e-4` for 0.0002, `16` for 16, a string as written (spaces and slashes as _)."""
    if isinstance(value, float):
        if value and abs(value) < 1e-2:
            mantissa, exponent = f"{value:.3e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:g}"
    return re.sub(r"[\s/\\]+", "_", str(value)) if not isinstance(value, bool) else str(value).lower()
