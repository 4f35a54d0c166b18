"""Run records and what they point at: the records, their store, a Slurm run's live state, checkpoints."""
