"""mhsft's view of ms-swift checked against the installed ms-swift itself (imports swift: ~15 s)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mhsft import builtin
from mhsft.environment import Environment
from mhsft.plan import train_plan
from mhsft.recipe import load
from mhsft.schema import validate

from conftest import REPO

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
    assert namespace.report_to == ["swanlab"] and namespace.swanlab_project == recipe.swanlab.project
    for key, value in recipe.args["sft"].items():
        if key in ("model", "dataset", "output_dir", "val_dataset"):
            continue  # rendered absolute
        assert getattr(namespace, key) == value, key
