"""Distributed-ensemble runtime, independent of glass physics: MPI task farm with a resumable
task ledger, Dask cluster factory, DDP launch helpers, SLURM profiles and submission."""
