"""benchmarks/gpu_check.py (its JSON format, run at --quick sizes on the CPU) and `glassdist estimate
--calibration`, which turns that JSON into GPU-hours per stage (issue 25)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from glassdist import spec as specmod
from glassdist.commands.estimate import estimate, gpu_parts

from .conftest import glassdist

ROOT = Path(__file__).resolve().parents[1]


def check_json(rate=2e9, fire_seconds=3.0, per_sample=1e-3, per_map=2e-3) -> dict:
    """A GPU check result in gpu_check.py's format: two 2D float64 cases, one 3D."""
    md = [
        {
            "system": "kam",
            "dim": 2,
            "n": 2000,
            "replicas": r,
            "precision": "float64",
            "graphs": True,
            "steps": 100,
            "seconds": 1.0,
            "atom_steps_per_s": rate * r / 1000,
        }
        for r in (1, 1000)
    ]
    md.append(
        {
            "system": "ka3d",
            "dim": 3,
            "n": 8000,
            "replicas": 100,
            "precision": "float64",
            "graphs": True,
            "steps": 100,
            "seconds": 1.0,
            "atom_steps_per_s": 5e8,
        }
    )
    return {
        "device": "cuda:0",
        "device_name": "test GPU",
        "warp": "1.19.0",
        "torch": "2.13.0",
        "created": 0,
        "quick": False,
        "agreement": [],
        "md": md,
        "fire": [
            {
                "system": "kam",
                "dim": 2,
                "n": 2000,
                "replicas": 100,
                "seconds": 300.0,
                "seconds_per_minimisation": fire_seconds,
            }
        ],
        "train": [
            {"batch_size": b, "grid": 64, "dim": 2, "samples": 100, "seconds": 1.0, "seconds_per_sample": per_sample}
            for b in (5, 256)
        ],
        "gradcam": {"maps": 32, "grid": 64, "dim": 2, "seconds": 1.0, "seconds_per_map": per_map},
        "ddp": {"world": 1, "backend": "none (one process)", "samples": 10, "seconds": 1.0, "seconds_per_sample": 0.1},
    }


def paper_spec(*sets):
    return specmod.loads(specmod.apply_overrides(specmod.preset_text("paper-kam"), list(sets)))


def test_gpu_parts_follow_the_nearest_measured_case():
    """Quench seconds per replica are its steps x N / the rate of the case nearest in block size;
    train and gradcam scale with the pixels of the grid; inherent with N."""
    spec = paper_spec('md.engine="warp"', "md.replicas_per_task=1000", 'inherent.min_style="fire"')
    steps = int(round(spec.quench.equilibration_time / spec.md.dt)) + spec.cooling_steps
    parts = gpu_parts(spec, check_json())
    assert math.isclose(parts["quench"]["seconds"], steps * 2000 / 2e9)
    assert math.isclose(parts["propensity"]["seconds"], spec.propensity.steps * 2000 / 2e9)
    assert math.isclose(parts["inherent"]["seconds"], 3.0)
    n_train, n_val, _ = spec.quench.split
    one_network = 1e-3 * 2 * (n_train + n_val) * spec.train.epochs
    assert math.isclose(parts["train"]["seconds"], one_network)
    one = gpu_parts(paper_spec("md.replicas_per_task=1"), check_json())  # the single-replica case
    assert math.isclose(one["quench"]["seconds"], steps * 2000 / 2e6)
    coarse = gpu_parts(paper_spec("dataset.grid=32"), check_json())
    maps = 5 * (1 + 5) + 1  # per image: each member and its 5 randomisation levels (output, hidden, 3 convs), control
    assert math.isclose(coarse["gradcam"]["seconds"], 2 * 2e-3 / 4 * maps)
    rows = {r.stage: r for r in estimate(spec, None, parts)}
    assert rows["quench"].device == "cuda:0" and math.isclose(
        rows["quench"].core_hours, spec.quench.replicas * steps * 2000 / 2e9 / 3600
    )
    assert rows["dataset"].task_seconds is None  # not a GPU stage, no CPU calibration
    networks = 5 + 1  # the paper preset's members and the label-shuffled control: one task each
    assert rows["train"].tasks == networks and math.isclose(rows["train"].core_hours, networks * one_network / 3600)
    assert rows["train"].wall_seconds(ranks=8) == networks * one_network  # one after another on the GPU


def test_estimate_calibration_prints_gpu_hours_and_refuses_other_files(tmp_path):
    d = tmp_path / "c"
    glassdist("init", d, "--preset", "paper-kam", "--set", "md.replicas_per_task=1000")
    good = tmp_path / "gpu.json"
    good.write_text(json.dumps(check_json()))
    out = glassdist("estimate", d, "--calibration", good).stdout
    quench = next(line for line in out.splitlines() if line.startswith("| quench"))
    assert quench.split("|")[5].strip() == "-" and float(quench.split("|")[6]) > 0  # GPU-h, not core-h
    assert "GPU-hours on one device" in out and "kam 2D N = 2000 x 1000" in out
    for text in ("{not json", json.dumps({"device": "cuda:0"})):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        proc = glassdist("estimate", d, "--calibration", bad, check=False)
        assert proc.returncode == 2 and "gpu_check.py" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_gpu_check_quick_run_writes_its_documented_format(tmp_path):
    """The script itself, at --quick sizes on the CPU: every documented field, CPU-vs-CPU agreement
    exact, positive rates; its JSON feeds `glassdist estimate --calibration`."""
    out = tmp_path / "check.json"
    proc = subprocess.run(
        [sys.executable, ROOT / "benchmarks" / "gpu_check.py", "--quick", "--device", "cpu", "--out", out],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    reference = check_json()
    for key in ("md", "fire", "train"):
        assert result[key] and set(result[key][0]) == set(reference[key][0]), key
    assert set(result["gradcam"]) == set(reference["gradcam"])
    assert all(a["max_dx"] == 0.0 for a in result["agreement"]) and len(result["agreement"]) == 2
    assert all(m["atom_steps_per_s"] > 0 for m in result["md"])
    assert result["ddp"]["world"] == 2 and result["ddp"]["seconds_per_sample"] > 0
    assert "| MD (NVT) |" in proc.stdout
    d = tmp_path / "c"
    glassdist("init", d, "--preset", "demo-kam")
    assert "device-hours" in glassdist("estimate", d, "--calibration", out).stdout
