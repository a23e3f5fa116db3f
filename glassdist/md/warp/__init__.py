"""Batched MD engine on NVIDIA Warp (CUDA or CPU from one source), validated against LAMMPS."""

import warp as wp

wp.config.quiet = True
