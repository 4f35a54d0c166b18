"""The `mhsft` command line: a thin Typer layer over plain modules.

Each command parses its options and calls the core; `main` turns `MhsftError` into a one-paragraph message
and an exit code. Heavy packages (swift, torch, swanlab, modelscope) are only imported inside the functions
that need them, so `--help`, `--dry-run` and `validate` stay fast.
"""

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from mhsft import __version__, startup, ui
from mhsft.errors import MhsftError

if TYPE_CHECKING:
    from collections.abc import Callable

    from mhsft.environment import Environment
    from mhsft.recipe.model import Recipe
    from mhsft.runs.records import RunRecord
    from mhsft.sweep.settings import Options

with startup.deferred_imports("subprocess", "shutil:get_terminal_size"), startup.gc_paused():  # see mhsft.startup
    import typer

app = typer.Typer(
    name="mhsft",
    help="Fine-tune LLMs with ms-swift, SwanLab tracking always on.\n\n"
    "Recipes (TOML) become exact `swift sft|infer|deploy|export` commands; secrets stay in .env and reach "
    "swift only through its environment.",
    epilog="Examples:  mhsft train recipes/qwen7b.toml --dry-run  |  mhsft infer --backend lmdeploy  |  "
    "mhsft export --merge-lora  |  mhsft doctor",
    no_args_is_help=True,
    rich_markup_mode="rich",  # help is rich markup: write a literal [word] as \\[word] (tests/test_help.py)
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
recipes_app = typer.Typer(help="List, show and copy the built-in recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
data_app = typer.Typer(
    help="Check a recipe's datasets with ms-swift's own preprocessing.",
    epilog="Examples:  mhsft data check recipes/qwen7b.toml  |  mhsft data check tiny --json",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


class _RecipeFirst(typer.core.TyperGroup):
    """A group whose default command is `run`: `mhsft sweep RECIPE ...` is `mhsft sweep run RECIPE ...`."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


sweep_app = typer.Typer(
    cls=_RecipeFirst,
    help="Run many trials of one recipe (grid, paired values, random or TPE search), checked once before the first "
    "starts; show them in one table sorted by the metric.",
    epilog="Examples:  mhsft sweep tiny --grid sft.learning_rate=[1e-4,2e-4] --grid sft.lora_rank=[8,16]  |  "
    "mhsft sweep show  |  mhsft sweep resume 20261201-093000-sweep-ab12",
    no_args_is_help=True,
)
app.add_typer(sweep_app, name="sweep")
SweepIdArg = Annotated[
    str | None,
    typer.Argument(metavar="[ID]", help="Sweep id or unique prefix (default: the newest).", show_default=False),
]

RecipeArg = Annotated[
    str, typer.Argument(help="Recipe file, or a built-in recipe name (see `mhsft recipes list`).", show_default=False)
]
OptRecipeArg = Annotated[
    str | None,
    typer.Argument(
        help="Recipe whose \\[section] gives defaults (and whose output_dir is searched for checkpoints).",
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
NoPreflightOpt = Annotated[bool, typer.Option("--no-preflight", help="Skip the SwanLab check (not advised).")]
NoDataCheckOpt = Annotated[
    bool,
    typer.Option(
        "--no-data-check", envvar="MHSFT_NO_DATA_CHECK", help="Skip the dataset gate (`mhsft data check`; not advised)."
    ),
]


def _finite(value: float | None) -> float | None:
    """Refuse nan and inf for a number of seconds (click's min= lets both through)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number of seconds; give a finite one, e.g. 5.")
    return value


def _finite_number(value: float | None) -> float | None:
    """Refuse nan and inf for a number such as a temperature (click's min= and max= let nan through)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number; give one such as 0.7.")
    return value


DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the exact command and exit; start nothing.")]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--preflight-timeout",
        min=0.1,
        metavar="SECONDS",
        callback=_finite,
        envvar="MHSFT_PREFLIGHT_TIMEOUT",
        help="Upper bound for the whole preflight (SwanLab checks and hub login, SDK imports included); "
        "a slow login node can set its own default in MHSFT_PREFLIGHT_TIMEOUT.",
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
    "  mhsft train recipes/qwen7b.toml --resume\n\n  mhsft train recipes/qwen7b.toml --rehearse --steps 4"
)
def train(
    recipe: RecipeArg,
    set_: SetOpt = [],  # noqa: B006 (typer needs a list default)
    env_file: EnvFileOpt = None,
    dry_run: DryRunOpt = False,
    no_preflight: NoPreflightOpt = False,
    no_data_check: NoDataCheckOpt = False,
    preflight_timeout: TimeoutOpt = 5.0,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue from the newest checkpoint in the recipe's output_dir, under the same SwanLab run.",
        ),
    ] = False,
    rehearse: Annotated[
        bool,
        typer.Option(
            "--rehearse",
            help="Run a few steps on the longest rows with an eval and a save, into <output_dir>-rehearsal; print "
            "a verdict and the projected full-run time (exit 5 when a moment fails).",
        ),
    ] = False,
    steps: Annotated[
        int,
        typer.Option(
            "--steps",
            min=1,
            max=100_000,  # a rehearsal is a few steps; far more is a typo, refused before anything runs
            help="--rehearse: optimizer steps to run (at most the full run's steps).",
        ),
    ] = 3,
    json_: Annotated[bool, typer.Option("--json", help="--rehearse: print the verdict as JSON.")] = False,
) -> None:
    """Train: validate the recipe, check SwanLab and the dataset, run `swift sft`, record the run in .mhsft/runs/."""
    from mhsft.train.command import train as run_train

    if rehearse:
        if dry_run or resume or no_data_check:
            raise MhsftError(
                "--rehearse runs swift on the dataset gate's longest rows into a folder of its own: it cannot be "
                "combined with --dry-run, --resume or --no-data-check (nor MHSFT_NO_DATA_CHECK). Drop those."
            )
        from mhsft.rehearse.command import rehearse as run_rehearsal

        raise typer.Exit(
            run_rehearsal(
                recipe, set_, env_file, steps=steps, check=not no_preflight, timeout=preflight_timeout, as_json=json_
            )
        )

    raise typer.Exit(
        run_train(
            recipe,
            set_,
            env_file,
            dry_run=dry_run,
            check=not no_preflight,
            timeout=preflight_timeout,
            resume=resume,
            data_check=not no_data_check,
            evaluate=None if dry_run else _after_training,
        )
    )


def _after_training(recipe: "Recipe", environment: "Environment") -> "Callable[[RunRecord], None]":
    """`[eval] after_train`: what `mhsft eval` runs once a training succeeded (imported only when it is used)."""
    from mhsft.evaluation.command import after_training

    return after_training(recipe, environment)


GridOpt = Annotated[
    list[str],
    typer.Option("--grid", "-g", metavar="S.K=[V,...]", help="Values of one key; every combination is a trial."),
]
ZipOpt = Annotated[
    list[str],
    typer.Option("--zip", metavar="S.K=[V,...]", help="Lists that move together (same length), e.g. paired values."),
]
RangeOpt = Annotated[
    list[str],
    typer.Option("--range", metavar="S.K=LOW..HIGH[:log]", help="An interval to sample (--method random|tpe)."),
]
MethodOpt = Annotated[
    str | None, typer.Option("--method", metavar="grid|random|tpe", help="Default: grid.", show_default=False)
]
TrialsOpt = Annotated[
    int | None, typer.Option("--trials", "-n", min=1, help="Trials to sample (random, tpe).", show_default=False)
]
MetricOpt = Annotated[
    str | None,
    typer.Option("--metric", help="What picks the best, from logging.jsonl (default eval_loss).", show_default=False),
]
DirectionOpt = Annotated[str | None, typer.Option("--direction", metavar="minimize|maximize", show_default=False)]
ParallelOpt = Annotated[
    int | None,
    typer.Option("--parallel", "-k", min=1, help="Trials at once, on disjoint \\[launch] gpus.", show_default=False),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", min=0, help="Sampler seed (default 0).", show_default=False)]


def _sweep(
    recipe: str, set_: list[str], env_file: Path | None, options: "Options", dry_run: bool, slurm: bool, checks: tuple
) -> None:
    """`mhsft sweep RECIPE` and `mhsft submit RECIPE --sweep` (slurm): one code path. `checks`: (no_preflight,
    no_data_check, preflight_timeout)."""
    from mhsft.sweep.command import start

    no_preflight, no_data_check, preflight_timeout = checks
    raise typer.Exit(
        start(
            recipe,
            set_,
            env_file,
            options,
            dry_run=dry_run,
            check=not no_preflight,
            timeout=preflight_timeout,
            data_check=not no_data_check,
            slurm=slurm,
        )
    )


@app.command(
    epilog="Examples:\n\n  mhsft submit recipes/qwen32b-2x8.toml --dry-run\n\n  mhsft submit my.toml --nodes 4\n\n"
    "  mhsft submit my.toml --set slurm.partition=a100 --set slurm.time=12:00:00\n\n"
    "  mhsft submit my.toml --sweep --grid sft.learning_rate=[1e-4,2e-4] --parallel 2"
)
def submit(
    recipe: RecipeArg,
    nodes: Annotated[
        int | None, typer.Option("--nodes", "-N", min=1, help="Number of nodes (\\[slurm] nodes).", show_default=False)
    ] = None,
    set_: SetOpt = [],  # noqa: B006
    env_file: EnvFileOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the batch script and the sbatch command; queue nothing.")
    ] = False,
    no_preflight: NoPreflightOpt = False,
    no_data_check: NoDataCheckOpt = False,
    preflight_timeout: TimeoutOpt = 5.0,
    sweep: Annotated[
        bool,
        typer.Option(
            "--sweep",
            help="Queue a grid sweep (\\[sweep], or --grid/--zip) as one job array, as `mhsft sweep --slurm`.",
        ),
    ] = False,
    grid: GridOpt = [],  # noqa: B006
    zip_: ZipOpt = [],  # noqa: B006
    metric: MetricOpt = None,
    direction: DirectionOpt = None,
    parallel: Annotated[
        int | None, typer.Option("--parallel", "-k", min=1, help="Array tasks at once (--sweep).", show_default=False)
    ] = None,
) -> None:
    """Train on a Slurm cluster: check here, then queue one node runner per node (`sbatch`) and record the run.
    With --sweep (or --grid/--zip): every trial checked here, then one job array, a trial per task.

    Each node reads .env from the (shared) working directory itself: no secret passes through Slurm."""
    if sweep or grid or zip_:
        if nodes is not None:
            raise MhsftError(
                f"--nodes {nodes} with --sweep: each array task trains one trial on one node ([slurm] nodes = 1). "
                "Drop --nodes."
            )
        from mhsft.sweep.settings import Options

        options = Options(grid, zip_, metric=metric, direction=direction, parallel=parallel)
        _sweep(recipe, set_, env_file, options, dry_run, True, (no_preflight, no_data_check, preflight_timeout))
    given = (("--metric", metric), ("--direction", direction), ("--parallel", parallel))
    alone = [name for name, value in given if value]
    if alone:
        raise MhsftError(f"{', '.join(alone)} only apply to a sweep: add --sweep (or --grid/--zip), or drop them.")
    from mhsft.slurm.submit import submit as run_submit

    raise typer.Exit(
        run_submit(
            recipe,
            set_,
            env_file,
            nodes=nodes,
            dry_run=dry_run,
            check=not no_preflight,
            timeout=preflight_timeout,
            data_check=not no_data_check,
        )
    )


@app.command(epilog="Examples:\n\n  mhsft logs 20261129-113000-sft-ab12\n\n  mhsft logs 20261129-113000 -f")
def logs(
    run: Annotated[str, typer.Argument(help="A Slurm run's id (or a unique prefix; see `mhsft runs`).")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
) -> None:
    """Print the output of a Slurm run (`mhsft submit`); with -f follow it until the job ends."""
    from mhsft.slurm.jobs import logs as show_logs

    raise typer.Exit(show_logs(Path.cwd(), run, follow))


@app.command(epilog="Examples:\n\n  mhsft cancel 20261129-113000-sft-ab12")
def cancel(
    run: Annotated[str, typer.Argument(help="A queued or running Slurm run's id (or a unique prefix).")],
) -> None:
    """Cancel a Slurm run (`scancel`); its record says cancelled."""
    from mhsft.slurm.jobs import cancel as cancel_run

    cancel_run(Path.cwd(), run)


@app.command(
    epilog="Examples:\n\n  mhsft sync\n\n  mhsft sync 20261129-113000-sft-ab12\n\n  mhsft sync --all --timeout 900"
)
def sync(
    run: Annotated[
        str | None,
        typer.Argument(metavar="[RUN]", help="Run id or unique prefix (default: the newest).", show_default=False),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every offline run not yet wholly uploaded.")] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1.0, metavar="SECONDS", callback=_finite, help="Upper bound per run."),
    ] = 300.0,
    env_file: EnvFileOpt = None,
) -> None:
    """Upload a locally tracked run (\\[swanlab] mode = "offline", or a Slurm run with offline_nodes) to SwanLab,
    under the run id mhsft assigned: one experiment, each step once, however often it runs.

    The SwanLab SDK's own sync does the upload, with the key from .env on this machine."""
    from mhsft.launch import environment_for
    from mhsft.sync.command import sync as run_sync

    raise typer.Exit(run_sync(Path.cwd(), run, all_, environment_for(env_file), timeout))


@app.command(
    epilog="Examples:\n\n  mhsft preflight recipes/qwen7b.toml\n\n  mhsft preflight qwen7b --preflight-timeout 10"
)
def preflight(
    recipe: RecipeArg,
    set_: SetOpt = [],  # noqa: B006
    env_file: EnvFileOpt = None,
    preflight_timeout: TimeoutOpt = 5.0,
) -> None:
    """Run only the checks `mhsft train` runs before swift starts: SwanLab, and the hub login when the run passes
    a hub token to swift (exit 3 when one fails)."""
    from mhsft.launch import environment_for, load_recipe
    from mhsft.train.before_start import run_preflight

    environment = environment_for(env_file)
    run_preflight(load_recipe(recipe, set_, environment), environment, preflight_timeout)


@app.command(
    epilog="Examples:\n\n  mhsft validate recipes/qwen7b.toml\n\n  mhsft validate my.toml --set sft.lora_rank=16"
)
def validate(recipe: RecipeArg, set_: SetOpt = [], env_file: EnvFileOpt = None) -> None:  # noqa: B006
    """Check a recipe as `train` does short of the network: ms-swift's argument names, types and choices, local
    inputs, secrets on the command line, SwanLab settings; start nothing."""
    from mhsft.launch import environment_for, load_recipe
    from mhsft.train.before_start import offline_checks

    environment = environment_for(env_file)
    loaded = load_recipe(recipe, set_, environment)
    offline_checks(loaded, environment, Path.cwd())
    ui.info(
        f"{loaded.path}: ok ({sum(map(len, loaded.args.values()))} swift arguments, "
        f"SwanLab project {loaded.swanlab.project}, mode {loaded.swanlab.mode})"
    )


CheckpointOpt = Annotated[
    str,
    typer.Option(
        "--checkpoint",
        "-c",
        metavar="PATH|latest|best",
        help="Checkpoint folder, or latest/best of the run (best needs an eval set).",
    ),
]
RunOpt = Annotated[
    str | None,
    typer.Option(
        "--run", metavar="ID", help="A recorded run (see `mhsft runs`) instead of the last one.", show_default=False
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        "-b",
        metavar="transformers|vllm|sglang|lmdeploy",
        help="Inference backend (`pt` is accepted as the old name of transformers).",
        show_default=False,
    ),
]
TpOpt = Annotated[
    int | None, typer.Option("--tp", min=1, help="Tensor parallel size (lmdeploy/vllm/sglang).", show_default=False)
]
SessionLenOpt = Annotated[
    int | None,
    typer.Option("--session-len", min=1, show_default=False, help="Maximum context length (lmdeploy/vllm/sglang)."),
]
CacheOpt = Annotated[
    float | None,
    typer.Option(
        "--cache-fraction",
        min=0.01,
        max=1.0,
        callback=_finite_number,
        show_default=False,
        help="Share of GPU memory for the KV cache (lmdeploy/vllm/sglang).",
    ),
]


def _tuning(tp: int | None, session_len: int | None, cache_fraction: float | None) -> dict[str, object]:
    """The backend tuning options as typed, for translation to the chosen backend's 4.6 names."""
    return {"--tp": tp, "--session-len": session_len, "--cache-fraction": cache_fraction}


@app.command(
    epilog="Examples:\n\n  mhsft infer\n\n  mhsft infer --backend lmdeploy --tp 2\n\n"
    "  mhsft infer recipes/qwen7b.toml --dataset data/val.jsonl --result-path out.jsonl\n\n"
    "  mhsft infer --checkpoint best --run 20261123-101500-sft-ab12"
)
def infer(
    recipe: OptRecipeArg = None,
    checkpoint: CheckpointOpt = "latest",
    run: RunOpt = None,
    backend: BackendOpt = None,
    dataset: Annotated[
        Path | None, typer.Option("--dataset", "-d", show_default=False, help="Batch inference on this jsonl file.")
    ] = None,
    result_path: Annotated[
        Path | None, typer.Option("--result-path", show_default=False, help="Where batch results go (jsonl).")
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", min=1, show_default=False)] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", min=0.0, callback=_finite_number, show_default=False)
    ] = None,
    stream: Annotated[
        bool | None, typer.Option("--stream/--no-stream", show_default=False, help="Stream tokens as they come.")
    ] = None,
    tp: TpOpt = None,
    session_len: SessionLenOpt = None,
    cache_fraction: CacheOpt = None,
    set_: SetOpt = [],  # noqa: B006
    env_file: EnvFileOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Chat with (or batch-run) the newest checkpoint of the last `mhsft train`: `swift infer --adapters CKPT`."""
    from mhsft.trained.infer import infer as run_infer
    from mhsft.trained.target import resolve_target

    target = resolve_target(recipe, set_, env_file, checkpoint, run)
    raise typer.Exit(
        run_infer(
            target,
            backend=backend,
            dataset=dataset,
            result_path=result_path,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            stream=stream,
            friendly=_tuning(tp, session_len, cache_fraction),
            dry_run=dry_run,
        )
    )


@app.command(
    epilog="Examples:\n\n  mhsft deploy\n\n  mhsft deploy --backend vllm --tp 2 --port 8001\n\n"
    "  mhsft deploy recipes/qwen7b.toml --served-model-name mh-7b --host 0.0.0.0"
)
def deploy(
    recipe: OptRecipeArg = None,
    checkpoint: CheckpointOpt = "latest",
    run: RunOpt = None,
    backend: BackendOpt = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host", show_default=False, help="Address to listen on (default: the recipe's, else 127.0.0.1)."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            show_default=False,
            help="Port (default: the recipe's, else 8000; the next free one if taken).",
        ),
    ] = None,
    served_model_name: Annotated[
        str | None, typer.Option("--served-model-name", show_default=False, help="Model id clients send.")
    ] = None,
    tp: TpOpt = None,
    session_len: SessionLenOpt = None,
    cache_fraction: CacheOpt = None,
    ready_timeout: Annotated[
        float,
        typer.Option(
            "--ready-timeout",
            min=1.0,
            metavar="SECONDS",
            callback=_finite,
            help="How long to wait for the server to answer.",
        ),
    ] = 900.0,
    set_: SetOpt = [],  # noqa: B006
    env_file: EnvFileOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Serve the newest checkpoint as an OpenAI-compatible API (`swift deploy`); Ctrl-C stops it.

    Set MHSFT_DEPLOY_API_KEY in .env to require a bearer key; it never appears on a command line."""
    from mhsft.trained.deploy import deploy as run_deploy
    from mhsft.trained.target import resolve_target

    target = resolve_target(recipe, set_, env_file, checkpoint, run)
    raise typer.Exit(
        run_deploy(
            target,
            backend=backend,
            host=host,
            port=port,
            served_model_name=served_model_name,
            friendly=_tuning(tp, session_len, cache_fraction),
            ready_timeout=ready_timeout,
            dry_run=dry_run,
        )
    )


@app.command(
    epilog="Examples:\n\n  mhsft export --merge-lora\n\n  mhsft export --merge-lora --output merged/qwen7b-mh\n\n"
    "  mhsft export --merge-lora --push modelscope:alice/qwen7b-mh\n\n  mhsft export --push hf:alice/qwen7b-mh-lora"
)
def export(
    recipe: OptRecipeArg = None,
    checkpoint: CheckpointOpt = "latest",
    run: RunOpt = None,
    merge_lora: Annotated[bool, typer.Option("--merge-lora", help="Merge the LoRA into the base model.")] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", show_default=False, help="Output folder (default: CHECKPOINT-merged)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output folder.")] = False,
    push: Annotated[
        str | None,
        typer.Option(
            "--push",
            metavar="modelscope:OWNER/NAME|hf:OWNER/NAME",
            show_default=False,
            help="Upload (token from MODELSCOPE_API_TOKEN / HF_TOKEN).",
        ),
    ] = None,
    set_: SetOpt = [],  # noqa: B006
    env_file: EnvFileOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Merge LoRA weights and/or push to a hub: `swift export --adapters CKPT ...`."""
    from mhsft.trained.export import export as run_export
    from mhsft.trained.target import resolve_target

    target = resolve_target(recipe, set_, env_file, checkpoint, run)
    raise typer.Exit(
        run_export(target, merge_lora=merge_lora, output=output, overwrite=overwrite, push=push, dry_run=dry_run)
    )


@app.command(
    name="eval",
    epilog="Examples:\n\n  mhsft eval\n\n  mhsft eval recipes/qwen7b.toml --bench gsm8k --bench ceval --limit 200\n\n"
    "  mhsft eval 20261123-101500-sft-ab12 --checkpoint best --json",
)
def eval_(
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[RECIPE|RUN]",
            help="A recipe (its \\[eval] gives defaults, its output_dir the checkpoint) or a recorded run id "
            "(default: the last `mhsft train`).",
            show_default=False,
        ),
    ] = None,
    checkpoint: CheckpointOpt = "latest",
    bench: Annotated[
        list[str],
        typer.Option(
            "--bench",
            metavar="NAME",
            help="An EvalScope benchmark (gsm8k, ceval, mmlu, cmmlu, general_mcq, ...). Repeatable. "
            "Default: \\[eval] eval_dataset, else the run's held-out rows.",
        ),
    ] = [],  # noqa: B006
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, show_default=False, help="Samples per benchmark (eval_limit).")
    ] = None,
    no_base: Annotated[bool, typer.Option("--no-base", help="Score the fine-tuned model only.")] = False,
    two_servers: Annotated[
        bool,
        typer.Option("--two-servers", help="One server per model even for a LoRA (as two `swift eval` runs do)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    backend: BackendOpt = None,
    ready_timeout: Annotated[
        float,
        typer.Option(
            "--ready-timeout", min=1.0, metavar="SECONDS", callback=_finite, help="How long to wait for each server."
        ),
    ] = 900.0,
    set_: SetOpt = [],  # noqa: B006
    env_file: EnvFileOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Did fine-tuning help? Base vs fine-tuned on benchmarks (EvalScope) or the held-out set, in one table.

    Both models run with the same settings; a LoRA is served once (base and adapter side by side). The results
    go into the training run's record (`mhsft runs show`, `mhsft report`)."""
    from mhsft.evaluation.command import Request, evaluate, target_for

    found = target_for(target, set_, env_file, checkpoint)
    request = Request(tuple(bench), limit, no_base, two_servers, as_json, dry_run, ready_timeout, backend)
    raise typer.Exit(evaluate(found, request))


runs_app = typer.Typer(
    help="List the runs recorded in .mhsft/runs/ (id, recipe, status, start, duration, output, checkpoint).",
    epilog="Examples:\n\n  mhsft runs\n\n  mhsft runs --limit 50\n\n  mhsft runs show\n\n"
    "  mhsft runs compare 20261123-101500-sft-ab12 20261124-091200-sft-cd34",
    invoke_without_command=True,
)
app.add_typer(runs_app, name="runs")
RunArg = Annotated[
    str | None,
    typer.Argument(metavar="[RUN]", help="Run id or unique prefix (default: the newest).", show_default=False),
]


@runs_app.callback()
def runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show the newest N runs.")] = 20,
    wide: Annotated[
        bool, typer.Option("--wide", "-w", help="Every column, every value whole (rows wider than the terminal).")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON document (schema_version 1) instead.")] = False,
) -> None:
    """List the runs recorded in .mhsft/runs/ (id, recipe, status, start, duration, output, checkpoint), one line
    a run: at the terminal's width, long values are shortened and the least needed columns left out."""
    if ctx.invoked_subcommand is not None:
        return
    from mhsft.view.table import print_runs

    print_runs(Path.cwd(), limit, wide, json_)


@runs_app.command(
    "show",
    epilog="Examples:\n\n  mhsft runs show\n\n  mhsft runs show 20261123-101500-sft-ab12 --json | jq .metrics\n\n"
    "  mhsft runs show --follow",
)
def runs_show(
    run: RunArg = None,
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON document (schema_version 1) instead.")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Refresh until the run is no longer running.")] = False,
    interval: Annotated[
        float,
        typer.Option(
            "--interval", min=0.2, metavar="SECONDS", callback=_finite, help="Seconds between refreshes (--follow)."
        ),
    ] = 5.0,
) -> None:
    """One run in detail: recipe, command, state, checkpoints with their train/eval loss, best and last, final
    metrics, the SwanLab link and the loss curve."""
    from mhsft.view.show import show

    raise typer.Exit(show(Path.cwd(), run, json_, follow, interval))


@runs_app.command(
    "compare", epilog="Examples:\n\n  mhsft runs compare 20261123-101500-sft-ab12 20261124-091200-sft-cd34"
)
def runs_compare(
    run_ids: Annotated[list[str], typer.Argument(metavar="RUN RUN...", help="Two or more run ids (or prefixes).")],
) -> None:
    """The settings that differ between runs (swift arguments, environment) and their final metrics side by side."""
    from mhsft.view.compare import compare

    raise typer.Exit(compare(Path.cwd(), run_ids))


@app.command(
    epilog="Examples:\n\n  mhsft board\n\n  mhsft board 20261123-101500-sft-ab12\n\n  mhsft board tiny --port 6000\n\n"
    "  mhsft board recipes/qwen7b.toml --host 0.0.0.0"
)
def board(
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[RECIPE|RUN]",
            help="A recorded run (id or prefix) or a recipe (default: the newest training run).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", show_default=False, help="Address (default 127.0.0.1).")] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=1, max=65535, show_default=False, help="Port (default: the first free one from 5092)."
        ),
    ] = None,
) -> None:
    """Open SwanLab's local dashboard (`swanlab watch`) on a run's log folder; Ctrl-C stops it. For a cloud run,
    print its page URL instead."""
    from mhsft.view.board import board as run_board

    raise typer.Exit(run_board(target, host, port))


@app.command(
    epilog="Examples:\n\n  mhsft report\n\n  mhsft report 20261123-101500-sft-ab12 --samples 10 --out reports/mh\n\n"
    "  mhsft report --prompts data/probe.jsonl --checkpoint best --swanlab\n\n"
    "  mhsft report --sweep 20261201-093000-sweep-ab12\n\n"
    "  mhsft report 20261123-101500-sft-ab12 20261124-091200-sft-cd34 --samples 3"
)
def report(
    runs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[RUN]...",
            help="Run id or unique prefix (default: the newest); two or more: one report comparing them.",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[
        int,
        typer.Option(
            "--samples", "-n", min=0, help="Held-out prompts answered by base and fine-tuned (or by each run); 0: none."
        ),
    ] = 5,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            show_default=False,
            help="Folder for the report: new, empty or an earlier report's (default: RUN_DIR/report, or the sweep's).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Write the report's files into a non-empty --out folder.")
    ] = False,
    prompts: Annotated[
        Path | None,
        typer.Option(
            "--prompts",
            show_default=False,
            help="jsonl prompts for the side-by-side (default: the val_dataset, else the split-off rows).",
        ),
    ] = None,
    checkpoint: CheckpointOpt = "latest",
    backend: BackendOpt = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-new-tokens", min=1, show_default=False, help="Default: the recipe's infer max_new_tokens, else 256."
        ),
    ] = None,
    temperature: Annotated[
        float, typer.Option("--temperature", min=0.0, callback=_finite_number, help="Same for both models.")
    ] = 0.0,
    swanlab: Annotated[
        bool, typer.Option("--swanlab", help="Also log the Markdown to the run's SwanLab experiment as text.")
    ] = False,
    sweep: Annotated[
        str | None,
        typer.Option(
            "--sweep",
            metavar="ID",
            show_default=False,
            help="One report comparing a sweep's trials: differing settings, metrics, curves, sample answers.",
        ),
    ] = None,
    env_file: EnvFileOpt = None,
) -> None:
    """Write the experiment report of a training run (default: the newest): set-up, loss curves, checkpoints,
    base vs fine-tuned answers side by side (`swift infer` twice), exports; report.md and a self-contained
    report.html. With two or more runs or --sweep: one report comparing them (settings that differ, metrics side
    by side, curves overlaid, each run's answers to the same prompts)."""
    options = {"samples": samples, "prompts": prompts, "checkpoint": checkpoint, "backend": backend}
    options |= {"max_new_tokens": max_new_tokens, "temperature": temperature, "swanlab": swanlab}
    options["overwrite"] = overwrite
    runs = runs or []
    if sweep is not None or len(runs) > 1:
        from mhsft.reporting.trials import comparison_report

        raise typer.Exit(comparison_report(runs, sweep, out, env_file, options))
    from mhsft.reporting.command import report as write_report

    raise typer.Exit(write_report(runs[0] if runs else None, out, env_file, options))


@app.command(epilog="Examples:\n\n  mhsft selftest\n\n  mhsft selftest --workdir /tmp/mhsft-check --keep")
def selftest(
    workdir: Annotated[Path, typer.Option("--workdir", help="Folder for the tiny model, data and outputs.")] = Path(
        "mhsft-selftest"
    ),
    keep: Annotated[bool, typer.Option("--keep", help="Keep the previous selftest's outputs in the folder.")] = False,
) -> None:
    """Check the install end to end on a tiny local model: train, infer, merge, generate (no GPU, account or network).

    The folder is kept afterwards so you can look at it; `mhsft train tiny` then works on its own."""
    from mhsft.selfcheck.selftest import selftest as run_selftest

    raise typer.Exit(run_selftest(workdir, keep))


@app.command(
    epilog="Examples:\n\n  mhsft doctor\n\n  mhsft doctor recipes/qwen7b.toml\n\n  mhsft doctor --json | jq .counts"
)
def doctor(
    recipe: OptRecipeArg = None,
    set_: SetOpt = [],  # noqa: B006
    env_file: EnvFileOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON document (schema in README) instead.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.5, callback=_finite, help="Seconds for each network check.")
    ] = 5.0,
) -> None:
    """Check Python, ms-swift, torch/GPUs, flash-attn, backends, SwanLab, ModelScope, .env, disk; exit 1 on a fail."""
    import json

    from mhsft.launch import environment_for, load_recipe
    from mhsft.selfcheck import doctor as doc

    environment = environment_for(env_file)
    loaded, problem = None, None
    if recipe is not None:
        from mhsft.train.before_start import offline_checks

        try:
            loaded = load_recipe(recipe, set_, environment)
            offline_checks(loaded, environment, Path.cwd())
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


@data_app.command(
    "check",
    epilog="Examples:\n\n  mhsft data check recipes/qwen7b.toml\n\n  mhsft data check tiny --json | jq .total\n\n"
    "  mhsft data check my.toml --set sft.max_length=4096",
)
def data_check(
    recipe: RecipeArg,
    set_: SetOpt = [],  # noqa: B006
    env_file: EnvFileOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON (schema in README).")] = False,
) -> None:
    """Read, standardise and tokenise the recipe's datasets as `swift sft` would (no GPU, no weights) and report
    rows kept/dropped with causes, token lengths, packing and steps; exit 4 when over the \\[data_check] budget."""
    from mhsft.datagate.command import data_check as run_data_check

    raise typer.Exit(run_data_check(recipe, set_, env_file, json_))


@sweep_app.command(
    "run",
    epilog="Examples:\n\n  mhsft sweep tiny --grid sft.learning_rate=[1e-4,2e-4] --grid sft.lora_rank=[8,16]\n\n"
    "  mhsft sweep my.toml --zip sft.max_length=[2048,4096] --zip sft.per_device_train_batch_size=[8,4]\n\n"
    "  mhsft sweep my.toml --method tpe --trials 12 --range sft.learning_rate=1e-5..1e-3:log "
    "--grid sft.lora_rank=[8,16,32]\n\n"
    "  mhsft sweep my.toml --grid sft.learning_rate=[1e-4,2e-4] --parallel 2 --dry-run",
)
def sweep_run(
    recipe: RecipeArg,
    grid: GridOpt = [],  # noqa: B006
    zip_: ZipOpt = [],  # noqa: B006
    range_: RangeOpt = [],  # noqa: B006
    method: MethodOpt = None,
    trials: TrialsOpt = None,
    metric: MetricOpt = None,
    direction: DirectionOpt = None,
    parallel: ParallelOpt = None,
    seed: SeedOpt = None,
    set_: SetOpt = [],  # noqa: B006
    env_file: EnvFileOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print each trial's changes to the recipe; start nothing.")
    ] = False,
    no_preflight: NoPreflightOpt = False,
    no_data_check: NoDataCheckOpt = False,
    preflight_timeout: TimeoutOpt = 5.0,
    slurm: Annotated[
        bool,
        typer.Option("--slurm", help="Queue the trials as one Slurm job array (one node per trial; grid only)."),
    ] = False,
) -> None:
    """Run the trials of a sweep (\\[sweep] in the recipe, or --grid/--zip/--range): every value, SwanLab and each
    distinct dataset are checked before the first trial; each trial is a normal recorded run."""
    from mhsft.sweep.settings import Options

    options = Options(grid, zip_, range_, method, trials, metric, direction, parallel, seed)
    _sweep(recipe, set_, env_file, options, dry_run, slurm, (no_preflight, no_data_check, preflight_timeout))


@sweep_app.command("show", epilog="Examples:\n\n  mhsft sweep show\n\n  mhsft sweep show 20261201-093000 --json")
def sweep_show(
    sweep_id: SweepIdArg = None,
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON document (schema_version 1) instead.")] = False,
) -> None:
    """The trials of a sweep in one table sorted by its metric, the best marked, their loss curves in one plot,
    and the next command for the best trial."""
    from mhsft.sweep.show import show

    raise typer.Exit(show(Path.cwd(), sweep_id, json_))


@sweep_app.command("resume", epilog="Examples:\n\n  mhsft sweep resume 20261201-093000-sweep-ab12")
def sweep_resume(
    sweep_id: Annotated[str, typer.Argument(metavar="ID", help="Sweep id or unique prefix.", show_default=False)],
    no_preflight: NoPreflightOpt = False,
    preflight_timeout: TimeoutOpt = 5.0,
) -> None:
    """Run only what a stopped sweep is missing (trials that did not succeed, and trials not yet sampled), after
    the same checks as at its start."""
    from mhsft.sweep.command import resume

    raise typer.Exit(resume(sweep_id, check=not no_preflight, timeout=preflight_timeout))


@recipes_app.command("list", epilog="Example:\n\n  mhsft recipes list")
def recipes_list() -> None:
    """List the built-in recipes."""
    from mhsft.recipe import builtin

    ui.table(None, ["name", "description"], [[n, builtin.description(n)] for n in builtin.names()])


@recipes_app.command("show", epilog="Examples:\n\n  mhsft recipes show qwen32b\n\n  mhsft recipes show my.toml")
def recipes_show(recipe: RecipeArg, set_: SetOpt = [], env_file: EnvFileOpt = None) -> None:  # noqa: B006
    """Print a recipe fully resolved (extends, ${VAR}, --set applied) as TOML."""
    from mhsft.launch import environment_for, load_recipe
    from mhsft.recipe.toml_out import dumps

    ui.echo(dumps(load_recipe(recipe, set_, environment_for(env_file)).resolved))


@recipes_app.command(
    "import",
    epilog="Examples:\n\n  mhsft recipes import train.sh -o recipes/mine.toml\n\n"
    "  mhsft recipes import sft_config.yaml -o mine\n\n  mhsft recipes import output/v0-20261123-101500 -o again\n\n"
    "  pbpaste | mhsft recipes import - -o mine",
)
def recipes_import(
    source: Annotated[
        str,
        typer.Argument(
            help="A shell script or a quoted `swift sft ...` line (`-` reads stdin), a swift YAML/JSON config, "
            "or a run folder / args.json.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", show_default=False, help="Write the recipe here (default: print it)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Turn existing swift commands into a recipe, saying what changed and why; secrets become .env lines."""
    from mhsft.recipe.swift_import import import_source, write

    imported = import_source(source, sys.stdin.read() if source == "-" else None)
    ui.hide(imported.literal_secrets())
    for note in imported.notes:
        ui.info(f"changed: {note}")
    text = imported.toml()
    if output is None:
        ui.echo(text)
    else:
        dest = write(text, output, force)
        ui.info(f"wrote {dest}; check it with: mhsft train {dest} --dry-run")
    if imported.dotenv:
        ui.warn(
            "secrets never go in a recipe: write these lines in .env (values masked here; put the real ones, "
            "or keep ${VAR} to read them from your environment):\n  " + "\n  ".join(imported.env_lines())
        )


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
    from mhsft.recipe import builtin

    dest = builtin.copy(from_, Path(name), overwrite=force)
    ui.info(f"wrote {dest} (from built-in {from_}); edit it, then: mhsft validate {dest}")


def main() -> None:
    """Console entry point: run the app, turning `MhsftError` into its message and exit code, and any other
    exception (a bug) into a traceback with every secret masked. All output goes through redaction."""
    ui.guard_streams()
    try:
        with startup.trimmed(app, sys.argv[1:]):
            app(prog_name="mhsft")
    except MhsftError as exc:
        ui.error(exc.message)
        sys.exit(exc.exit_code)
    except Exception:
        ui.crashed()
        sys.exit(1)
