"""Stop requests: SIGTERM (SLURM's warning before walltime) sets a flag that long tasks poll
between segments to checkpoint and exit cleanly.

Python runs signal handlers only when the main thread is back in the interpreter, which a long
call into C (one LAMMPS minimisation) is not. So :func:`install` also points the interpreter's
wakeup fd at a pipe that a watcher thread reads: the stop flag is set, and the callbacks
registered with :func:`on_stop` run, the moment the signal arrives.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Callable, Iterator

_stop = threading.Event()
_lock = threading.Lock()
_callbacks: list[Callable[[], None]] = []
_watching = False


def _request_stop() -> None:
    with _lock:
        _stop.set()
        callbacks = list(_callbacks)
    for callback in callbacks:
        callback()


def _handler(signum, frame):
    _request_stop()


def _watch(fd: int) -> None:
    while True:
        data = os.read(fd, 64)
        if not data:
            return
        if signal.SIGTERM in data:
            _request_stop()


def install() -> None:
    """Route SIGTERM to the stop flag and start the watcher (main thread only; a no-op elsewhere
    and when already installed)."""
    global _watching
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _handler)
    if not _watching:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        threading.Thread(target=_watch, args=(read_end,), name="glassdist-stop-watcher", daemon=True).start()
        _watching = True


def stop_requested() -> bool:
    return _stop.is_set()


@contextlib.contextmanager
def on_stop(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback()`` (from the watcher thread) if a stop is requested inside the block,
    or at once if one already was; it must be safe to call from another thread."""
    with _lock:
        _callbacks.append(callback)
        already = _stop.is_set()
    try:
        if already:
            callback()
        yield
    finally:
        with _lock:
            _callbacks.remove(callback)
