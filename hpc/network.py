"""The one network interface of a run: what MPI (UCX), gloo and NCCL are told to bind to.

A cluster profile names it once (``[cluster] interface``); Dask gets it as dask-jobqueue's
``interface``, the processes of a job get :func:`interface_env`. ``lo`` keeps a one-node run
on loopback (hpc.localhost).
"""

from __future__ import annotations

# the init_method of a DDP job's processes (file://...) when the rendezvous is a file:
# hpc.ddp.spawn's (one node) or a multi-node job's (jobs/ddp.sh); unset: torchrun's env://
DDP_INIT_ENV = "HPC_DDP_INIT"


def interface_env(name: str) -> dict[str, str]:
    """The environment that makes UCX (MPICH's netmod), gloo and NCCL use interface ``name``."""
    return {"UCX_NET_DEVICES": name, "GLOO_SOCKET_IFNAME": name, "NCCL_SOCKET_IFNAME": name}
