"""Hostile and malformed input: every case is a one-paragraph error with exit 2, never a traceback or a hang,
and swift is never started."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.recipe.load import load
from mhsft.recipe.plan import train_plan
from mhsft.recipe.validate import validate

from support.environment import SECRET
from support.running import local_recipe, mhsft, write

DEEP = 1000
HUGE_INT = "9" * 5000
LONG_NAME = "n" * 300
BASE = 'extends = "r.toml"\n'

# name -> (recipe file body or None for r.toml itself, extra CLI arguments, expected text in the error)
CASES: dict[str, tuple[str | None, list[str], str]] = {
    "nested arrays": (BASE + "[sft]\ndataset = " + "[" * DEEP + "]" * DEEP + "\n", [], "levels deep"),
    "nested tables": (BASE + "[sft]\nmodel_kwargs = " + "{a=" * DEEP + "1" + "}" * DEEP + "\n", [], "levels deep"),
    "nested dotted keys": (BASE + "[sft]\nmodel_kwargs." + ".".join(["a"] * DEEP) + " = 1\n", [], "levels deep"),
    "--set nested arrays": (None, ["--set", "sft.dataset=" + "[" * DEEP + "]" * DEEP], "levels deep"),
    "--set nested tables": (None, ["--set", "sft.model_kwargs=" + "{a=" * DEEP + "1" + "}" * DEEP], "levels deep"),
    "huge integer": (BASE + f"[sft]\nlora_rank = {HUGE_INT}\n", [], "4300 digits"),
    "--set huge integer": (None, ["--set", f"sft.lora_rank={HUGE_INT}"], "4300 digits"),
    "huge integer in a table": (BASE + f"[sft]\nmodel_kwargs = {{a = {HUGE_INT}}}\n", [], "4300 digits"),
    "report_to = 1": (BASE + "[sft]\nreport_to = 1\n", [], "report_to: expected a string"),
    "--set report_to=1": (None, ["--set", "sft.report_to=1"], "report_to: expected a string"),
    "value over 128 KiB": (BASE + f'[sft]\nsystem = "{"x" * 140_000}"\n', [], "at most 128 KiB"),
    "recipe over 1 MiB": (BASE + "# " + "c" * (1 << 20) + "\n", [], "larger than 1 MiB"),
    "long model name": (BASE + f'[sft]\nmodel = "./{LONG_NAME}"\n', [], "longer than 255 bytes"),
    "--set long output_dir": (None, ["--set", f"sft.output_dir=out/{LONG_NAME}"], "longer than 255 bytes"),
    "long recipe name": ("ARG", [LONG_NAME + ".toml"], "does not exist"),
    "long extends": (f'extends = "{LONG_NAME}.toml"\n', [], "is neither a file"),
    "injected dataset options": (
        BASE + '[sft]\ndataset = ["x", "--report_to", "none", "--lora_r", "4"]\n',
        [],
        "[sft] dataset: the value ('--report_to') starts with a dash",
    ),
    "injected --set option": (
        None,
        ["--set", "sft.system=--report_to=none"],
        "[sft] system: the value ('--report_to') starts",
    ),
    "injected help": (None, ["--set", "sft.template=-h x"], "[sft] template: the value ('-h') starts"),
    "end of options": (None, ["--set", "sft.model=--"], "[sft] model: the value ('--')"),
    "injected master_addr": (BASE + '[launch]\nmaster_addr = "--nnodes=9"\n', [], "not a host name"),
    "typed variable": (BASE + '[launch]\nnnodes = "${MHSFT_FUZZ_N:-many}"\n', [], "${MHSFT_FUZZ_N} expands to"),
    "extends chain too long": ("CHAIN", [], "more than 32 levels"),
    "nan preflight timeout": (None, ["--preflight-timeout", "nan"], "--preflight-timeout"),
    "inf preflight timeout": (None, ["--preflight-timeout", "inf"], "--preflight-timeout"),
}


def test_arguments_and_environment_over_arg_max_are_refused_before_exec(workdir: Path, env, fake_swift) -> None:
    local_recipe(workdir)
    lines = "".join(f'BIG_{i} = "${{MHSFT_FUZZ_BIG}}"\n' for i in range(os.sysconf("SC_ARG_MAX") // 100_000))
    write(workdir / "bad.toml", BASE + "[env]\n" + lines)
    result, out = _run(workdir, env | {"MHSFT_FUZZ_BIG": "v" * 100_000}, "bad.toml")
    _assert_refused(result, out, "Linux passes at most")
    assert fake_swift.calls() == [] and not (workdir / ".mhsft").exists()


def _special_files(folder: Path) -> dict[str, Path]:
    """Paths that are not regular files: devices, a FIFO, a socket, a folder, /proc/self/mem."""
    fifo = folder / "fifo.toml"
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.toml"))  # left bound until the process ends: a socket file that exists
    found = {"fifo": fifo, "socket": folder / "sock.toml", "folder": folder / "dir.toml"}
    found["folder"].mkdir()
    for device in ("/dev/zero", "/dev/urandom", "/dev/tty", "/dev/null", "/proc/self/mem"):
        if os.path.exists(device):
            found[device] = Path(device)
    return found


def _run(workdir: Path, env: dict[str, str], *args: str):
    result = mhsft("train", *args, env=env | {"SWANLAB_API_KEY": SECRET}, cwd=workdir, timeout=30)
    return result, result.stdout + result.stderr


def _assert_refused(result, out: str, expected: str) -> None:
    assert result.returncode == 2, out[-2000:]
    assert "Traceback" not in out and SECRET not in out
    assert expected in out, out[-2000:]


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_hostile_recipes_and_options(workdir: Path, env, fake_swift, case: str) -> None:
    body, args, expected = CASES[case]
    local_recipe(workdir)
    target = "r.toml"
    if body == "CHAIN":
        for i in range(40):
            write(workdir / f"c{i}.toml", f'extends = "c{i + 1}.toml"\n' if i < 39 else BASE)
        target = "c0.toml"
    elif body == "ARG":
        target = args.pop()
    elif body is not None:
        target = "bad.toml"
        write(workdir / target, body)
    result, out = _run(workdir, env, target, *args)
    _assert_refused(result, out, expected)
    if not expected.startswith("--"):
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1  # one paragraph
    assert fake_swift.calls() == [] and not (workdir / ".mhsft").exists()


def test_special_files_as_recipe_or_extends_target(workdir: Path, env, fake_swift) -> None:
    specials = _special_files(workdir)
    assert {"fifo", "socket", "/dev/zero", "/proc/self/mem"} <= set(specials)
    for name, path in specials.items():
        write(workdir / "ext.toml", f'extends = "{path}"\n')
        for target in (str(path), "ext.toml"):
            result, out = _run(workdir, env, target)  # a FIFO or /dev/zero read without limit would hang here
            _assert_refused(result, out, "cannot be read")
            assert path.name in out, name
    assert fake_swift.calls() == []


@pytest.mark.parametrize(
    ("command", "option"),
    [("preflight", "--preflight-timeout"), ("doctor", "--timeout"), ("deploy", "--ready-timeout")],
)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_seconds_are_usage_errors(workdir: Path, env, fake_swift, command, option, value) -> None:
    result = mhsft(command, *(["qwen7b"] if command == "preflight" else []), option, value, env=env, cwd=workdir)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"Invalid value for '{option}'" in result.stderr
    assert fake_swift.calls() == []


# In-process fuzzing of load + validate + plan: any input must end in a result or an MhsftError, nothing else.
KEYS = st.sampled_from(
    ["model", "dataset", "lora_rank", "learning_rate", "report_to", "model_kwargs", "bf16", "system", "output_dir"]
)
SCALARS = st.one_of(
    st.text(max_size=8).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
    st.sampled_from(['"--report_to"', '"-h x"', '"--"', '"${X:-1}"', '"${X:-no}"', '"- a"', "-1", "-1e-5", "nan"]),
    st.integers().map(str),
    st.sampled_from([HUGE_INT, "true", "1979-05-27", "inf", '""', "{}", "[]"]),
)


def _value(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return SCALARS
    inner = _value(depth - 1)
    return st.one_of(
        SCALARS,
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.builds(lambda v: "{a = " + v + "}", inner),
        st.integers(30, 40).map(lambda n: "[" * n + "]" * n),
    )


RECIPES = st.lists(
    st.tuples(st.sampled_from(["sft", "launch", "env", "swanlab", "infer"]), KEYS, _value(3)), max_size=6
)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(entries=RECIPES, junk=st.sampled_from(["", "\x00", "[sft\n", "= 1\n", "a.b.c = 1\n", "\ufeff"]))
def test_fuzzed_recipes_end_in_a_plan_or_a_clear_error(entries, junk: str) -> None:
    sections: dict[str, list[str]] = {}
    for section, key, value in entries:
        sections.setdefault(section, []).append(f"{key} = {value}")
    body = BASE + junk + "".join(f"[{s}]\n" + "\n".join(dict.fromkeys(lines)) + "\n" for s, lines in sections.items())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        local_recipe(folder)
        write(folder / "f.toml", body)
        env = Environment(values={})
        try:
            recipe = validate(load(str(folder / "f.toml"), env))
            train_plan(recipe, env, folder, run_id="x")
        except MhsftError as exc:
            assert exc.exit_code == 2 and exc.message.strip() and "\n" not in exc.message.strip()


@pytest.mark.parametrize(
    ("command", "option"),
    [("report", "--temperature"), ("infer", "--temperature"), ("infer", "--cache-fraction"), ("runs", "--interval")],
)
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_numbers_are_refused_at_the_option(workdir: Path, env, fake_swift, command, option, value) -> None:
    args = ["runs", "show", option, value] if command == "runs" else [command, option, value]
    result = mhsft(*args, env=env, cwd=workdir)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"Invalid value for '{option}'" in result.stderr and ("finite" in result.stderr or value == "inf")
    assert fake_swift.calls() == []
