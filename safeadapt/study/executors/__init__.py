"""Study executors: where the scheduler runs each ready stage — `local` (a process pool on this
machine, the default) or `slurm` (one SLURM job a stage, through submitit)."""
