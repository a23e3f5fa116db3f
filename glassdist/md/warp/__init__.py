"""Batched MD engine on NVIDIA Warp (CUDA or CPU from one source), validated against LAMMPS.

Modules: ``kernels`` (neighbour lists, eq. (1) forces, per-system sums), ``system`` (a block of
replicas on a device: state arrays, forces), ``integrate`` (velocity Verlet + the Nose-Hoover
chain of LAMMPS ``fix nvt``), ``fire`` (LAMMPS ``min_style fire``), ``engine`` (``WarpEngine``,
the MD engine protocol). Validation: tests/test_warp_engine.py; speed: benchmarks/engine.py.
"""

import warp as wp

wp.config.quiet = True
