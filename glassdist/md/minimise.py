"""Energy minimisation of stored configurations with LAMMPS (inherent structures, supp. II B)."""

from __future__ import annotations

import contextlib

import numpy as np

from hpc import signals
from hpc.farm import Suspended

from ..spec import Spec
from .lammps import LammpsSession, dynamics_fixes, num, pair_commands, read_data_commands, write_data_file


def minimise(
    spec: Spec, positions: np.ndarray, types: np.ndarray, data_path, comm=None, input_path=None
) -> tuple[float, np.ndarray]:
    """Minimise a configuration (N, dim) with LAMMPS (spec.inherent) -> (E0 per particle,
    inherent-structure positions (N, dim)). The configuration goes through the LAMMPS data
    file ``data_path``; ``input_path`` (optional) receives the rerunnable LAMMPS input.

    A paper-scale minimisation can run for minutes inside one LAMMPS call: on one rank, a stop
    request (SIGTERM) ends it at once through LAMMPS's timeout and raises Suspended (a rerun
    minimises from the start, so the result is unchanged). A multi-rank minimisation is not
    interrupted (the ranks would leave the minimiser at different iterations)."""
    inh = spec.inherent
    root = comm is None or comm.Get_rank() == 0
    if root:
        write_data_file(data_path, spec, positions, types)
    if comm is not None:
        comm.Barrier()
    with LammpsSession(spec, comm) as lmp:
        lmp.run(
            read_data_commands(spec, data_path)
            + pair_commands(spec)
            + dynamics_fixes(spec)
            + [f"min_style {inh.min_style}"]
        )
        interrupted = []

        def interrupt():
            interrupted.append(True)
            lmp.lmp.force_timeout()

        one_rank = comm is None or comm.Get_size() == 1
        with signals.on_stop(interrupt) if one_rank else contextlib.nullcontext():
            lmp.run(f"minimize {num(inh.etol)} {num(inh.ftol)} {inh.max_iterations} {10 * inh.max_iterations}")
        if interrupted:
            raise Suspended(f"minimisation of {data_path} stopped on request")
        lmp.check_atoms()
        energy, minimum = lmp.pe_per_atom(), lmp.positions()
        if input_path is not None and root:
            lmp.write_input(input_path, header=f"glassdist inherent structure, campaign '{spec.campaign.name}'")
    return energy, minimum
