"""A folder as a dataset: accepted when ms-swift trains on every data file in it (and each is scanned), refused
before swift otherwise. What swift reads of a folder is datasets' answer (see mhsft.datagate.folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mhsft.datagate.folder import read_files
from mhsft.datagate.gate import _scan_all
from mhsft.datagate.report import analyse
from mhsft.datagate.rows import Split
from mhsft.datagate.scan import NO_USER, fingerprint
from mhsft.datagate.spec import GateSpec
from mhsft.errors import DATA_CHECK, USAGE, MhsftError

from support.running import local_recipe, mhsft, write


def rows(*pairs: tuple[str, str]) -> str:
    return "".join(
        json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n"
        for q, a in pairs
    )


GOOD = rows(("q", "a"), ("q2", "a2"))


def _layout(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write(folder / name, text)


REFUSED = {
    "empty": ({}, "is an empty folder"),
    "no data file": ({"notes.md": "# notes\n"}, "holds no data file ms-swift reads (only notes.md)"),
    "another split": ({"train.jsonl": GOOD, "test.jsonl": GOOD}, "named as another split (test.jsonl"),
    "another format": (
        {"a.jsonl": GOOD, "b.csv": "query,response\nq,a\n"},
        "in another format than its json files (b.csv)",
    ),
    "a split folder": ({"part.jsonl": GOOD, "dev/part.jsonl": GOOD}, "named as another split (dev/part.jsonl"),
    "a file beside a split's": (
        {"train.jsonl": GOOD, "extra.jsonl": GOOD},
        "not named for a split (extra.jsonl) beside train.jsonl, which is",
    ),
    "a README.md it cannot parse": (
        {"train.jsonl": GOOD, "README.md": "---\nconfigs: [\n---\n"},
        "ms-swift cannot read (",
    ),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_folder_swift_would_not_train_on_whole_is_refused_before_swift(workdir, env, fake_swift, case: str) -> None:
    files, expected = REFUSED[case]
    local_recipe(workdir)
    _layout(workdir / "folder", files)
    for command in (("validate", "r.toml"), ("train", "r.toml", "--no-preflight")):
        result = mhsft(*command, "--set", "sft.dataset=['folder']", env=env, cwd=workdir)
        assert result.returncode == USAGE, result.stderr
        error = result.stderr.strip().splitlines()[-1]
        assert error.startswith("error: [sft] dataset folder is ") and expected in error, error
        assert "Traceback" not in result.stderr
    assert fake_swift.calls() == []  # with the gate off too (the env sets MHSFT_NO_DATA_CHECK)


def test_a_folder_of_data_files_is_read_whole_nested_with_hidden_files_and_readme_aside(workdir: Path) -> None:
    _layout(
        workdir / "d",
        {
            "a.jsonl": GOOD,
            "sub/b.jsonl": GOOD,
            "c.json": "[]",
            "README.md": "# card\n",
            ".notes": "x",
            ".git/HEAD": "x",
        },
    )
    assert [str(Path(f).relative_to(workdir / "d")) for f in read_files("d")] == ["a.jsonl", "c.json", "sub/b.jsonl"]
    _layout(workdir / "shards", {"train-00000-of-00002.jsonl": GOOD, "train-00001-of-00002.jsonl": GOOD})
    assert len(read_files("shards")) == 2  # files all named for the train split: all trained on


def test_each_file_of_a_folder_is_scanned_and_a_dropped_row_named_by_its_file(workdir: Path) -> None:
    bad = json.dumps({"messages": [{"role": "assistant", "content": "an answer to nothing"}]}) + "\n"
    _layout(workdir / "d", {"a.jsonl": GOOD, "b.jsonl": GOOD + bad})
    folder = str(workdir / "d")
    scans = _scan_all([(folder, "train")])
    assert scans[folder].rows == 5 and scans[folder].causes[NO_USER].examples == ["d/b.jsonl:3"]
    kept = [fingerprint(t) for t in (["q", "a"], ["q2", "a2"])] * 2  # swift kept all but the answer to nothing
    split = Split.of([folder] * 4, [10] * 4, kept)
    spec = GateSpec({}, None, "delete", None, ())
    report = analyse(spec, [(folder, "train")], scans, {"train": split, "val": None}, {}, {})
    assert report["total"]["read"] == 5 and report["total"]["dropped"] == 1
    assert report["total"]["causes"][NO_USER]["examples"] == ["d/b.jsonl:3"]


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        ('{"messages": [\n', "d/b.jsonl: 1 row(s) with unparseable JSON: d/b.jsonl:1"),
        (
            json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}) + "\n",
            "is a folder whose files have different columns (d/a.jsonl: messages; d/b.jsonl: conversations)",
        ),
    ],
    ids=["broken line", "other columns"],
)
def test_a_folder_file_swift_would_fail_on_is_refused_by_the_scan(workdir: Path, second: str, expected: str) -> None:
    _layout(workdir / "d", {"a.jsonl": GOOD, "b.jsonl": second})
    with pytest.raises(MhsftError) as err:
        _scan_all([(str(workdir / "d"), "train")])
    assert expected in str(err.value) and err.value.exit_code == DATA_CHECK


def test_a_validation_folder_is_named_by_its_key(workdir: Path) -> None:
    _layout(workdir / "v", {})
    with pytest.raises(MhsftError, match=r"^\[sft\] val_dataset v is an empty folder"):
        _scan_all([(str(workdir / "v"), "val")])
