"""Multi-node training on Slurm: `mhsft submit` (submit), the batch script (script), the node runner (node),
Slurm's commands (client) and Slurm runs as records (jobs)."""
