"""`mhsft runs` (and `runs compare`) at the terminal's width: one line a run, long values shortened, the least
needed columns left out and named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mhsft import ui

from support.running import local_recipe, mhsft

LONG_NAME = "qwen2-5-7b-instruct-lora-on-our-customer-support-sharegpt-export-2026-11"
DEEP = "outputs/" + "/".join(["a-rather-long-folder-name"] * 4)


@pytest.fixture
def two_runs(workdir: Path, env: dict) -> list[str]:
    """Two recorded trainings of a recipe with a long name and a deep output folder; their ids."""
    recipe = local_recipe(workdir)
    recipe.write_text(recipe.read_text().replace('name = "unit"', f'name = "{LONG_NAME}"'))
    for _ in range(2):
        result = mhsft("train", "r.toml", "--set", f"sft.output_dir={DEEP}", env=env, cwd=workdir)
        assert result.returncode == 0, result.stderr
    return sorted(p.stem for p in (workdir / ".mhsft" / "runs").glob("*.json"))


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_each_run_is_one_line_within_the_terminal_width(workdir: Path, env: dict, two_runs: list[str], width: int):
    result = mhsft("runs", env=env | {"COLUMNS": str(width)}, cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= width, result.stdout
    assert len(lines) == 4 + len(two_runs), result.stdout  # frame, header, rule, one line a run, frame
    for run_id in two_runs:  # the whole id, to type it
        assert sum(run_id in line for line in lines) == 1, result.stdout
    assert all("succeeded" in line for line in lines[3:-1])
    if width <= 120:
        assert "column(s) hidden (" in result.stderr and "widen the terminal or use --wide/--json" in result.stderr
    if width >= 120:
        assert "…" in result.stdout and "checkpoint-20" in result.stdout  # a path keeps its end
    if width == 200:
        assert "hidden" not in result.stderr


def test_wide_shows_every_column_and_json_every_value(workdir: Path, env: dict, two_runs: list[str]) -> None:
    wide = mhsft("runs", "--wide", env=env | {"COLUMNS": "80"}, cwd=workdir)
    assert wide.returncode == 0 and "hidden" not in wide.stderr
    lines = wide.stdout.splitlines()
    assert len(lines) == 4 + len(two_runs) and "slurm" in lines[1] and "checkpoint" in lines[1]
    assert str(workdir / DEEP) in lines[3] and "…" not in wide.stdout
    doc = json.loads(mhsft("runs", "--json", env=env, cwd=workdir).stdout)
    assert doc["schema_version"] == 1 and sorted(r["id"] for r in doc["runs"]) == two_runs
    assert doc["runs"][0]["recipe"] == LONG_NAME and doc["runs"][0]["output"].startswith(str(workdir / DEEP))


def test_compare_fits_the_width_too(workdir: Path, env: dict, two_runs: list[str]) -> None:
    other = mhsft("train", "r.toml", "--set", f"sft.output_dir={DEEP}/another-long-name", env=env, cwd=workdir)
    assert other.returncode == 0, other.stderr
    third = max((workdir / ".mhsft" / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns).stem
    result = mhsft("runs", "compare", two_runs[0], third, env=env | {"COLUMNS": "80"}, cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    rows = [line for line in lines if line.startswith("│")]
    assert any(line.startswith("│ sft.output_dir") for line in rows), result.stdout
    assert all(line[1:].split("│")[0].strip() for line in rows), result.stdout  # no row goes on to a 2nd line


def test_fitting_shortens_then_drops_by_priority() -> None:
    columns = ["id", "note", "path"]
    rows = [["run-1", "n" * 40, "/very/long/path/to/checkpoint-20"]]
    fit = ui.Fit(priority=("id", "path", "note"), whole=frozenset({"id"}), tails=frozenset({"path"}))
    assert ui.fitted(columns, rows, 200, fit) == ([0, 1, 2], [5, 40, 32])  # room for everything
    shown, widths = ui.fitted(columns, rows, 42, fit)  # 5 + 24 + 3 * 2 + 1 = 36: note (8 more) is left out
    assert shown == [0, 2] and widths == [5, 30]  # and path gets the room left
    assert ui._cut("/very/long/path/to/checkpoint-20", 18, tail=True) == "…/to/checkpoint-20"
    assert ui._cut("n" * 40, 8, tail=False) == "nnnnnnn…"
    twice = ui.Fit(priority=("id", "path", "id", "note"), whole=frozenset({"id"}))  # sweep show's metric is a loss
    assert ui.fitted(columns, rows, 200, twice)[0] == [0, 1, 2]  # each column once


def test_sweep_show_with_the_default_metric_shows_it_once(workdir: Path, env: dict) -> None:
    local_recipe(workdir)
    assert mhsft("sweep", "r.toml", "--grid", "sft.learning_rate=[1e-4,2e-4]", env=env, cwd=workdir).returncode == 0
    result = mhsft("sweep", "show", env=env | {"COLUMNS": "200"}, cwd=workdir)
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "trial" in line and "status" in line)
    assert header.count("train_loss") == 1, result.stdout


@pytest.mark.parametrize("width", [60, 80])
def test_sweep_show_is_one_line_a_trial(workdir: Path, env: dict, width: int) -> None:
    local_recipe(workdir)
    grid = ["--grid", "sft.learning_rate=[1e-4,2e-4]", "--grid", "sft.lora_rank=[8,16]"]
    assert mhsft("sweep", "r.toml", *grid, "--metric", "last_loss", env=env, cwd=workdir).returncode == 0
    result = mhsft("sweep", "show", env=env | {"COLUMNS": str(width)}, cwd=workdir)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 4 and all(len(line) <= width for line in rows), result.stdout
    assert [line.split("│")[2].strip() for line in rows] == ["0", "1", "2", "3"]  # the trial column, each once
    assert "column(s) hidden (" in result.stderr and "use --json" in result.stderr
