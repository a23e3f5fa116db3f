"""DDP launch helper: one process per GPU (or CPU process) started by ``torchrun``.

``with ddp_context() as device:`` joins the process group that torchrun describes in the
environment (WORLD_SIZE > 1): NCCL with one GPU per process (cuda:LOCAL_RANK) when CUDA
is available, gloo on CPU otherwise. Started without torchrun it is a single process on
cuda:0 or the CPU, and no process group exists.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextmanager
def ddp_context() -> Iterator[torch.device]:
    """Yields this process's device; inside, torch.distributed is initialised when launched
    by torchrun with more than one process, and torn down on exit."""
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not launched_by_torchrun():
        yield device
        return
    dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    try:
        yield device
    finally:
        dist.destroy_process_group()

