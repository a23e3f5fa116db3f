"""Issue 11.1: a stop request (SIGTERM) ends a Dask farm within seconds, even while its workers
are busy with long blocks; the unfinished tasks stay pending (real Dask LocalCluster, real ledger)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import zarr

from hpc.ledger import Ledger

# Each block announces that it started, then works for two minutes (a long image or indicator
# block at paper scale); the farm gets SIGTERM once two blocks run.
SCRIPT = """
import sys, time
from pathlib import Path
import zarr
from hpc.farm import run_farm
from hpc.ledger import Ledger

def long_block(block, comm):
    Path(sys.argv[2], f"started-{block.tasks[0]}").touch()
    time.sleep(120)

if __name__ == "__main__":
    ledger = Ledger.create(zarr.open_group(sys.argv[1], mode="a"), "farm", 6)
    result = run_farm(range(6), long_block, ledger, backend="dask", label="long",
                      dask_options={"workers": 2, "threads_per_worker": 1})
    print("SUSPENDED", sorted(result.suspended), "DONE", result.done, "FAILED", result.failed, flush=True)
"""


def test_sigterm_ends_dask_farm_promptly_tasks_stay_pending(tmp_path):
    (tmp_path / "farm.py").write_text(SCRIPT)
    store, marks = tmp_path / "ledger.zarr", tmp_path / "marks"
    marks.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "farm.py"), str(store), str(marks)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 120
    while len(list(marks.iterdir())) < 2:
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()
        time.sleep(0.05)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    seconds = time.time() - sent
    assert proc.returncode == 0 and seconds < 60, (seconds, out)  # the contract: a SIGTERM ends a stage within 60 s
    assert "SUSPENDED [0, 1, 2, 3, 4, 5] DONE [] FAILED []" in out, out
    ledger = Ledger(zarr.open_group(store, mode="r")["farm"])
    assert (ledger.states() == 0).all() and (ledger.attempts[:] == 0).all()
    assert len(list(marks.iterdir())) == 2  # no block started after the stop request
