"""Stop requests: SIGTERM (SLURM's warning before walltime) or SIGINT set a flag that
long tasks poll between segments to checkpoint and exit cleanly."""

from __future__ import annotations

import signal
import threading

_stop = threading.Event()


def _handler(signum, frame):
    _stop.set()


def install() -> None:
    """Route SIGTERM to the stop flag (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)


def stop_requested() -> bool:
    return _stop.is_set()
