"""The report's departure table (glassdist.report.departures): generated from the campaign and
the store against the paper's protocol (glassdist.report.paper_values.PROTOCOL)."""

from glassdist.report import departures
from glassdist.report.context import Context
from glassdist.spec import apply_overrides, loads, preset_text
from glassdist.store import Store


def table(tmp_path, preset, *overrides):
    spec = loads(apply_overrides(preset_text(preset), list(overrides)))
    d = tmp_path / preset / str(len(overrides))
    d.mkdir(parents=True)
    return {row[0]: row for row in departures.rows(Context(d, Store.create(d, spec), spec))}


def test_departure_table_lists_a_changed_key(tmp_path):
    paper = table(tmp_path, "paper-kam")
    # the paper preset departs only where the paper is silent or where we chose otherwise
    departing = {name for name, row in paper.items() if row[3] == "yes"}
    assert departing == {
        "input normalisation (dataset.normalise)",
        "run length and δ reached (propensity.steps)",
        "ensemble size (train.ensemble)",
    }  # our choice: K = 5 members, the paper trained one
    assert paper["grid (dataset.grid)"][3] == "paper silent"
    assert "held 100 τ, τ_α not measured yet" in paper["liquid hold at T_L and τ_α (quench.hold_liquid)"][2]
    assert "not run yet" in paper["run length and δ reached (propensity.steps)"][2]

    changed = table(tmp_path, "paper-kam", "quench.cooling_rate=0.001", "quench.T_liquid=2.5", "train.epochs=50")
    for name in ("cooling rate (quench.cooling_rate)", "T_L, T_G (quench.T_liquid, T_glass)", "epochs (train.epochs)"):
        assert paper[name][3] == "no" and changed[name][3] == "yes", name
    assert changed["cooling rate (quench.cooling_rate)"][2] == "0.001"
    assert changed["cooling rate (quench.cooling_rate)"][4] == departures.NOT_MEASURED
    assert "docs/validation.md" in changed["T_L, T_G (quench.T_liquid, T_glass)"][4]
    assert {n for n, r in changed.items() if r != paper[n]} == {
        "cooling rate (quench.cooling_rate)",
        "T_L, T_G (quench.T_liquid, T_glass)",
        "epochs (train.epochs)",
    }


def test_demo_rows_name_the_demo_departures(tmp_path):
    demo = table(tmp_path, "demo-kam")
    assert demo["network (model.*)"][3] == "yes" and "ReLU between the dense layers" in demo["network (model.*)"][2]
    assert demo["propensity temperatures (propensity.temperatures)"][2] == "fixed: 0.37, 0.55"
    assert demo["ξ rule (analyze.xi)"][3] == "no"
    assert "docs/validation.md" in demo["replicas and split (quench.replicas, quench.split)"][4]
