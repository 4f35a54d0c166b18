"""Start-up trimming: the same help and behaviour, without what the fast paths do not use."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mhsft import startup

from support.running import write

CAPTURE = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: print('MODULES=' + json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
    "from mhsft import startup\n"
    "{patch}\n"
    "sys.argv = ['mhsft', *{args!r}]\n"
    "from mhsft.cli import main\nmain()\n"
)


def run_cli(args: list[str], env: dict, cwd: Path, patch: str = "") -> tuple[str, set[str]]:
    code = CAPTURE.format(args=args, patch=patch)
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True)
    line = next(ln for ln in result.stderr.splitlines() if ln.startswith("MODULES="))
    return result.stdout, set(json.loads(line.removeprefix("MODULES=")))


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["recipes", "show", "--help"], ["bogus"]])
def test_help_is_the_same_with_only_the_invoked_command_built(workdir, env, args) -> None:
    trimmed, _ = run_cli(args, env, workdir)
    full, _ = run_cli(args, env, workdir, patch="startup.keep_invoked_command = lambda app, argv: None")
    assert trimmed == full


def test_help_skips_markdown_rich_tracebacks_and_attrs(workdir, env) -> None:
    out, modules = run_cli(["--help"], env, workdir)
    assert "Fine-tune LLMs" in out and "rich.console" in modules
    assert not modules & {"markdown_it", "pygments", "rich.syntax", "rich.markdown", "rich.traceback", "attr"}


def test_dry_run_skips_subprocess_shutil_rich_and_hashlib(workdir, env) -> None:
    out, modules = run_cli(["train", "qwen7b", "--dry-run"], env, workdir)
    assert "swift sft" in out
    assert not modules & {"subprocess", "shutil", "rich", "_hashlib", "markdown_it"}


def test_a_deferred_module_loads_on_first_use_and_leaves_sys_modules_clean(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    with startup.deferred_imports("colorsys"):
        import colorsys as placeholder

        assert sys.modules["colorsys"] is placeholder
    assert "colorsys" not in sys.modules  # later importers get the real module
    assert placeholder.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    import colorsys

    assert colorsys is not placeholder and colorsys.rgb_to_hsv is placeholder.rgb_to_hsv


def test_a_deferred_class_is_the_real_class_once_instantiated(tmp_path: Path, monkeypatch) -> None:
    write(
        tmp_path / "mhsft_fake_mod.py",
        "LOADS = []\nLOADS.append(1)\nclass Thing:\n    def __init__(self, x):\n        self.x = x\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "mhsft_fake_mod", startup._deferred("mhsft_fake_mod", "Thing"))
    from mhsft_fake_mod import Thing  # what typer does: nothing is loaded yet

    assert "LOADS" not in vars(sys.modules["mhsft_fake_mod"])
    thing = Thing(3)
    real = sys.modules["mhsft_fake_mod"]
    assert type(thing) is real.Thing and thing.x == 3 and real.LOADS == [1]


def test_modules_help_left_out_still_import_afterwards(workdir, env) -> None:
    code = (
        "import sys\nsys.argv = ['mhsft', '--help']\nfrom mhsft.cli import main\ntry:\n    main()\n"
        "except SystemExit:\n    pass\nimport attr, rich.markdown, rich.traceback\n"
        "print(attr.ib.__name__, rich.markdown.Markdown('# x').__module__, rich.traceback.install.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=workdir, capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "attrib rich.markdown install", result.stderr


def test_trimming_is_undone_after_the_run() -> None:
    from mhsft.cli import app

    before = (
        list(app.registered_commands),
        list(app.registered_groups),
        list(sys.meta_path),
        gc.isenabled(),
        gc.get_threshold(),
    )
    with pytest.raises(SystemExit), startup.trimmed(app, ["validate", "--help"]):
        assert [c.callback.__name__ for c in app.registered_commands] == ["validate"]
        assert app.registered_groups == []
        app(["validate", "--help"], prog_name="mhsft")
    assert (
        list(app.registered_commands),
        list(app.registered_groups),
        list(sys.meta_path),
        gc.isenabled(),
        gc.get_threshold(),
    ) == before


def test_sweep_dry_run_imports_neither_optuna_nor_the_engine(workdir, env) -> None:
    out, modules = run_cli(["sweep", "qwen7b", "--grid", "sft.lora_rank=[8,16]", "--dry-run"], env, workdir)
    assert out.splitlines() == ["trial 0 r8: sft.lora_rank 16 -> 8", "trial 1 r16: the recipe as it is"]
    heavy = {"optuna", "torch", "swift", "swanlab", "modelscope", "transformers", "datasets"}
    assert not {m.split(".")[0] for m in modules} & heavy
