"""The campaign file: presets, overrides, a user's own mixture, docs in sync."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glassdist import spec as specmod
from glassdist.errors import SpecError
from glassdist.store import Store

from .conftest import glassdist

ROOT = Path(__file__).resolve().parents[1]


def test_paper_presets_are_table_I_and_sec_IIB():
    kam = specmod.loads(specmod.preset_text("paper-kam"))
    abm = specmod.loads(specmod.preset_text("paper-abm"))
    assert kam.system.counts == [1300, 700] and kam.system.density == 1.2
    assert kam.system.sigma == [[1.0, 0.8], [0.8, 0.88]] and kam.system.epsilon == [[1.0, 1.5], [1.5, 0.5]]
    assert kam.system.cutoff_factor == 2.5 and kam.contact_sigma[0, 1] == pytest.approx(0.94)
    assert abm.system.counts == [1000, 1000] and abm.system.density == 1.09
    np.testing.assert_allclose(abm.sigma, [[5 / 6, 1.0], [1.0, 7 / 6]])
    assert (abm.epsilon == 1).all() and abm.system.cutoff_factor == 3.0
    for s, T_L in ((kam, 0.8), (abm, 2.0)):
        q = s.quench
        assert (q.replicas, q.split, q.T_start, q.cooling_rate, q.T_liquid, q.T_glass) == (
            5000,
            [4000, 400, 600],
            4.0,
            8.33e-5,
            T_L,
            0.05,
        )
        assert s.system.n_particles == 2000 and s.system.masses == [1.0, 1.0]
        assert (s.train.lr, s.train.batch_size, s.train.epochs) == (1e-6, 5, 250)
        assert s.box_length == pytest.approx((2000 / s.system.density) ** 0.5)


def test_demo_presets_state_their_departures():
    for name in ("demo-kam", "demo-abm"):
        text = specmod.preset_text(name)
        assert "DEPARTURES FROM THE PAPER" in text
        specmod.loads(text)


@pytest.mark.parametrize("name", specmod.PRESETS)
def test_presets_coarse_grain_within_half_the_box(name):
    """No preset coarse-grains with a cutoff 2 xi beyond half its box (the fields would become
    box averages), its xi grid covers the xi it uses, and Table IV comes from the same runs."""
    spec = specmod.loads(specmod.preset_text(name))
    a = spec.analyze
    used = list(specmod.fixed_xi(a).values())  # 'rule': the lengths come from xi_grid and C(r)
    assert 2 * max(used + a.xi_grid) <= spec.box_length / 2, (used, a.xi_grid, spec.box_length)
    assert max(a.xi_grid) >= max(used, default=0.0)
    p = spec.propensity
    assert p.main_samples and p.samples >= 3 * p.main_samples


def test_3d_kob_andersen_presets():
    """80:20, rho 1.2, sigma and epsilon as KAM, r_c = 2.5 sigma_ij; our choices stated; the
    coarse-graining cutoff 2 xi and the C(r) range fit in half the box."""
    for name in ("ka3d", "demo-ka3d"):
        text = specmod.preset_text(name)
        s = specmod.loads(text)
        assert s.dim == 3 and s.system.density == 1.2 and s.system.cutoff_factor == 2.5
        assert s.system.counts[0] == 4 * s.system.counts[1] and s.system.masses == [1.0, 1.0]
        assert s.system.sigma == [[1.0, 0.8], [0.8, 0.88]] and s.system.epsilon == [[1.0, 1.5], [1.5, 0.5]]
        assert s.model.head == "gap" and s.quench.T_glass == 0.05
        assert 2 * max(s.analyze.xi_grid) <= s.box_length / 2 and s.analyze.correlation_rmax <= s.box_length / 2
        assert s.box_length / s.dataset.grid == pytest.approx(0.63, abs=0.01)
        assert ("OUR CHOICES" if name == "ka3d" else "DEPARTURES FROM ka3d") in text


def test_overrides_keep_comments_and_validate():
    text = specmod.apply_overrides(
        specmod.preset_text("paper-kam"), ["quench.replicas=10", "quench.split=[6,2,2]", "dask.address='tcp://h:1'"]
    )
    spec = specmod.loads(text)
    assert spec.quench.replicas == 10 and spec.dask.address == "tcp://h:1"
    assert "# OUR CHOICE" in text and "Table I" in text
    with pytest.raises(SpecError, match="quench.repicas"):
        specmod.apply_overrides(text, ["quench.repicas=3"])


def test_error_messages_name_key_and_fix():
    data = specmod.Spec(specmod.loads(specmod.preset_text("demo-kam")).raw).raw
    data["system"]["sigma"] = [[1.0, 0.8], [0.7, 0.88]]
    with pytest.raises(SpecError) as info:
        specmod.Spec(data)
    assert info.value.key == "system.sigma" and "symmetric" in str(info.value) and "Fix:" in str(info.value)


def test_docs_campaign_reference_in_sync():
    assert (ROOT / "docs" / "campaign.md").read_text().strip() == specmod.reference_markdown().strip()


def test_users_own_ternary_3d_mixture_quenches(tmp_path):
    """Any number of species, 3D, from the campaign file alone."""
    sets = [
        "system.dim=3",
        "system.n_particles=300",
        "system.density=0.9",
        'system.species=["A","B","C"]',
        "system.counts=[100,100,100]",
        "system.masses=[1.0,1.5,2.0]",
        "system.sigma=[[1.0,0.9,1.1],[0.9,0.9,1.0],[1.1,1.0,1.2]]",
        "system.epsilon=[[1.0,1.0,1.0],[1.0,1.0,1.0],[1.0,1.0,1.0]]",
        "system.contact_sigma=[]",
        "quench.replicas=3",
        "quench.split=[1,1,1]",
        "quench.cooling_rate=1.0",
        "quench.equilibration_time=1.0",
        "quench.snapshot_replicas=0",
    ]
    d = tmp_path / "ternary"
    glassdist("init", d, "--preset", "demo-kam", *[a for s in sets for a in ("--set", s)])
    glassdist("quench", d)
    store = Store(d, mode="r")
    positions, replicas = store.configurations()
    assert positions.shape == (3, 2, 300, 3) and np.isfinite(positions).all()
    assert np.bincount(store.types()).tolist() == [100, 100, 100]
