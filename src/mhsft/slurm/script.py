"""The batch script `mhsft submit` writes: #SBATCH lines from [slurm], then one node runner per node.

It holds no secret: each node's runner reads `.env` itself from the (shared) working directory.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from mhsft.recipe.hubs import OFFLINE_ENV
from mhsft.recipe.model import SlurmSettings

NODE_RUNNER = "mhsft.slurm.node"


def directives(settings: SlurmSettings, cwd: Path) -> list[str]:
    """The sbatch options, in the order they appear in the script."""
    options: list[tuple[str, object]] = [
        ("job-name", settings.job_name),
        ("nodes", settings.nodes),
        ("ntasks-per-node", 1),
        ("gpus-per-node", settings.gpus_per_node),
        ("cpus-per-task", settings.cpus_per_task),
        ("partition", settings.partition),
        ("mem", settings.mem),
        ("time", settings.time),
        ("account", settings.account),
        ("qos", settings.qos),
        ("constraint", settings.constraint),
        ("output", settings.output),
        ("open-mode", "append"),  # a requeued job adds to its log instead of truncating it
        ("chdir", str(cwd)),
    ]
    lines = [f"--{name}={shlex.quote(str(value))}" for name, value in options if value is not None]
    lines.append("--requeue" if settings.requeue else "--no-requeue")
    return [*lines, *settings.sbatch_args]


def batch_script(settings: SlurmSettings, run_id: str, python: str, cwd: Path, recipe: str, swift: str) -> str:
    """The whole script: one `srun` task per node, each `python -m mhsft.slurm.node RUN_ID`.

    `swift` (the plan's shell line) is shown in a comment: what each node's runner starts. With offline nodes
    the script exports the hubs' offline settings first (everything the run needs was downloaded before).
    """
    offline = [f"export {k}={v}" for k, v in OFFLINE_ENV.items()] if settings.offline_nodes else []
    runner = ["srun", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "--label", python, "-m", NODE_RUNNER, run_id]
    return "\n".join(
        [
            "#!/bin/bash",
            f"# Written by `mhsft submit {recipe}` for run {run_id}. No secret here: each node's runner reads",
            "# .env from the working directory itself.",
            *(f"#SBATCH {line}" for line in directives(settings, cwd)),
            "",
            "# Each node's runner sets NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT and NPROC_PER_NODE from Slurm,",
            "# then runs:",
            *(f"#   {line}" for line in swift.splitlines()),
            *offline,
            "exec " + " ".join(map(shlex.quote, runner)),
            "",
        ]
    )
