"""The processes mhsft starts: swift under supervision, bounded checks in a child, Slurm's commands, ports."""
