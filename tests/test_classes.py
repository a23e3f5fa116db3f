"""Two named classes beyond liquid/glass (`[classes]`): validation, the two-cooling-rate quench,
and the names reaching the dataset, Grad-CAM targets and the report's tables."""

from __future__ import annotations

import re

import numpy as np
import pytest

from glassdist import spec as specmod
from glassdist.errors import SpecError
from glassdist.store import Store

from .conftest import glassdist, init_tiny

TWO_RATES = [
    'classes.names=["fast","slow"]',
    "classes.cooling_rates=[1.0,0.2]",
    "gradcam.target_class=slow",
    "gradcam.liquid_target_class=slow",
    "quench.replicas=3",
    "quench.split=[1,1,1]",
    "quench.snapshot_replicas=1",
]


def spec_with(*sets: str):
    return specmod.loads(specmod.apply_overrides(specmod.preset_text("demo-kam"), list(sets)))


def test_paper_presets_keep_liquid_glass():
    for name in specmod.PRESETS:
        s = specmod.loads(specmod.preset_text(name))
        expected = ("fast", "slow") if name == "demo-kam-cooling" else ("liquid", "glass")
        assert s.class_names == expected and s.target_classes() == [1, 1]


@pytest.mark.parametrize(
    "sets, key",
    [
        (['classes.names=["a","b","c"]'], "classes.names"),
        (['classes.names=["fast","slow"]'], "gradcam.target_class"),  # the preset still names "glass"
        (["classes.cooling_rates=[0.1]"], "classes.cooling_rates"),
        (["classes.cooling_rates=[0.1,0.1]"], "classes.cooling_rates"),
        (["classes.cooling_rates=[1e-12,0.1]"], "classes.cooling_rates"),
    ],
)
def test_bad_classes_name_the_key(sets, key):
    with pytest.raises(SpecError) as err:
        spec_with(*sets)
    assert err.value.key == key


def test_empty_target_means_the_second_class():
    s = spec_with('classes.names=["fast","slow"]', 'gradcam.target_class=""', "gradcam.liquid_target_class=fast")
    assert s.target_classes() == [0, 1]


def test_two_cooling_rates_quench_each_replica_twice_from_one_start(tmp_path):
    d = init_tiny(tmp_path / "rates", "kam", *TWO_RATES)
    glassdist("quench", d)
    store = Store(d, mode="r")
    pe = store.root["quench/pe"][:]
    assert np.isfinite(store.root["quench/positions"][:]).all()
    assert (pe[:, 1] < pe[:, 0]).all()  # the slower cooling gives the lower-energy glass
    inputs = d / "lammps" / "quench"
    for name, rate in (("fast", 1.0), ("slow", 0.2)):
        text = (inputs / f"replica-000000-{name}.in").read_text()
        steps = round((4.0 - 0.05) / rate / 0.005)
        assert re.search(rf"^run \d+ start 0 stop {steps}$", text, re.M), name
    fast, slow = ((inputs / f"replica-000000-{n}.in").read_text() for n in ("fast", "slow"))
    assert fast.split("fix cool")[0] == slow.split("fix cool")[0]  # same start: seed, equilibration
    assert np.isfinite(store.root["quench/snapshots"][0]).all()  # from the slow cooling
