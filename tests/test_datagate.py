"""The dataset gate without ms-swift: the line scan, the report's arithmetic, the budget, [data_check]."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mhsft.datagate.cache import seal
from mhsft.datagate.gate import enforce
from mhsft.datagate.report import REJECTED, TOO_LONG, analyse, length_stats, steps_per_epoch
from mhsft.datagate.rows import Split
from mhsft.datagate.scan import (
    DUPLICATE_KEY,
    EMPTY_ANSWER,
    ENDS_WITH_USER,
    NO_USER,
    OTHER_SCHEMA,
    TOO_DEEP,
    TOO_LONG_LINE,
    UNPARSEABLE,
    fingerprint,
    scan,
)
from mhsft.datagate.spec import CACHE_DIR, MAX_PROCESSES, GateSpec, gate_spec, processes
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.recipe.load import load
from mhsft.recipe.validate import validate

from support.running import local_recipe, mhsft, write


def sharegpt(question: str, answer: str) -> str:
    turns = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return json.dumps({"conversations": turns})


def test_scan_counts_rows_and_names_each_problem_by_line(workdir: Path) -> None:
    lines = [sharegpt(f"q{i}", f"a{i}") for i in range(5)]
    lines += [
        json.dumps({"conversations": [{"from": "gpt", "value": "no question"}]}),
        sharegpt("q", " "),
        "",
        "[1, 2]",
    ]
    found = scan(write(workdir / "d.jsonl", "\n".join(lines) + "\n"))
    assert found.rows == 8 and found.layout == "conversations"
    assert found.causes[NO_USER].examples == ["d.jsonl:6"]
    assert found.causes[EMPTY_ANSWER].examples == ["d.jsonl:7"]
    assert found.fatal[0][0] == "not a JSON object" and found.fatal[0][1].examples == ["d.jsonl:9 (list)"]


def test_scan_finds_broken_lines_and_mixed_schemas(workdir: Path) -> None:
    good = [sharegpt(f"q{i}", f"a{i}") for i in range(50)]
    broken = scan(write(workdir / "b.jsonl", "\n".join([*good[:3], '{"conversations": [', *good[3:]]) + "\n"))
    assert [c for c, _ in broken.fatal] == [UNPARSEABLE]
    assert broken.causes[UNPARSEABLE].examples[0].startswith("b.jsonl:4 (")
    mixed = [*good, json.dumps({"messages": [{"role": "user", "content": "x"}]}), json.dumps({"text": "t"})]
    found = scan(write(workdir / "m.jsonl", "\n".join(mixed) + "\n"))
    assert found.causes[OTHER_SCHEMA].count == 2
    assert found.causes[OTHER_SCHEMA].examples == [
        "m.jsonl:51 (messages; the file is conversations)",
        "m.jsonl:52 (text; the file is conversations)",
    ]


@pytest.mark.parametrize(
    ("content", "expected", "code"),
    [
        (None, "does not exist", 2),
        ("", "is empty", 4),
        (b"\x00\x01binary", "not a text file", 4),
        ("dir", "is a folder", 2),
    ],
)
def test_scan_refuses_files_it_cannot_read(workdir: Path, content, expected: str, code: int) -> None:
    path = workdir / "data.jsonl"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(MhsftError, match=expected) as err:
        scan(path)
    assert err.value.exit_code == code


def test_json_array_files_are_scanned_item_by_item(workdir: Path) -> None:
    rows = [json.loads(sharegpt("q", "a")), {"conversations": [{"from": "human", "value": "q"}]}]
    found = scan(write(workdir / "d.json", json.dumps(rows)))
    assert found.rows == 2 and found.causes[ENDS_WITH_USER].examples == ["d.json:2"]


def _rows(entries: list[tuple[str, int, int]]) -> dict:
    split = Split.of([d for d, _, _ in entries], [n for _, n, _ in entries], [s for _, _, s in entries])
    return {"train": split, "val": None}


def test_report_names_dropped_rows_by_line_and_cause(workdir: Path) -> None:
    lines = [sharegpt(f"q{i}", f"a{i}") for i in range(4)] + [json.dumps({"conversations": []})]
    path = write(workdir / "d.jsonl", "\n".join(lines) + "\n")
    found = scan(path)
    sig = [fingerprint([f"q{i}", f"a{i}"]) for i in range(4)]
    # swift kept rows 1-4 (row 5 has no turns); row 3 is 900 tokens, over max_length 512
    rows = _rows([(str(path), 30, sig[0]), (str(path), 31, sig[1]), (str(path), 900, sig[2]), (str(path), 40, sig[3])])
    spec = GateSpec({}, 512, "delete", None, ())
    report = analyse(spec, [(str(path), "train")], {str(path): found}, rows, {"per_device_train_batch_size": 2}, {})
    part = report["datasets"][0]
    assert (part["read"], part["kept"], part["dropped"]) == (5, 3, 2)
    assert part["causes"][TOO_LONG]["examples"] == ["d.jsonl:3 (900 tokens)"]
    assert part["causes"][NO_USER]["examples"] == ["d.jsonl:5"]
    assert report["lengths"]["max"] == 40 and report["lengths"]["total_tokens"] == 101
    assert report["train_rows"] == 3
    right = analyse(GateSpec({}, 512, "right", None, ()), [(str(path), "train")], {str(path): found}, rows, {}, {})
    assert right["total"]["truncated"] == 1 and right["total"]["kept"] == 4 and right["lengths"]["max"] == 512


def test_unmatched_rows_are_counted_without_guessing_lines(workdir: Path) -> None:
    path = write(workdir / "d.jsonl", "\n".join(sharegpt(f"q{i}", "a") for i in range(3)) + "\n")
    rows = _rows([(str(path), 10, 12345)])  # a fingerprint of no source row
    report = analyse(
        GateSpec({}, None, "delete", None, ()), [(str(path), "train")], {str(path): scan(path)}, rows, {}, {}
    )
    assert report["total"]["causes"] == {REJECTED: {"count": 2, "examples": []}}


def test_copies_of_one_dialogue_pair_up_with_their_lines_in_order(workdir: Path) -> None:
    lines = [sharegpt("same", "row")] * 5 + [sharegpt("other", "row")]
    path = write(workdir / "d.jsonl", "\n".join(lines) + "\n")
    same, other = fingerprint(["same", "row"]), fingerprint(["other", "row"])
    rows = _rows([(str(path), 900, same), (str(path), 10, other), (str(path), 11, same), (str(path), 12, same)])
    report = analyse(
        GateSpec({}, 512, "delete", None, ()), [(str(path), "train")], {str(path): scan(path)}, rows, {}, {}
    )
    causes = report["total"]["causes"]
    assert causes[REJECTED]["examples"] == ["d.jsonl:4", "d.jsonl:5"]  # the 4th and 5th copy were not kept
    assert causes[TOO_LONG]["examples"] == ["d.jsonl:1 (900 tokens)"]  # the first kept copy is line 1


def test_the_scan_fingerprints_each_row_in_the_same_pass(workdir: Path) -> None:
    lines = [sharegpt("q", "a"), "{broken", json.dumps({"text": "t"}), "", sharegpt("q2", "a2")]
    found = scan(write(workdir / "d.jsonl", "\n".join(lines) + "\n"))
    assert list(found.numbers) == [1, 2, 3, 5]
    assert list(found.sigs) == [fingerprint(["q", "a"]), 0, 0, fingerprint(["q2", "a2"])]


def test_export_processes_every_core_unless_the_recipe_says(workdir: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    auto, why = processes(_recipe(workdir, ""), None)
    assert 1 <= auto <= min(cores, MAX_PROCESSES) and why == f"of {cores} cores; [data_check] num_proc sets it"
    assert processes(_recipe(workdir, ""), 10)[0] == 1  # 10 rows do not repay a second process
    assert processes(_recipe(workdir, "dataset_num_proc = 3"), 10) == (
        3,
        "[sft] dataset_num_proc; [data_check] num_proc overrides",
    )
    both = _recipe(workdir, "dataset_num_proc = 3\n[data_check]\nnum_proc = 5")
    assert processes(both, 10) == (5, "[data_check] num_proc")


def test_the_key_does_not_depend_on_the_process_count(workdir: Path) -> None:
    keys = {gate_spec(_recipe(workdir, extra), workdir).key for extra in ("", "dataset_num_proc = 4")}
    keys.add(gate_spec(_recipe(workdir, "[data_check]\nnum_proc = 2"), workdir).key)
    assert len(keys) == 1
    assert gate_spec(_recipe(workdir, "max_length = 64"), workdir).key not in keys  # the report depends on it


def test_a_cache_hit_reads_no_row(workdir: Path, env: dict) -> None:
    recipe = _recipe(workdir, "")
    good = write(workdir / "good.jsonl", sharegpt("q", "a") + "\n")
    forged = analyse(
        GateSpec({}, None, "delete", None, ()),
        [(str(good), "train")],
        {str(good): scan(good)},
        _rows([(str(good), 7, fingerprint(["q", "a"]))]),
        {},
        {},
    )
    write(workdir / "data" / "train.jsonl", sharegpt("q", "a") + "\n{broken\n")  # the scan would refuse line 2
    entry = workdir / CACHE_DIR / gate_spec(recipe, workdir).key
    write(entry / "report.json", json.dumps(forged))
    seal(entry)
    gate_on = {k: v for k, v in env.items() if k != "MHSFT_NO_DATA_CHECK"}
    hit = mhsft("data", "check", "r.toml", "--json", env=gate_on, cwd=workdir)
    assert hit.returncode == 0 and json.loads(hit.stdout)["cache_hit"] is True, hit.stderr
    shutil.rmtree(workdir / CACHE_DIR)
    miss = mhsft("data", "check", "r.toml", env=gate_on, cwd=workdir)
    assert miss.returncode == 4 and "data/train.jsonl:2" in miss.stderr


def test_lengths_and_steps() -> None:
    stats = length_stats([5, 1, 3, 100, 7], 120)
    assert (stats["min"], stats["median"], stats["max"], stats["total_tokens"]) == (1, 5, 100, 116)
    assert sum(count for _, _, count in stats["histogram"]) == 5
    assert steps_per_epoch(64, {"per_device_train_batch_size": 2}, {})["steps_per_epoch"] == 4  # accum 8
    multi = {"NPROC_PER_NODE": "8", "NNODES": "2"}
    got = steps_per_epoch(10_000, {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4}, multi)
    assert got == {"processes": 16, "batch_size": 2, "gradient_accumulation_steps": 4, "steps_per_epoch": 78}


def _recipe(workdir: Path, budget: str):
    local_recipe(workdir, extra=budget)
    return validate(load("r.toml", Environment(values={})))


def test_budget(workdir: Path) -> None:
    report = {
        "total": {
            "read": 100,
            "kept": 97,
            "dropped": 3,
            "truncated": 0,
            "causes": {TOO_LONG: {"count": 3, "examples": ["d.jsonl:7 (900 tokens)"]}},
        },
        "train_rows": 97,
        "max_length": 512,
    }
    with pytest.raises(MhsftError, match=r"3 of 100 rows \(3.0%\).*max_dropped = 0 .*d.jsonl:7") as err:
        enforce(report, _recipe(workdir, ""))
    assert err.value.exit_code == 4
    enforce(report, _recipe(workdir, "[data_check]\nmax_dropped = 0.05\n"))
    with pytest.raises(MhsftError, match="no training row is left"):
        enforce(report | {"train_rows": 0}, _recipe(workdir, "[data_check]\nmax_dropped = 1\n"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("max_droped = 0.1", "Did you mean `max_dropped`"),
        ("max_dropped = 5", r"from 0 \(none\) to 1 \(all\)"),
        ('max_truncated = "1%"', "expected a number"),
        ("max_dropped = nan", r"from 0 \(none\) to 1 \(all\)"),
        ("max_dropped = -inf", r"from 0 \(none\) to 1 \(all\); got -inf"),
        ("max_truncated = -0.5", r"from 0 \(none\) to 1 \(all\)"),
        ("num_proc = 0", r"\[data_check\] num_proc: .*1 or more; got 0"),
        ("num_proc = 1.5", "expected an integer"),
    ],
)
def test_data_check_section_is_validated(workdir: Path, body: str, message: str) -> None:
    with pytest.raises(MhsftError, match=message):
        _recipe(workdir, f"[data_check]\n{body}\n")


def test_train_stops_before_swift_on_a_broken_line(workdir: Path, env: dict, fake_swift) -> None:
    local_recipe(workdir)
    write(workdir / "data" / "train.jsonl", sharegpt("q", "a") + "\n{broken\n")
    gate_on = {k: v for k, v in env.items() if k != "MHSFT_NO_DATA_CHECK"}
    result = mhsft("train", "r.toml", env=gate_on, cwd=workdir)
    assert result.returncode == 4, result.stderr
    assert "data/train.jsonl:2" in result.stderr and "unparseable JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert fake_swift.calls() == []
    assert not (workdir / ".mhsft" / "data-cache").exists() or not any((workdir / ".mhsft" / "data-cache").iterdir())
    skipped = mhsft("train", "r.toml", "--no-data-check", env=gate_on, cwd=workdir)
    assert skipped.returncode == 0 and "--no-data-check: the dataset is not checked" in skipped.stderr


def test_data_check_names_a_mixed_schema_line(workdir: Path, env: dict) -> None:
    local_recipe(workdir)
    rows = [sharegpt(f"q{i}", "a") for i in range(20)] + [json.dumps({"text": "t"})]
    write(workdir / "data" / "train.jsonl", "\n".join(rows) + "\n")
    result = mhsft("data", "check", "r.toml", env=env, cwd=workdir)
    assert result.returncode == 4
    assert "data/train.jsonl:21 (text; the file is conversations)" in result.stderr
    assert "union of both layouts" in result.stderr


def test_doctor_reports_the_last_data_check_without_tokenising(workdir: Path) -> None:
    from mhsft.datagate.spec import gate_spec
    from mhsft.selfcheck.doctor import last_data_check

    recipe = _recipe(workdir, "")
    assert last_data_check(recipe, workdir).status == "warn"  # never checked here
    result = {
        "recipe": str(recipe.path),
        "key": gate_spec(recipe, workdir).key,
        "checked_at": 0,
        "rows_read": 10,
        "rows_kept": 10,
        "rows_dropped": 0,
        "rows_truncated": 0,
        "tokens": {"min": 3, "median": 5, "p95": 9, "max": 9, "total_tokens": 50},
        "steps_per_epoch": 1,
    }
    write(workdir / ".mhsft" / "data-check" / "unit.json", json.dumps(result))
    found = last_data_check(recipe, workdir)
    assert found.status == "ok" and "10 rows read, 10 kept, 0 dropped" in found.detail
    write(workdir / ".mhsft" / "data-check" / "unit.json", json.dumps(result | {"rows_kept": 9, "rows_dropped": 1}))
    assert last_data_check(recipe, workdir).status == "fail"
    write(workdir / "data" / "train.jsonl", sharegpt("changed", "data") + "\n")
    changed = last_data_check(recipe, workdir)
    assert changed.status == "warn" and "changed since" in changed.detail


def with_column(row: str, text: str) -> str:
    """A JSON line with `text` (raw JSON: `"key": value`) added to its object."""
    return row[:-1] + ", " + text + "}"


def test_scan_takes_a_byte_order_mark_and_nan_literals_as_swifts_reader_does(workdir: Path) -> None:
    rows = [sharegpt(f"q{i}", f"a{i}") for i in range(20)]
    rows[3], rows[4] = with_column(rows[3], '"score": NaN'), with_column(rows[4], '"score": -Infinity')
    rows[5] = with_column(rows[5], '"score": Inf')
    path = workdir / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(rows).encode() + b"\n")
    found = scan(path)
    assert (found.rows, found.layout, found.causes) == (20, "conversations", {})
    path.write_bytes("\n".join([*rows[:7], "\ufeff" + rows[7], *rows[8:]]).encode())  # one inside: pyarrow fails
    assert scan(path).causes[UNPARSEABLE].examples == ["d.jsonl:8 (a byte order mark inside the file)"]


def test_scan_names_a_key_given_twice_by_line_at_any_depth(workdir: Path, env: dict) -> None:
    rows = [sharegpt(f"q{i}", f"a{i}") for i in range(25)]
    rows[18] = with_column(rows[18], '"conversations": []')
    rows[20] = rows[20].replace('"from": "human"', '"from" : "human", "from" : "human"', 1)  # the slow path
    rows[21] = with_column(rows[21], '"note": "He said \\"x\\": y, \\u00e9 \\"z\\" : w"')  # not a key twice
    rows[22] = with_column(rows[22], '"score": NaN, "score": 1')  # pyarrow's own message
    found = scan(write(workdir / "d.jsonl", "\n".join(rows) + "\n"))
    assert found.causes[DUPLICATE_KEY].examples == [
        "d.jsonl:19 (key 'conversations' twice)",
        "d.jsonl:21 (key 'from' twice)",
        "d.jsonl:23 (Column(/score) was specified twice)",
    ]
    local_recipe(workdir)
    write(workdir / "data" / "train.jsonl", "\n".join(rows[:20]) + "\n")
    gate_on = {k: v for k, v in env.items() if k != "MHSFT_NO_DATA_CHECK"}
    result = mhsft("data", "check", "r.toml", env=gate_on, cwd=workdir)
    assert result.returncode == 4 and "Traceback" not in result.stderr, result.stderr
    assert "data/train.jsonl:19 (key 'conversations' twice)" in result.stderr
    assert "ms-swift would fail on the whole file" in result.stderr


def test_values_nested_deeper_than_arrow_takes_are_refused_by_row_never_a_traceback(workdir: Path, env) -> None:
    row = json.loads(sharegpt("q", "a"))
    ok, deep = [row | {"v": json.loads("[" * 62 + "]" * 62)}], [row | {"v": json.loads("[" * 63 + "]" * 63)}]
    assert scan(write(workdir / "ok.json", json.dumps(ok))).causes == {}
    assert scan(write(workdir / "deep.json", json.dumps([row, *deep]))).causes[TOO_DEEP].examples == [
        "deep.json:2 (64 levels)"
    ]
    lines = [sharegpt("q", "a"), sharegpt("q", "a")[:-1] + ', "v": ' + "[" * 5000 + "]" * 5000 + "}"]
    assert scan(write(workdir / "deep.jsonl", "\n".join(lines))).causes[TOO_DEEP].examples == [
        "deep.jsonl:2 (over 1000 levels)"
    ]
    with pytest.raises(MhsftError, match="nested deeper than 63 levels") as err:
        scan(write(workdir / "deeper.json", "[" + lines[1] + "]"))
    assert err.value.exit_code == 4
    local_recipe(workdir)
    gate_on = {k: v for k, v in env.items() if k != "MHSFT_NO_DATA_CHECK"}
    result = mhsft("data", "check", "r.toml", "--set", "sft.dataset=['deeper.json']", env=gate_on, cwd=workdir)
    assert result.returncode == 4 and "Traceback" not in result.stderr and "deeper.json holds" in result.stderr


def test_a_line_over_the_limit_is_refused_by_number_and_never_held_whole(workdir: Path, monkeypatch) -> None:
    import tracemalloc

    from mhsft.datagate import scan as scan_module

    monkeypatch.setattr(scan_module, "MAX_LINE_BYTES", 1 << 20)
    good = sharegpt("q", "a")
    huge = sharegpt("q" * (12 << 20), "a")
    path = write(workdir / "d.jsonl", "\n".join([good, good, huge, good]) + "\n")
    tracemalloc.start()
    found = scan(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert found.rows == 4 and [c for c, _ in found.fatal] == [TOO_LONG_LINE]
    assert found.causes[TOO_LONG_LINE].examples == ["d.jsonl:3 (12 MiB)"]
    assert peak < 6 << 20, f"{peak} bytes held for a 12 MiB line"  # a few blocks, never the line


def test_devices_and_fifos_are_refused_whatever_their_name(workdir: Path, env: dict) -> None:
    import os

    from mhsft.datagate.scan import refuse_special

    fifo = workdir / "data.txt"
    os.mkfifo(fifo)
    (workdir / "folder").mkdir()
    os.mkfifo(workdir / "folder" / "part.jsonl")
    for path in ("/dev/zero", str(fifo), str(workdir / "folder")):
        with pytest.raises(MhsftError, match="is not a regular file"):
            refuse_special(path)
    local_recipe(workdir)
    write(workdir / "model" / "tokenizer.json", "{}")
    gate_on = {k: v for k, v in env.items() if k != "MHSFT_NO_DATA_CHECK"}
    for dataset in ("/dev/zero", "data.txt"):
        result = mhsft("data", "check", "r.toml", "--set", f"sft.dataset=['{dataset}']", env=gate_on, cwd=workdir)
        assert result.returncode == 2, result.stderr
        assert f"{dataset} is not a regular file" in result.stderr and "Traceback" not in result.stderr


def test_the_same_file_listed_twice_counts_each_listing_and_keeps_the_budget(workdir: Path) -> None:
    lines = [sharegpt(f"q{i}", f"a{i}") for i in range(19)] + [json.dumps({"conversations": []})]
    path = write(workdir / "d.jsonl", "\n".join(lines) + "\n")
    kept = [(str(path), 10, fingerprint([f"q{i}", f"a{i}"])) for i in range(19)]
    rows = _rows(kept + kept)  # swift reads the file once per listing: each row twice, the empty one dropped twice
    entries = [(str(path), "train"), (str(path), "train")]
    report = analyse(GateSpec({}, None, "delete", None, ()), entries, {str(path): scan(path)}, rows, {}, {})
    assert [(p["read"], p["kept"], p["dropped"]) for p in report["datasets"]] == [(20, 19, 1), (20, 19, 1)]
    assert (report["total"]["read"], report["total"]["kept"], report["total"]["dropped"]) == (40, 38, 2)
    assert report["total"]["causes"][NO_USER]["count"] == 2
    with pytest.raises(MhsftError, match=r"2 of 40 rows \(5.0%\) would be dropped"):
        enforce(report, _recipe(workdir, ""))


@pytest.mark.parametrize("name", ["../../d", "a/b", "..", "", "a\\\\b"])
def test_a_recipe_name_that_is_not_a_plain_file_name_is_refused(workdir: Path, env: dict, name: str) -> None:
    local_recipe(workdir)
    (workdir / "r.toml").write_text(
        f'name = "{name}"\n' + (workdir / "r.toml").read_text().replace('name = "unit"', "")
    )
    user_file = write(workdir.parent / "d.json", "the user's own data")
    with pytest.raises(MhsftError, match=r"`name`: .* cannot name a file"):
        validate(load("r.toml", Environment(values={})))
    result = mhsft(
        "data", "check", "r.toml", env={k: v for k, v in env.items() if k != "MHSFT_NO_DATA_CHECK"}, cwd=workdir
    )
    assert result.returncode == 2 and "cannot name a file" in result.stderr, result.stderr
    assert user_file.read_text() == "the user's own data"


def test_lines_read_in_blocks_are_the_files_lines_with_long_ones_refused(tmp_path: Path) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mhsft.datagate import scan as scan_module

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(st.sampled_from(["1", "[1, 2]", "", "  ", '"x' + "y" * 30 + '"', "7\r"]), max_size=40), st.booleans()
    )
    def check(lines: list[str], newline_at_end: bool) -> None:
        path = tmp_path / "d.jsonl"
        path.write_text("\n".join(lines) + ("\n" if newline_at_end else ""))
        got = list(scan_module._lines(path))
        expected = [
            (i, "long" if len(line) > scan_module.MAX_LINE_BYTES else json.loads(line))
            for i, line in enumerate(lines, 1)
            if line.strip()
        ]
        assert [(n, "long" if getattr(r, "cause", None) == TOO_LONG_LINE else r) for n, r in got] == expected

    mp = pytest.MonkeyPatch()
    with mp.context() as patched:
        patched.setattr(scan_module, "MAX_LINE_BYTES", 20)
        patched.setattr(scan_module, "BLOCK", 8)
        check()


def test_a_row_whose_last_turn_is_the_users_is_named_so_not_an_empty_answer(workdir: Path) -> None:
    asks = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    asks["messages"].append({"role": "user", "content": "and then?"})
    blank = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}
    found = scan(write(workdir / "d.jsonl", f"{json.dumps(asks)}\n{json.dumps(blank)}\n"))
    assert found.causes[ENDS_WITH_USER].examples == ["d.jsonl:1"] and ENDS_WITH_USER == "ends with a user turn"
    assert found.causes[EMPTY_ANSWER].examples == ["d.jsonl:2"]


def test_every_broken_line_up_to_a_cap_in_one_pass_with_its_place_in_the_line(workdir: Path, env: dict) -> None:
    rows = [sharegpt(f"q{i}", f"a{i}") for i in range(30)]
    for i in (3, 9, 14, 20, 22, 27, 29):
        rows[i] = rows[i][:-2]  # cut short: the object never closes
    rows[5] = rows[5] + "}"  # one brace too many
    found = scan(write(workdir / "d.jsonl", "\n".join(rows) + "\n"))
    broken = found.causes[UNPARSEABLE]
    assert broken.count == 8 and len(broken.examples) == 5
    assert broken.examples[0] == "d.jsonl:4 (unexpected end of data: at the end of the line)"
    assert f"at character {len(rows[5])} of the line" in broken.examples[1] and "column" not in broken.examples[1]
    local_recipe(workdir)
    write(workdir / "data" / "train.jsonl", "\n".join(rows) + "\n")
    result = mhsft("data", "check", "r.toml", env=env, cwd=workdir)
    assert result.returncode == 4 and "8 row(s) with unparseable JSON, the first 5: " in result.stderr
    assert "train.jsonl:21 " in result.stderr  # the fifth, not only the first three
