"""A corrupted store never passes silently: chunks truncated or deleted behind done tasks are
found by `status --verify` (and, cheaply, before a stage reads them), their tasks are marked
pending and a rerun redoes exactly those, bit for bit."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr

from glassdist.errors import UsageError
from glassdist.integrity import owned_chunks
from glassdist.store import Store

from .conftest import glassdist

QUENCH_ARRAYS = ("positions", "pe", "temperature", "thermo_T", "thermo_target", "thermo_pe", "snapshots")


def _copy(quenched, tmp_path):
    d = tmp_path / "c"
    shutil.copytree(quenched["kam"], d)
    return d


def test_ownership_covers_every_quench_chunk(quenched):
    """Every chunk of every quench array belongs to exactly one replica task (snapshots: the first k)."""
    store = Store(quenched["kam"], mode="r")
    R = len(store.ledger("quench"))
    owned = {}
    for task, arr, coords in owned_chunks(store.root, "quench", R):
        owned.setdefault(arr.path, []).append((task, coords))
    assert sorted(owned) == sorted(f"quench/{a}" for a in QUENCH_ARRAYS)
    for path, entries in owned.items():
        arr = store.root[path]
        assert len(entries) == arr.nchunks
        assert all(coords[0] == task for task, coords in entries)
    assert [t for t, _ in owned["quench/snapshots"]] == [0, 1]  # k = 2 snapshot replicas


def test_verify_finds_truncated_and_deleted_chunks_and_rerun_restores_bitwise(quenched, tmp_path):
    d = _copy(quenched, tmp_path)
    chunks = d / "store.zarr" / "quench"
    truncated = chunks / "positions" / "c" / "3" / "0" / "0" / "0"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (chunks / "pe" / "c" / "5" / "0").unlink()
    (chunks / "snapshots" / "c" / "1" / "0" / "0" / "0").unlink()
    finished = Store(d, mode="r").ledger("quench").finished[:]

    proc = glassdist("status", d, "--verify", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for task, what in (
        (3, "quench/positions/c/3/0/0/0 undecodable"),
        (5, "quench/pe/c/5/0 missing"),
        (1, "quench/snapshots/c/1/0/0/0 missing"),
    ):
        assert f"quench task {task}: {what}" in proc.stdout, proc.stdout
    assert "[1, 3, 5]; marked pending" in proc.stdout
    ledger = Store(d, mode="r").ledger("quench")
    assert np.flatnonzero(~ledger.done_mask()).tolist() == [1, 3, 5]
    assert ledger.attempts[:].tolist() == [1, 0, 1, 0, 1, 0, 1, 1]  # rewound to the successful attempt

    glassdist("quench", d)
    ledger = Store(d, mode="r").ledger("quench")
    assert ledger.done_mask().all()
    redone = np.flatnonzero(ledger.finished[:] != finished).tolist()
    assert redone == [1, 3, 5]  # exactly those, nothing else ran
    new, ref = (
        zarr.open_group(str(d / "store.zarr"), mode="r"),
        zarr.open_group(str(quenched["kam"] / "store.zarr"), mode="r"),
    )
    for name in QUENCH_ARRAYS:
        np.testing.assert_array_equal(new[f"quench/{name}"][:], ref[f"quench/{name}"][:], err_msg=name)
    assert glassdist("status", d, "--verify").returncode == 0


def test_verify_finds_a_whole_array_gone_and_rerun_restores_it(quenched, tmp_path):
    """A deleted array directory leaves no chunk to miss: `status --verify` finds it against the
    declared layout (glassdist.layout), marks every task that wrote it pending, and the rerun makes
    it again, equal to the original."""
    d = _copy(quenched, tmp_path)
    shutil.rmtree(d / "store.zarr" / "quench" / "pe")
    proc = glassdist("status", d, "--verify", check=False)
    assert proc.returncode == 1 and "quench task 0: quench/pe missing" in proc.stdout, proc.stdout
    assert not Store(d, mode="r").ledger("quench").done_mask().any()
    glassdist("quench", d)
    np.testing.assert_array_equal(
        Store(d, mode="r").root["quench/pe"][:], Store(quenched["kam"], mode="r").root["quench/pe"][:]
    )
    assert glassdist("status", d, "--verify").returncode == 0


def test_stage_start_marks_lost_upstream_tasks_pending(quenched, tmp_path, capsys):
    """The cheap check before a stage reads its upstream: a deleted chunk file behind a done
    quench task makes that task pending and says how to redo it; the stage then refuses to
    start on the incomplete quench."""
    d = _copy(quenched, tmp_path)
    (d / "store.zarr" / "quench" / "positions" / "c" / "6" / "0" / "0" / "0").unlink()
    store = Store(d)
    with pytest.raises(UsageError, match="'quench', which is incomplete"):
        store.require_needs("dataset")
    assert "quench: the data of done task(s) [6] are missing" in capsys.readouterr().err
    assert np.flatnonzero(~store.ledger("quench").done_mask()).tolist() == [6]
