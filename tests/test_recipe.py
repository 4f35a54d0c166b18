"""Loading recipes: files, extends chains, built-in names, ${VAR} interpolation, --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.recipe import builtin
from mhsft.recipe.load import load, parse_override
from mhsft.recipe.validate import validate

from support.running import write

ENV = Environment(values={})


def test_builtin_recipes_load_by_name_and_path(workdir: Path) -> None:
    assert set(builtin.names()) >= {"qwen7b", "qwen32b", "local-file", "tiny"}
    by_name = load("qwen7b", ENV)
    by_path = load(str(builtin.path("qwen7b")), ENV)
    assert by_name.data == by_path.data
    assert by_name.data["sft"]["model"] == "Qwen/Qwen2.5-7B-Instruct"


def test_extends_merges_key_by_key_child_wins(workdir: Path) -> None:
    write(workdir / "base.toml", '[sft]\nmodel = "base-model"\nlora_rank = 8\n[env]\nA = "1"\n')
    write(workdir / "sub" / "child.toml", 'extends = "../base.toml"\n[sft]\nlora_rank = 16\n[env]\nB = "2"\n')
    raw = load("sub/child.toml", ENV)
    assert raw.data["sft"] == {"model": "base-model", "lora_rank": 16}
    assert raw.data["env"] == {"A": "1", "B": "2"}
    assert raw.data["name"] == "child"  # the name is the top file's stem, not inherited
    assert raw.where("sft", "model").startswith("base.toml")
    assert raw.where("sft", "lora_rank").startswith("sub/child.toml")


def test_extends_a_builtin_by_name(workdir: Path) -> None:
    write(workdir / "mine.toml", 'extends = "qwen32b"\n[sft]\nlora_rank = 64\n')
    raw = load("mine.toml", ENV)
    assert raw.data["sft"]["model"] == "Qwen/Qwen2.5-32B-Instruct"  # from qwen32b
    assert raw.data["sft"]["packing"] is True  # from qwen7b, two levels up
    assert raw.data["sft"]["lora_rank"] == 64
    assert [p.stem for p in raw.chain] == ["qwen7b", "qwen32b", "mine"]


def test_builtin_defaults_are_the_lowest_layer(workdir: Path) -> None:
    write(workdir / "r.toml", '[sft]\nmodel = "m"\n')
    raw = load("r.toml", ENV)
    assert raw.data["swanlab"] == {"project": "mhsft", "mode": "cloud"}
    assert "defaults" in raw.where("swanlab", "project")


def test_interpolation_default_env_and_dollar_escape(workdir: Path) -> None:
    write(workdir / "r.toml", '[sft]\nmodel = "${M:-fallback}"\ndataset = ["${D}", "x"]\n[env]\nP = "$${HOME}"\n')
    assert load("r.toml", Environment(values={"D": "d1"})).data["sft"] == {"model": "fallback", "dataset": ["d1", "x"]}
    raw = load("r.toml", Environment(values={"D": "d1", "M": "mm"}))
    assert raw.data["sft"]["model"] == "mm"
    assert raw.data["env"]["P"] == "${HOME}"


def test_interpolation_reads_dotenv_values(workdir: Path) -> None:
    from mhsft.environment import load_environment

    write(workdir / ".env", "DATASET_ID=from-dotenv\n")
    raw = load("qwen7b", load_environment(base={}))
    assert raw.data["sft"]["dataset"] == ["from-dotenv"]


def test_unset_variable_without_default_names_file_and_key(workdir: Path) -> None:
    write(workdir / "r.toml", '[sft]\nmodel = "${NOT_SET_ANYWHERE}"\n')
    with pytest.raises(MhsftError) as err:
        load("r.toml", ENV)
    assert "r.toml, [sft] model" in err.value.message
    assert "NOT_SET_ANYWHERE" in err.value.message


def test_overrides_use_toml_syntax_and_fall_back_to_strings(workdir: Path) -> None:
    raw = load(
        "qwen7b",
        ENV,
        [
            "sft.lora_rank=64",
            "sft.model=org/other-model",
            "sft.dataset=['a', 'b']",
            "swanlab.mode=local",
            "sft.packing=false",
            "description=changed",
        ],
    )
    sft = raw.data["sft"]
    assert sft["lora_rank"] == 64 and sft["model"] == "org/other-model" and sft["dataset"] == ["a", "b"]
    assert sft["packing"] is False and raw.data["swanlab"]["mode"] == "local"
    assert raw.data["description"] == "changed"
    assert raw.where("sft", "lora_rank").startswith("--set")


@pytest.mark.parametrize("text", ["sft.lora_rank", "nosection.key=1", "sft=1", "lora_rank=8"])
def test_malformed_overrides_are_errors(text: str) -> None:
    with pytest.raises(MhsftError) as err:
        parse_override(text)
    assert "--set" in err.value.message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[sft\nmodel = 1", "line 1, column 5"),
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        ("[sftt]\nx = 1\n", "Did you mean `sft`"),
        ("sft = 3\n", "expected a table [sft]"),
        ("name = 3\n[sft]\nmodel='m'\n", "`name`: expected a string"),
    ],
)
def test_unreadable_recipes(workdir: Path, content: str, expected: str) -> None:
    write(workdir / "bad.toml", content)
    with pytest.raises(MhsftError) as err:
        validate(load("bad.toml", ENV))  # an unknown section is reported with the recipe's other problems
    assert expected in err.value.message and "bad.toml" in err.value.message


def test_binary_and_missing_files(workdir: Path) -> None:
    (workdir / "bin.toml").write_bytes(b"\x00\xff\xfe" * 20)
    with pytest.raises(MhsftError, match="not a UTF-8 text file"):
        load("bin.toml", ENV)
    with pytest.raises(MhsftError, match="does not exist"):
        load("missing.toml", ENV)


def test_extends_cycle_and_missing_target(workdir: Path) -> None:
    write(workdir / "a.toml", 'extends = "b.toml"\n')
    write(workdir / "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(MhsftError, match=r"cycle: a.toml -> b.toml -> a.toml"):
        load("a.toml", ENV)
    write(workdir / "c.toml", 'extends = "nowhere.toml"\n')
    with pytest.raises(MhsftError, match=r"c.toml, `extends`: 'nowhere.toml' is neither a file"):
        load("c.toml", ENV)


def test_recipes_new_copies_a_builtin_and_refuses_to_overwrite(workdir: Path) -> None:
    dest = builtin.copy("qwen32b", workdir / "mine")
    assert dest.name == "mine.toml" and dest.read_text() == builtin.path("qwen32b").read_text()
    assert load(str(dest), ENV).data["sft"]["model"] == "Qwen/Qwen2.5-32B-Instruct"
    with pytest.raises(MhsftError, match="already exists"):
        builtin.copy("qwen32b", workdir / "mine")
    with pytest.raises(MhsftError, match="no built-in recipe"):
        builtin.copy("qwen99b", workdir / "other")


def test_the_repository_path_of_a_builtin_works_from_any_directory(workdir: Path) -> None:
    assert not (workdir / "recipes").exists()
    assert load("recipes/qwen7b.toml", ENV).path == builtin.path("qwen7b")
    with pytest.raises(MhsftError, match="does not exist"):
        load("elsewhere/qwen7b.toml", ENV)


def test_a_folder_named_like_a_builtin_does_not_hide_it(workdir: Path) -> None:
    (workdir / "tiny").mkdir()
    assert load("tiny", ENV).path == builtin.path("tiny")
    (workdir / "mine").mkdir()
    with pytest.raises(MhsftError, match="cannot be read"):
        load("mine", ENV)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("sft.dataset=[a.jsonl]", "at character 2 of the value"),
        ("sft.columns={query = q", "at character 10 of the value"),
        ('sft.system="unclosed', "sft.system"),
        ("sft.system='a' 'b'", "sft.system"),
    ],
)
def test_a_set_value_that_starts_like_toml_but_does_not_parse_is_an_error(text: str, where: str) -> None:
    """`[a.jsonl]` unquoted once became the string '[a.jsonl]', a hub dataset id the gate tried to download."""
    with pytest.raises(MhsftError) as err:
        parse_override(text)
    assert "not valid TOML" in err.value.message and where in err.value.message


def test_a_set_value_that_is_plain_text_stays_a_string() -> None:
    assert parse_override("sft.model=org/model-[v2]") == ("sft", "model", "org/model-[v2]")
    assert parse_override("swanlab.exp_name=it's") == ("swanlab", "exp_name", "it's")
