"""Multi-node training on Slurm: `mhsft submit`, the batch script, the node runner, `mhsft logs` and `cancel`."""
