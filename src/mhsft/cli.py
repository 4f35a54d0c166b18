"""The `mhsft` command line: a thin Typer layer over plain modules.

Each command parses its options and calls the core; `main` turns `MhsftError` into a one-paragraph message
and an exit code. Heavy packages (swift, torch, swanlab, modelscope) are only imported inside the functions
that need them, so `--help`, `--dry-run` and `validate` stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mhsft import __version__, ui
from mhsft.errors import MhsftError

app = typer.Typer(
    name="mhsft",
    help="Fine-tune LLMs with ms-swift, SwanLab tracking always on.\n\n"
    "Recipes (TOML) become exact `swift sft|infer|deploy|export` commands; secrets stay in .env and reach "
    "swift only through its environment.",
    epilog="Examples:  mhsft train recipes/qwen7b.toml --dry-run  |  mhsft infer --backend lmdeploy  |  "
    "mhsft export --merge-lora  |  mhsft doctor",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
recipes_app = typer.Typer(help="List, show and copy the built-in recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")

RecipeArg = Annotated[
    str, typer.Argument(help="Recipe file, or a built-in recipe name (see `mhsft recipes list`).", show_default=False)
]
OptRecipeArg = Annotated[
    str | None,
    typer.Argument(
        help="Recipe whose [section] gives defaults (and whose output_dir is searched for checkpoints).",
        show_default=False,
    ),
]
SetOpt = Annotated[
    list[str],
    typer.Option(
        "--set",
        "-s",
        metavar="SECTION.KEY=VALUE",
        help="Override a recipe value (TOML syntax, else a plain string). Repeatable: --set sft.num_train_epochs=2",
    ),
]
EnvFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--env-file",
        help="Read secrets from this file instead of the nearest .env (real environment still wins).",
        show_default=False,
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the exact command and exit; start nothing.")]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--preflight-timeout", min=0.1, metavar="SECONDS", help="Upper bound for the whole SwanLab preflight."
    ),
]


def _version(value: bool) -> None:
    if value:
        ui.echo(f"mhsft {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show mhsft's version and exit.")
    ] = False,
) -> None:
    """Fine-tune LLMs with ms-swift, SwanLab tracking always on."""


@app.command(
    epilog="Examples:\n\n  mhsft train recipes/qwen7b.toml\n\n  mhsft train qwen7b --dry-run\n\n"
    "  mhsft train recipes/qwen7b.toml --set sft.num_train_epochs=1 --set swanlab.project=trial\n\n"
    "  mhsft train recipes/qwen7b.toml --resume"
)
def train(
    recipe: RecipeArg,
    set_: SetOpt = [],  # noqa: B006 (typer needs a list default)
    env_file: EnvFileOpt = None,
    dry_run: DryRunOpt = False,
    no_preflight: Annotated[bool, typer.Option("--no-preflight", help="Skip the SwanLab check (not advised).")] = False,
    preflight_timeout: TimeoutOpt = 5.0,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue from the newest checkpoint in the recipe's output_dir, under the same SwanLab run.",
        ),
    ] = False,
) -> None:
    """Train: validate the recipe, check SwanLab, run `swift sft` and record the run under .mhsft/runs/."""
    from mhsft.train import train as run_train

    raise typer.Exit(
        run_train(
            recipe, set_, env_file, dry_run=dry_run, check=not no_preflight, timeout=preflight_timeout, resume=resume
        )
    )


@app.command(
    epilog="Examples:\n\n  mhsft preflight recipes/qwen7b.toml\n\n  mhsft preflight qwen7b --preflight-timeout 10"
)
def preflight(
    recipe: RecipeArg,
    set_: SetOpt = [],  # noqa: B006
    env_file: EnvFileOpt = None,
    preflight_timeout: TimeoutOpt = 5.0,
) -> None:
    """Run only the SwanLab checks `mhsft train` runs before swift starts (exit 3 when one fails)."""
    from mhsft.launch import environment_for, load_recipe
    from mhsft.swanlab_check import preflight as run_preflight

    environment = environment_for(env_file)
    ui.info(run_preflight(load_recipe(recipe, set_, environment), environment, preflight_timeout))


@app.command(
    epilog="Examples:\n\n  mhsft validate recipes/qwen7b.toml\n\n  mhsft validate my.toml --set sft.lora_rank=16"
)
def validate(recipe: RecipeArg, set_: SetOpt = [], env_file: EnvFileOpt = None) -> None:  # noqa: B006
    """Check a recipe against ms-swift's argument names, types and choices; start nothing."""
    from mhsft.launch import environment_for, load_recipe

    loaded = load_recipe(recipe, set_, environment_for(env_file))
    ui.info(
        f"{loaded.path}: ok ({sum(map(len, loaded.args.values()))} swift arguments, "
        f"SwanLab project {loaded.swanlab.project}, mode {loaded.swanlab.mode})"
    )


@app.command(
    epilog="Examples:\n\n  mhsft doctor\n\n  mhsft doctor recipes/qwen7b.toml\n\n  mhsft doctor --json | jq .counts"
)
def doctor(
    recipe: OptRecipeArg = None,
    set_: SetOpt = [],  # noqa: B006
    env_file: EnvFileOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON document (schema in README) instead.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.5, help="Seconds for each network check.")] = 5.0,
) -> None:
    """Check Python, ms-swift, torch/GPUs, flash-attn, backends, SwanLab, ModelScope, .env, disk; exit 1 on a fail."""
    import json

    from mhsft import doctor as doc
    from mhsft.launch import environment_for, load_recipe

    environment = environment_for(env_file)
    loaded, problem = None, None
    if recipe is not None:
        try:
            loaded = load_recipe(recipe, set_, environment)
        except MhsftError as exc:
            problem = exc
    checks, elapsed = doc.run(loaded, problem, environment, timeout)
    report = doc.as_json(checks, elapsed)
    if json_:
        ui.echo(json.dumps(report, indent=2))
    else:
        rows = [[c.name, c.status, c.detail, c.fix if c.status != "ok" else ""] for c in checks]
        styles = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        ui.table(f"mhsft doctor ({elapsed:.1f} s)", ["check", "status", "detail", "fix"], rows, styles)
        counts = report["counts"]
        ui.info(f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s)")
    raise typer.Exit(0 if report["ok"] else 1)


@recipes_app.command("list", epilog="Example:\n\n  mhsft recipes list")
def recipes_list() -> None:
    """List the built-in recipes."""
    from mhsft import builtin

    ui.table(None, ["name", "description"], [[n, builtin.description(n)] for n in builtin.names()])


@recipes_app.command("show", epilog="Examples:\n\n  mhsft recipes show qwen32b\n\n  mhsft recipes show my.toml")
def recipes_show(recipe: RecipeArg, set_: SetOpt = [], env_file: EnvFileOpt = None) -> None:  # noqa: B006
    """Print a recipe fully resolved (extends, ${VAR}, --set applied) as TOML."""
    from mhsft.launch import environment_for, load_recipe
    from mhsft.tomlout import dumps

    ui.echo(dumps(load_recipe(recipe, set_, environment_for(env_file)).resolved))


@recipes_app.command(
    "new",
    epilog="Examples:\n\n  mhsft recipes new my-run --from qwen7b\n\n  mhsft recipes new recipes/big --from qwen32b",
)
def recipes_new(
    name: Annotated[str, typer.Argument(help="New recipe path (.toml is added).", show_default=False)],
    from_: Annotated[str, typer.Option("--from", help="Built-in recipe to copy.")] = "qwen7b",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Copy a built-in recipe to a file you can edit."""
    from mhsft import builtin

    dest = builtin.copy(from_, Path(name), overwrite=force)
    ui.info(f"wrote {dest} (from built-in {from_}); edit it, then: mhsft validate {dest}")


def main() -> None:
    """Console entry point: run the app, turning `MhsftError` into its message and exit code."""
    try:
        app(prog_name="mhsft")
    except MhsftError as exc:
        ui.error(exc.message)
        sys.exit(exc.exit_code)
