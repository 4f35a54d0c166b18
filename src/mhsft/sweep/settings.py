"""A sweep's settings: `[sweep]` in the recipe, with the command line's options on top."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mhsft.errors import MhsftError
from mhsft.recipe.swift_args import suggest
from mhsft.recipe.toml_out import value_text
from mhsft.sweep.space import METHODS, Space, checked_key, checked_list, from_options, parse_range

KEYS = ("method", "trials", "metric", "direction", "parallel", "seed", "grid", "zip", "range")
DIRECTIONS = ("minimize", "maximize")


@dataclass(frozen=True)
class Settings:
    """How to search (`method`, `trials` for random/tpe, `seed`), what to optimise, and how many at once."""

    space: Space
    method: str = "grid"
    metric: str | None = None  # None: eval_loss when the recipe has an eval set, else train_loss
    direction: str = "minimize"
    trials: int | None = None
    parallel: int = 1
    seed: int = 0

    @property
    def sampled(self) -> bool:
        return self.method != "grid"


@dataclass
class Options:
    """What the command line gives (None: not given)."""

    grid: list[str] = field(default_factory=list)
    zip: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    method: str | None = None
    trials: int | None = None
    metric: str | None = None
    direction: str | None = None
    parallel: int | None = None
    seed: int | None = None


def _flat(table: Any, name: str) -> dict[str, Any]:
    """`[sweep.grid]` with `sft.lora_rank = [..]` (a nested table) or `"sft.lora_rank" = [..]` -> flat keys."""
    if not isinstance(table, dict):
        raise MhsftError(f"recipe, [sweep] {name}: expected a table of section.key = values, got {table!r}.")
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat |= {f"{key}.{k}": v for k, v in value.items()}
        else:
            flat[key] = value
    return flat


def _recipe_space(table: dict[str, Any]) -> Space:
    space = Space()
    for key, values in _flat(table.get("grid", {}), "grid").items():
        space.grid[checked_key(key, "[sweep.grid]")] = checked_list(key, values, "[sweep.grid]")
    for key, values in _flat(table.get("zip", {}), "zip").items():
        space.zip[checked_key(key, "[sweep.zip]")] = checked_list(key, values, "[sweep.zip]")
    for key, text in _flat(table.get("range", {}), "range").items():
        space.ranges[checked_key(key, "[sweep.range]")] = parse_range(f"{key}={text}")[1]
    return space


def _integer(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise MhsftError(f"sweep {name}: expected a whole number of at least {low}, got {value!r}.")
    return value


def resolve(table: dict[str, Any], options: Options) -> Settings:
    """The sweep's settings; a space on the command line replaces the recipe's. Exit 2 on anything wrong."""
    unknown = [k for k in table if k not in KEYS]
    if unknown:
        raise MhsftError(
            f"recipe, [sweep]: unknown key `{unknown[0]}`.{suggest(unknown[0], KEYS)} [sweep] takes {', '.join(KEYS)}."
        )
    given = options.grid or options.zip or options.ranges
    space = from_options(options.grid, options.zip, options.ranges) if given else _recipe_space(table)
    pick = {k: getattr(options, k) if getattr(options, k) is not None else table.get(k) for k in KEYS[:6]}
    method = pick["method"] or "grid"
    if method not in METHODS:
        raise MhsftError(f"sweep method {method!r}: expected one of {', '.join(METHODS)}.")
    direction = pick["direction"] or "minimize"
    if direction not in DIRECTIONS:
        raise MhsftError(f"sweep direction {direction!r}: expected minimize or maximize.")
    if not space.keys:
        raise MhsftError(
            "the sweep has nothing to vary. Give --grid sft.learning_rate=[1e-4,2e-4] (or --zip / --range), or a "
            "[sweep.grid] table in the recipe."
        )
    if len({len(v) for v in space.zip.values()}) > 1:
        sizes = ", ".join(f"{k} has {len(v)}" for k, v in space.zip.items())
        raise MhsftError(f"--zip lists move together, so they need the same length: {sizes}.")
    rows = [value_text(r) for r in space.combinations()] if space.zip else []
    if len(set(rows)) != len(rows):
        raise MhsftError(
            f"--zip: two trials would have the same values ({', '.join(space.zip)}); make each row differ."
        )
    trials = pick["trials"]
    if method == "grid":
        if space.ranges:
            raise MhsftError(
                f"--range {next(iter(space.ranges))}: a grid takes lists only. Use --method random or tpe with "
                "--trials N to sample from a range, or list the values with --grid."
            )
        if trials is not None:
            raise MhsftError("--trials is for --method random or tpe; a grid runs every combination of its lists.")
    else:
        if space.zip:
            raise MhsftError(f"--zip is for grids; with --method {method} give each key its own --grid or --range.")
        if trials is None:
            raise MhsftError(f"--method {method} samples the space: say how many trials with --trials N.")
        trials = _integer(trials, "trials", 1)
    return Settings(
        space=space,
        method=method,
        metric=str(pick["metric"]) if pick["metric"] else None,
        direction=direction,
        trials=trials,
        parallel=_integer(pick["parallel"] if pick["parallel"] is not None else 1, "parallel", 1),
        seed=_integer(pick["seed"] if pick["seed"] is not None else 0, "seed", 0),
    )
