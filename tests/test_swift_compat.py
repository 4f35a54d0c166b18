"""mhsft's view of ms-swift checked against the installed ms-swift itself (imports swift: ~15 s)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.recipe import builtin
from mhsft.recipe.argv import read_as_option
from mhsft.recipe.load import load
from mhsft.recipe.plan import train_plan
from mhsft.recipe.validate import validate

from support.environment import REPO
from support.running import write

swift_arguments = pytest.importorskip("swift.arguments")


@pytest.fixture(scope="module")
def parser_for():
    from swift.utils.utils import _patch_get_type_hints
    from transformers import HfArgumentParser

    cache = {}

    def get(class_name: str) -> HfArgumentParser:
        if class_name not in cache:
            with _patch_get_type_hints():
                cache[class_name] = HfArgumentParser([getattr(swift_arguments, class_name)])
        return cache[class_name]

    return get


def test_data_file_matches_installed_ms_swift() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    from gen_swift_args import OUT, generate

    on_disk = json.loads(OUT.read_text())
    assert on_disk == generate(), "run `python scripts/gen_swift_args.py` after changing ms-swift"


@pytest.mark.parametrize("name", builtin.names())
def test_builtin_recipe_argv_is_accepted_by_swifts_own_parser(name: str, parser_for, workdir: Path) -> None:
    env = Environment(values={})
    recipe = validate(load(name, env))
    argv = train_plan(recipe, env, workdir, run_id="x").argv
    namespace, unknown = parser_for("SftArguments").parse_known_args(argv[2:])
    assert unknown == []
    assert namespace.tuner_type == "lora"
    assert namespace.report_to == ["tensorboard", "swanlab"] and namespace.swanlab_project == recipe.swanlab.project
    for key, value in recipe.args["sft"].items():
        if key in ("model", "dataset", "output_dir", "val_dataset"):
            continue  # rendered absolute
        assert getattr(namespace, key) == value, key


INJECTED = ["x", "--report_to", "none", "--lora_r", "4"]


def test_injected_options_would_switch_tracking_off_and_are_refused(parser_for, workdir: Path) -> None:
    parser = parser_for("SftArguments")
    # what the unchecked values rendered to: swift's parser takes them as options, not dataset names
    namespace, _ = parser.parse_known_args(["--report_to", "tensorboard", "swanlab", "--dataset", *INJECTED])
    assert namespace.dataset == ["x"] and namespace.report_to == ["none"] and namespace.lora_rank == 4
    write(workdir / "r.toml", f'extends = "qwen7b"\n[sft]\nreport_to = ["tensorboard"]\ndataset = {INJECTED}\n')
    with pytest.raises(MhsftError, match=r"r.toml, \[sft\] dataset: the value \('--report_to'\) starts with a dash"):
        validate(load("r.toml", Environment(values={})))


def _swift_misreads(parser, token: str) -> bool:
    """Whether swift's own argparse takes `token` for an option (or the end-of-options marker)."""
    if token == "--":
        return True
    try:
        return parser._parse_optional(token) is not None
    except SystemExit:  # an ambiguous prefix: argparse errors out, also a misreading
        return True


TOKENS = st.text(alphabet="-hx= .0123456789elorat_n", max_size=12) | st.sampled_from(
    ["-h", "-h x", "--help", "--lora_r=4", "--lora_r 4", "--report_to none", "-1", "-1.5", "-.5", "-1e-05", "- x", "-"]
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(token=TOKENS)
def test_mhsfts_option_test_matches_swifts_parser(parser_for, token: str) -> None:
    swift_says = _swift_misreads(parser_for("SftArguments"), token)
    assert read_as_option(token) or not swift_says, "mhsft would let through a value swift reads as an option"
    if not token.startswith("--"):
        assert read_as_option(token) == swift_says, "mhsft refuses a value swift reads as a value"


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    values=st.lists(
        st.text(alphabet="-hx= ./_lorapnt0123", min_size=1, max_size=10) | st.integers(-5, 5), min_size=1, max_size=4
    ),
    key=st.sampled_from(["dataset", "system", "template", "target_modules"]),
)
def test_whatever_mhsft_accepts_swift_parses_to_the_same_values(parser_for, values: list, key: str) -> None:
    value = [str(v) for v in values] if key in ("dataset", "target_modules") else str(values[0])
    env = Environment(values={})
    try:
        recipe = validate(load("qwen7b", env, [f"sft.{key}={value!r}".replace("'", '"')]))
    except MhsftError:
        return
    argv = train_plan(recipe, env, REPO, run_id="x").argv
    namespace, unknown = parser_for("SftArguments").parse_known_args(argv[2:])
    assert unknown == [] and namespace.report_to == ["tensorboard", "swanlab"]
    parsed = getattr(namespace, key)
    if key == "dataset":
        assert len(parsed) == len(value)  # made absolute when local, never split or swallowed
    else:
        assert parsed == recipe.args["sft"][key]


def test_a_multi_node_recipe_with_typed_variables_parses_as_swift_would(parser_for, workdir: Path) -> None:
    write(
        workdir / "multi.toml",
        'extends = "qwen7b"\n[launch]\nnnodes = "${WORLD_SIZE:-2}"\nnode_rank = "${RANK:-0}"\n'
        'master_addr = "${MASTER_ADDR_X:-10.0.0.1}"\nnproc_per_node = 1\n'
        '[sft]\nlora_rank = "${LORA_RANK:-32}"\nlearning_rate = "${LR:-5e-5}"\ngradient_checkpointing = "${GC:-no}"\n',
    )
    env = Environment(values={"RANK": "1"})
    plan = train_plan(validate(load("multi.toml", env)), env, workdir, run_id="x")
    namespace, unknown = parser_for("SftArguments").parse_known_args(plan.argv[2:])
    assert unknown == [] and namespace.report_to == ["tensorboard", "swanlab"]
    assert (namespace.lora_rank, namespace.learning_rate, namespace.gradient_checkpointing) == (32, 5e-5, False)
    assert {k: plan.env[k] for k in ("NNODES", "NODE_RANK", "MASTER_ADDR")} == {
        "NNODES": "2",
        "NODE_RANK": "1",
        "MASTER_ADDR": "10.0.0.1",
    }
