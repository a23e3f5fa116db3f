"""Distributed-ensemble runtime, independent of glass physics: MPI task farm with a resumable
task ledger, Dask cluster factory, DDP launch helpers, SLURM profiles and submission, and the
typed schema (``hpc.schema``) that validates both the campaign file and the cluster profiles."""
