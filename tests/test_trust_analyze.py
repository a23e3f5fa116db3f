"""The analyze stage's evidence behind Gamma (inter-member agreement, randomised / shuffled /
input-only Gamma, partial correlations, intervals and null bands) on a real campaign store whose
upstream results are synthetic fields with known answers: the real `glassdist analyze` (Dask)
reads them like those of the gradcam, indicators and propensity stages."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from glassdist.fields.coarse import coarse_grain
from glassdist.spec import load
from glassdist.store import Store

from .conftest import glassdist

pytestmark = pytest.mark.slow  # four stores through the real `glassdist analyze` (Dask): about a minute

N, M, V = 400, 3, 5
SETS = [
    "system.n_particles=400",
    "system.counts=[320,80]",
    "quench.replicas=8",
    "quench.split=[4,2,2]",
    "propensity.configurations=[0]",
    "propensity.temperatures=[0.5]",
    "propensity.samples=4",
    "propensity.main_samples=0",
    "propensity.steps=400",
    "propensity.outputs=4",
    "propensity.until_delta=1.0",
    "analyze.deltas=[0.3, 1.0]",
    "analyze.xi_grid=[0.0, 1.0, 2.0]",
    "analyze.correlation_rmax=4.0",
    "analyze.correlation_bins=8",
    "analyze.xi={Delta = 1.0, alpha = 1.0, violin = 0.6}",
    "analyze.bootstrap=200",
    "analyze.null_samples=50",
    "train.ensemble=3",
    "dask.workers=1",
]


def done(store: Store, name: str, n: int) -> None:
    ledger = store.ledger(name, n)
    for t in range(n):
        ledger.mark_done(t, 1, 0.0)


def write(store: Store, path: str, value, chunks=None) -> None:
    value = np.asarray(value)
    chunks = chunks or (1,) + value.shape[1:]
    store.root.create_array(path, shape=value.shape, chunks=chunks, dtype=value.dtype)[...] = value


def synthetic_campaign(directory, *, identical: bool, variants: bool = True, flat: int | None = None):
    """A campaign whose quench, gradcam, indicators and propensity results are synthetic fields:
    Upsilon = smoothed noise; Gamma^0 = Upsilon + noise; every member's Gamma = Gamma^0 + 0.01 noise
    (so Gamma-bar is a function of Gamma^0 up to that noise), identical members or independent noise;
    member ``flat`` (if given) drew no map: its Gamma is zero everywhere."""
    glassdist("init", directory, "--preset", "demo-kam", *[a for s in SETS for a in ("--set", s)])
    spec = load(directory)
    store = Store.create(directory, spec)
    rng = np.random.default_rng(0)
    L, R, test = spec.box_length, spec.quench.replicas, spec.replicas_of("test")
    pos = rng.uniform(0, L, (R, 2, N, 2))
    write(store, "quench/positions", pos)
    done(store, "quench", R)
    ups = np.stack([[coarse_grain(pos[r, c], rng.normal(size=N), L, 0.8) for c in (0, 1)] for r in range(R)])
    write(store, "indicators/voronoi", ups)
    write(store, "indicators/ttop", rng.normal(size=(R, 2, N)))
    done(store, "indicators", R)
    gamma0 = ups[test] + 0.3 * ups.std() * rng.normal(size=(len(test), 2, N))
    noise = rng.normal(size=(len(test), 1 if identical else M, 2, N)) * 0.01 * gamma0.std()
    members = gamma0[:, None] + noise * np.ones((1, M, 1, 1))
    if flat is not None:
        members[:, flat] = 0.0
    write(store, "gradcam/gamma", members.mean(axis=1))
    write(store, "gradcam/replicas", test.astype(np.int64), chunks=(len(test),))
    write(store, "gradcam/correct", np.ones((len(test), 2), bool))
    if variants:
        write(store, "gradcam/members", members)
        write(store, "gradcam/randomised", rng.normal(size=(len(test), M, V, 2, N)))
        store.root["gradcam"].attrs["randomisation_levels"] = ["output", "hidden", "conv3", "conv2", "conv1"]
        shuffled = rng.normal(size=(len(test), 2, N))
        if flat is not None:  # the label-shuffled model drew no map in the first glass either
            shuffled[0, 1] = 0.0
        write(store, "gradcam/shuffled", shuffled)
        write(store, "gradcam/input", gamma0)
    done(store, "gradcam", len(test))
    write(store, "train/test_accuracy", np.full((M, 2), 0.5), chunks=(M, 2))
    done(store, "train", 1)
    times = 4 + 1
    delta = np.geomspace(0.05, 1.5, times)[None, None]  # (C, nT, T)
    z = gamma0[0, 1] + 0.5 * gamma0.std() * rng.normal(size=N)  # Delta follows the glass's Gamma^0, with noise
    Delta = delta[..., None] * (1 + 0.3 * (z - z.mean()) / z.std())  # (C, nT, T, N)
    store.root.require_group("propensity").attrs["temperatures"] = [0.5]
    write(store, "propensity/delta", delta, chunks=(1, 1, times))
    write(store, "propensity/Delta", Delta, chunks=(1, 1, times, N))
    done(store, "propensity", 4)
    done(store, "propensity_reduce", 1)
    return store


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    out = {}
    for name, kw in (
        ("identical", dict(identical=True)),
        ("independent", dict(identical=False)),
        ("old", dict(identical=True, variants=False)),
        ("flat", dict(identical=False, flat=1)),
    ):
        d = tmp_path_factory.mktemp(name) / "c"
        synthetic_campaign(d, **kw)
        glassdist("analyze", d, timeout=300)
        out[name] = Store(d, mode="r")
    return out


def test_trust_tables_and_arrays(analysed):
    store = analysed["independent"]
    an = store.root["analyze"]
    tables = an.attrs["tables"]
    trust = tables["trust"]
    for key in (
        "agreement",
        "members_disagreeing_in_sign",
        "verdict",
        "sentence",
        "randomised",
        "shuffled",
        "input",
        "partial",
        "consensus",
        "member_mean",
        "propensity",
        "notes",
    ):
        assert key in trust, key
    for key in ("S2_ci", "S2_null", "V_ci", "V_null", "S1_ci", "S1_null", "III_ci", "fig5_ci", "fig5_null", "II_ci"):
        assert key in tables, key
    assert an["trust/agreement"].shape == (2, 2) and an["trust/members"].shape == (2, 2, M, 2)
    assert an["trust/randomised"].shape == (2, 2, M, V, 2) and an["trust/pairs_null"].shape == (2, 2, 50, 3)
    assert an["trust/propensity/V_boot"].shape == (1, 1, 200, 3) and an["trust/propensity/S1_null"].shape == (
        1,
        1,
        50,
        2,
        3,
    )
    assert trust["randomised"]["levels"][0] == "output" and np.shape(trust["randomised"]["mean"]) == (V, 2, 2)
    # the members share Gamma^0 and differ by 1 % noise: they agree
    assert trust["verdict"] == "agree" and min(trust["agreement"]["mean"]) > 0.99
    # Gamma ~ Upsilon through Gamma^0: high C(Gamma, Upsilon), gone given Gamma^0 ...
    consensus = np.array(trust["consensus"]["mean"])  # (2, I): [Upsilon, Theta]
    assert (consensus[:, 0] > 0.7).all()
    assert np.abs(np.array(trust["partial"]["given_input"]["mean"])[:, 0]).max() < 0.25
    # ... reproduced by Gamma^0, not by the random-noise randomised / shuffled Gamma
    assert np.array(trust["input"]["reproduces"])[:, 0].all()
    assert not np.array(trust["shuffled"]["reproduces"])[:, 0].any()
    assert not np.array(trust["randomised"]["no_learnt_information"])[:, 0].any()
    # the observed Table S2 correlation lies far above its null band; the interval holds the mean
    s2, s2_ci, s2_null = (np.array(tables[k], dtype=float) for k in ("S2", "S2_ci", "S2_null"))
    assert (s2[:, 0, 0] > s2_null[:, 0, 1]).all()
    assert ((s2_ci[:, 0, 0] <= s2[:, 0, 0]) & (s2[:, 0, 0] <= s2_ci[:, 0, 1])).all()
    v, v_null = np.array(tables["V"], dtype=float), np.array(tables["V_null"], dtype=float)
    assert v_null.shape == (1, 3, 2) and np.isfinite(v_null).all() and (v_null[..., 0] <= v_null[..., 1]).all()
    assert v.shape[0] == v_null.shape[0] and v.shape[-1] == v_null.shape[1]  # per configuration and indicator
    assert np.shape(tables["S1_ci"]) == (1, 1, 2, 3, 2) and np.shape(tables["fig5_ci"]) == (1, 1, 3, 5, 2)
    assert np.shape(trust["propensity"]["members"]) == (1, M) and np.shape(trust["propensity"]["partial"]) == (1, 2)
    # C(Gamma-bar, Delta) at Table V's maximum, with Fig. 5's interval there: strong, reproduced by Gamma^0
    # (Delta follows it), not by the noise of the randomised and shuffled Gamma
    prop = trust["propensity"]
    value, low, high = prop["consensus"][0]
    assert value == pytest.approx(tables["V"][0][0][0]) and low <= value <= high and abs(value) > 0.5
    assert prop["reproduces"]["input"] == [True] and prop["reproduces"]["shuffled"] == [False]
    assert prop["reproduces"]["randomised"] == [[False] * V]
    assert np.isfinite(np.array(tables["II_ci"], dtype=float)).all()


def test_a_member_that_drew_no_map_is_named_and_left_out_of_the_agreement(analysed):
    """Member 1's Gamma is zero everywhere (a training that did not learn): it correlates with
    nothing, the agreement is that of members 0 and 2 (1 % noise apart: > 0.99) and the verdict
    sentence names the member; with no flat member the list is empty."""
    trust = analysed["flat"].root["analyze"].attrs["tables"]["trust"]
    assert trust["flat_members"] == [1] and "Member(s) 1 drew no map" in trust["sentence"]
    assert trust["shuffled"]["no_map"] == [0, 1] and trust["input"]["no_map"] == [0, 0]
    assert np.isfinite(trust["shuffled"]["mean"][1]).all()  # over the other glass
    assert analysed["independent"].root["analyze"].attrs["tables"]["trust"]["shuffled"]["no_map"] == [0, 0]
    assert min(trust["agreement"]["mean"]) > 0.99 and trust["verdict"] == "agree"
    assert np.isnan(np.array(trust["member_mean"], dtype=float)[:, 1]).all()
    assert analysed["independent"].root["analyze"].attrs["tables"]["trust"]["flat_members"] == []


def test_identical_members_agree_exactly(analysed):
    trust = analysed["identical"].root["analyze"].attrs["tables"]["trust"]
    np.testing.assert_allclose(analysed["identical"].root["analyze/trust/agreement"][:], 1.0)
    assert trust["members_disagreeing_in_sign"] == []
    members = analysed["identical"].root["analyze/trust/members"][:]  # (Rt, 2, M, I): the same for each member
    np.testing.assert_allclose(members, members[:, :, :1].repeat(M, axis=2))


def test_a_store_without_members_says_so(analysed):
    store = analysed["old"]
    an = store.root["analyze"]
    trust = an.attrs["tables"]["trust"]
    assert trust["members"] == 1 and trust["verdict"] == "one member" and "gradcam/gamma" in trust["member_source"]
    assert all("absent" in trust[n] for n in ("randomised", "shuffled", "input"))
    assert "trust/randomised" not in an and "trust/input" not in an and an["trust/members"].shape == (2, 2, 1, 2)
    assert np.isnan(an["trust/agreement"][:]).all() and np.isnan(an["trust/partial"][:, :, 0]).all()
    assert np.isfinite(an["trust/partial"][:, :, 1]).all()  # given the composition


def test_an_analysis_before_the_trust_arrays_is_redone(analysed, tmp_path):
    """A store analysed by a glassdist without analyze/trust (its group and tables removed here), or
    without any other array of today's analysis: the next `glassdist analyze` says so once and redoes
    every task; the report's evidence is then there."""
    d = shutil.copytree(analysed["old"].dir, tmp_path / "c", symlinks=True)
    store = Store(d)
    del store.root["analyze/trust"]
    tables = dict(store.root["analyze"].attrs["tables"])
    store.root["analyze"].attrs["tables"] = {k: v for k, v in tables.items() if k in ("III", "V", "S1", "S2")}
    out = glassdist("analyze", d, timeout=300).stdout
    assert out.count("predates arrays of this glassdist (trust/agreement") == 1
    store = Store(d, mode="r")
    assert store.ledger("analyze").done_mask().all() and "trust" in store.root["analyze"].attrs["tables"]
    assert "trust/agreement" in store.root["analyze"]
    assert "predates" not in glassdist("analyze", d).stdout  # and once only
