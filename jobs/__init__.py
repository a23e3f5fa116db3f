"""The SLURM job templates (Jinja2) that `glassdist submit` renders: ``_base.sh`` (resources,
environment, the walltime trap and requeue) and one per job kind (``mpi.sh``, ``dask.sh``,
``ddp.sh``, ``serial.sh``); a ``<stage>.sh`` in a copy passed with ``--templates`` overrides its
kind's. ``examples/`` holds ready batch scripts of the paper presets on the generic-cpu profile.
Installed as the package data of ``hpc.jobs`` (setup.cfg: package_dir)."""
