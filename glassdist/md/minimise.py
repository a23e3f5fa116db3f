"""Energy minimisation of stored configurations with LAMMPS (inherent structures, supp. II B)."""

from __future__ import annotations

import numpy as np

from ..spec import Spec
from .lammps import LammpsSession, dynamics_fixes, num, pair_commands, read_data_commands, write_data_file


def minimize(spec: Spec, positions: np.ndarray, types: np.ndarray, data_path, comm=None,
             input_path=None) -> tuple[float, np.ndarray]:
    """Minimise a configuration (N, dim) with LAMMPS (spec.inherent) -> (E0 per particle,
    inherent-structure positions (N, dim)). The configuration goes through the LAMMPS data
    file ``data_path``; ``input_path`` (optional) receives the rerunnable LAMMPS input."""
    inh = spec.inherent
    root = comm is None or comm.Get_rank() == 0
    if root:
        write_data_file(data_path, spec, positions, types)
    if comm is not None:
        comm.Barrier()
    with LammpsSession(spec, comm) as lmp:
        lmp.run(read_data_commands(spec, data_path) + pair_commands(spec) + dynamics_fixes(spec) + [
            f"min_style {inh.min_style}",
            f"minimize {num(inh.etol)} {num(inh.ftol)} {inh.max_iterations} {10 * inh.max_iterations}",
        ])
        lmp.check_atoms()
        energy, minimum = lmp.pe_per_atom(), lmp.positions()
        if input_path is not None and root:
            lmp.write_input(input_path, header=f"glassdist inherent structure, campaign '{spec.campaign.name}'")
    return energy, minimum
