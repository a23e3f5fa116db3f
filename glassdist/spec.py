"""The campaign file: schema, presets, validation, overrides and hashing.

A campaign file (``DIR/campaign.toml``) is the whole experiment. It is validated on load
against :data:`SCHEMA`; every problem is reported as a :class:`~glassdist.errors.SpecError`
naming the key and the fix. The loaded :class:`Spec` gives attribute access
(``spec.system.n_particles``) and derived quantities (box length, type counts, ...).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from hpc.schema import (
    BOOL,
    INT,
    INTS,
    MATRIX,
    NUMBER,
    NUMBERS,
    STRING,
    STRINGS,
    Key,
    all_non_negative,
    all_of,
    all_positive,
    at_most,
    between,
    distinct,
    non_empty,
    non_negative,
    one_of,
    positive,
    NUMBER_TABLE,
    parse_toml,
    reference_table,
    table_of,
    toml_value,
    unless,
    word_or,
)
from hpc.schema import REQUIRED
from hpc.schema import validate as validate_file

from .constants import CLASSES, SPLITS, engine_names
from .errors import SpecError, UsageError

# Limits of values a run can represent (every other limit is a cross-key check below).
MAX_COUNT = 2**31 - 1  # particles (LAMMPS atom IDs), replicas, samples, iterations: 32-bit
MAX_POINTS = 10**6  # points of one curve (thermo, outputs, bins, checkpoints): one array in memory
MAX_STEPS = 2**31 - 1  # MD steps of one LAMMPS `run` command (its limit; paper: at most 3e8)
MAX_LAYER = 2**16  # CNN layer width: far beyond any image classifier, and it must fit in memory
MAX_WORKERS = 1024  # workers of one LocalCluster (one machine)
MAX_ATTEMPTS = 2**15 - 1  # the ledger counts attempts in int16
count = between(1, MAX_COUNT)
HOLD_OUTPUTS = 40  # log-spaced F_s samples of the liquid hold (quench.hold_liquid), after t = 0


AUTO = "auto"
AUTO_TEMPERATURES = AUTO
XI_RULE = "rule"
XI_KEYS = ("Delta", "alpha", "violin")

SCHEMA: dict[str, dict[str, Key]] = {
    "campaign": {
        "name": Key(STRING, help="campaign name (free text)"),
        "seed": Key(INT, help="master seed; every task seed derives from it and the task index", check=non_negative),
        "description": Key(STRING, "", help="what this campaign is for"),
    },
    "system": {
        "dim": Key(INT, help="spatial dimension (2 or 3)", check=one_of(2, 3)),
        "n_particles": Key(INT, help="total number of particles N", check=between(4, MAX_COUNT)),
        "density": Key(NUMBER, help="number density rho = N / L^dim", check=positive),
        "species": Key(STRINGS, help="species names, one per LAMMPS atom type"),
        "counts": Key(INTS, help="number of particles of each species (sum = n_particles)"),
        "masses": Key(NUMBERS, help="mass of each species", check=all_positive),
        "sigma": Key(MATRIX, help="LJ sigma_ij, symmetric species x species matrix"),
        "epsilon": Key(MATRIX, help="LJ epsilon_ij, symmetric species x species matrix"),
        "cutoff_factor": Key(NUMBER, help="r_c,ij = cutoff_factor * sigma_ij (eq. 1)", check=positive),
        "contact_sigma": Key(
            MATRIX,
            [],
            help="'sum of radii' for the Tong-Tanaka ideal angle; empty = use sigma (KAM presets: additive 0.94)",
        ),
        "interaction_known": Key(
            BOOL,
            True,
            help="whether sigma, epsilon and cutoff_factor are the interaction "
            "the configurations were made with; false for imported configurations of an "
            "unknown interaction: the propensity stage (new MD) is then skipped, sigma still "
            "sets the image kernel and the Tong-Tanaka angle (docs/import.md)",
        ),
    },
    "classes": {
        "names": Key(
            STRINGS,
            list(CLASSES),
            help="the two classes the CNN tells apart, in the order of the class "
            "axis of every (R, 2, ...) array (label 0, label 1); the paper's: liquid (saved at "
            "quench.T_liquid), glass (at quench.T_glass); imported configurations name theirs with "
            "`glassdist import --class NAME`",
            check=distinct,
        ),
        "cooling_rates": Key(
            NUMBERS,
            [],
            help="generated data only: [rate of class 0, rate of class 1]: each replica "
            "is quenched twice from the same start (same seed) to quench.T_glass, once at each rate, "
            "and class c is the glass of rate c (quench.cooling_rate and T_liquid are then unused); "
            "empty = the paper's one cooling, saved at T_liquid (class 0) and T_glass (class 1)",
            check=all_positive,
        ),
    },
    "md": {
        "dt": Key(NUMBER, 0.005, help="MD time step (LJ time units)", check=positive),
        "thermostat_damping": Key(NUMBER, 0.5, help="Nose-Hoover damping time (LJ time units; 100 dt)", check=positive),
        "neighbor_skin": Key(NUMBER, 0.3, help="LAMMPS neighbour-list skin", check=positive),
        "ranks_per_task": Key(INT, 1, help="MPI ranks per LAMMPS task (use > 1 only for large N)", check=count),
        "max_attempts": Key(INT, 3, help="attempts per task before it is left failed", check=between(1, MAX_ATTEMPTS)),
        "lammps_suffix": Key(STRING, "", help="LAMMPS accelerator suffix ('' or 'omp')", check=one_of("", "omp")),
        "engine": Key(
            STRING,
            "lammps",
            help="MD engine: 'lammps' (one LAMMPS instance per replica, CPU), "
            "'warp' (blocks of replicas stepped together, GPU or CPU; validated against LAMMPS), or "
            "an installed plugin's (entry-point group glassdist.engines)",
            check=lambda v: one_of(*engine_names())(v),
        ),
        "device": Key(
            STRING,
            "auto",
            help="device of the warp engine: 'auto' (a GPU when there is one), 'cpu' or 'cuda'",
            check=one_of("auto", "cpu", "cuda"),
        ),
        "precision": Key(
            STRING, "float64", help="floating-point precision of the warp engine", check=one_of("float64", "float32")
        ),
        "replicas_per_task": Key(
            INT,
            1,
            help="replicas (or runs) per farm task: one block stepped "
            "together by a batched engine (warp: 1000 fills a GPU at N = 2000; LAMMPS "
            "runs them one after another)",
            check=count,
        ),
        "checkpoint_every": Key(
            INT,
            50_000,
            help="quench steps between checkpoints (LAMMPS restart "
            "files with the thermostat state, and the results so far; about 30 s "
            "of work at N = 2000 on one core); a quench resumes there after a kill, "
            "and a SIGTERM stops it at the next checkpoint or recorded step",
            check=between(1, MAX_STEPS),
        ),
    },
    "quench": {
        "source": Key(
            STRING,
            "md",
            help="where the configurations come from: 'md' (the quench stage) or 'import' "
            "(`glassdist import`, docs/import.md; the quench stage then runs no MD)",
            check=one_of("md", "import"),
        ),
        "replicas": Key(INT, help="independent quenches R", check=between(2, MAX_COUNT)),
        "split": Key(INTS, help="train/val/test replica counts (sum = replicas)"),
        "T_start": Key(NUMBER, 4.0, help="equilibration temperature before cooling", check=positive),
        "equilibration_time": Key(NUMBER, 100.0, help="NVT time at T_start (LJ units)", check=non_negative),
        "cooling_rate": Key(NUMBER, help="|dT/dt| of the linear quench", check=positive),
        "T_liquid": Key(NUMBER, help="T_L: configuration saved as class 'liquid'", check=positive),
        "T_glass": Key(NUMBER, help="T_G: configuration saved as class 'glass'", check=positive),
        "hold_liquid": Key(
            NUMBER,
            0.0,
            help="time (LJ units) each replica is held at T_L (NVT) when the cooling "
            "reaches it; the liquid is saved at the end of the hold, F_s(k*, t) and tau_alpha are "
            "measured during it and the hold must last 10 tau_alpha (else the replica is flagged); "
            "the cooling then goes on. 0: no hold (the liquid is saved as the cooling passes T_L)",
            check=non_negative,
        ),
        "thermo_points": Key(
            INT,
            100,
            help="T and potential energy recorded at this many evenly spaced temperatures along the cooling (Fig. S9a)",
            check=between(2, MAX_POINTS),
        ),
        "snapshot_replicas": Key(
            INT, 4, help="the first k replicas also keep cooling snapshots (for E0(T))", check=between(0, MAX_COUNT)
        ),
        "snapshot_temperatures": Key(
            NUMBERS, [], help="temperatures of the cooling snapshots", check=all_of(distinct, all_positive)
        ),
    },
    "dataset": {
        "grid": Key(
            INT, 64, help="image size: grid points per box side (paper: not given)", check=between(4, MAX_COUNT)
        ),
        "kernel_cutoff": Key(NUMBER, 2.5, help="Gaussian kernel cutoff in units of sigma_ii", check=positive),
        "normalise": Key(
            STRING,
            "standard",
            help="CNN input scaling (paper: 'to [0, 1]', ambiguous): "
            "'image' = per-image min-max (drops the fluctuation amplitude that tells glass "
            "from liquid), 'dataset' = min-max of the training images, 'standard' = "
            "(x - mean) / std of the training images (trains fastest)",
            check=one_of("image", "dataset", "standard"),
        ),
    },
    "model": {
        "channels": Key(INTS, [16, 32, 32], help="filters of the three conv layers"),
        "kernel_sizes": Key(INTS, [5, 3, 3], help="odd kernel sizes of the three conv layers"),
        "hidden": Key(INT, 64, help="width of the first fully connected layer", check=between(1, MAX_LAYER)),
        "dropout": Key(NUMBER, 0.5, help="dropout ratio before the output layer"),
        "hidden_activation": Key(
            STRING,
            "none",
            help="activation after the first fully connected layer: "
            "'none' (the paper's Fig. S1 and Supp. I B: dense, dropout, dense) or 'relu' "
            "(a nonlinear head: the Grad-CAM gradients then depend on the input)",
            check=one_of("none", "relu"),
        ),
        "head": Key(
            STRING,
            "dense",
            help="'dense' (the paper's: flatten the last feature maps; the first "
            "fully connected layer has channels x grid^dim inputs) or 'gap' (global average "
            "pooling of each feature map: the same network for every N, so a model trained "
            "at one N explains configurations at another)",
            check=one_of("dense", "gap"),
        ),
    },
    "train": {
        "epochs": Key(INT, 30, help="training epochs (paper: 250)", check=count),
        "batch_size": Key(INT, 8, help="global batch size (paper: 5)", check=count),
        "lr": Key(NUMBER, 3e-4, help="Adam learning rate (paper: 1e-6)", check=all_of(positive, at_most(1.0))),
        "augment": Key(
            BOOL,
            True,
            help="random periodic translations of each training image "
            "(exact symmetry of a periodic system; paper: none)",
        ),
        "weight_decay": Key(NUMBER, 1e-4, help="L2 regularisation strength", check=between(0.0, 1.0)),
        "seed": Key(
            INT,
            0,
            help="training seed (weights init, shuffling, dropout, translations) of member 0; "
            "member k > 0 seeds from (seed, k)",
            check=non_negative,
        ),
        "ensemble": Key(
            INT,
            1,
            help="K members trained on the same split, differing in initialisation and data "
            "order; Grad-CAM is their mean (consensus) and the report shows how far they agree "
            "(paper: one network; our presets: demos 3, paper 5)",
            check=between(1, 64),
        ),
        "shuffled_control": Key(
            BOOL,
            False,
            help="also train one model on randomly permuted labels (Adebayo et "
            "al. 2018's label randomisation): its Grad-CAM correlations are the report's "
            "no-learning baseline (not in the paper; on in every preset)",
        ),
        "members_together": Key(
            word_or(AUTO, BOOL),
            AUTO,
            help="true: train the members that are to do as one "
            "grouped network (grouped convolutions; the same members as one by one up to float "
            "summation order); false: one member after another; 'auto': grouped on a GPU, one "
            "after another on the CPU, where grouping is not faster (benchmarks/"
            "ensemble_training.py: 1.0-1.5x the sequential time on 2 cores)",
        ),
        "member_processes": Key(
            word_or(AUTO, INT),
            AUTO,
            help="processes that train members (and the control) at "
            "the same time on a CPU, each with cores / processes torch threads: 'auto' = one "
            "per core, at most one per network; 1 = one after another in the stage's process "
            "(on a GPU and under data-parallel training always 1)",
            check=unless(AUTO, between(1, 1024)),
        ),
    },
    "gradcam": {
        "target_class": Key(
            STRING,
            "",
            help="class (one of classes.names) whose score y^C is explained on "
            "configurations of the second class ('' = the second class; paper: glass on glasses)",
        ),
        "liquid_target_class": Key(
            STRING,
            "",
            help="class (one of classes.names) explained on configurations of "
            "the first class ('' = the second class; paper: liquids, for which it does not "
            "say; our default glass)",
        ),
    },
    "indicators": {
        "compute": Key(
            STRINGS,
            [],
            help="structural indicators to compute (glassdist.structure.indicators: "
            "'voronoi', 'ttop', or an installed plugin); empty = every registered one that "
            "supports system.dim",
            check=distinct,
        ),
        "rdf_rmax": Key(NUMBER, 5.0, help="g(r) range", check=positive),
        "rdf_bins": Key(INT, 200, help="g(r) bins", check=between(2, MAX_POINTS)),
    },
    "inherent": {
        "min_style": Key(STRING, "fire", help="LAMMPS minimiser", check=one_of("fire", "cg")),
        "etol": Key(NUMBER, 0.0, help="energy tolerance of the minimisation", check=non_negative),
        "ftol": Key(NUMBER, 1e-8, help="force tolerance of the minimisation", check=non_negative),
        "max_iterations": Key(INT, 100000, help="minimiser iterations", check=count),
        "fit_low_T_max": Key(NUMBER, 0.0, help="low-T line of the T* fit uses T <= this (0: auto)", check=non_negative),
        "fit_mid_T": Key(NUMBERS, [], help="[T_min, T_max] of the linear mid-T regime (empty: auto)"),
        "fit_upper_T": Key(
            NUMBER,
            0.0,
            help="top of the automatic mid-T regime (0: quench.T_liquid, the paper's choice)",
            check=non_negative,
        ),
    },
    "propensity": {
        "configurations": Key(
            INTS,
            [0],
            help="test-split glass configurations (index within the test split) that get isoconfigurational ensembles",
            check=all_of(non_empty, distinct),
        ),
        "temperatures": Key(
            word_or(AUTO_TEMPERATURES, NUMBERS),
            AUTO_TEMPERATURES,
            help="run temperatures: 'auto' = propensity.t_star_multiples x the T* that the "
            "inherent stage fitted (the paper's protocol: T* to 1.5 T*; the stage then "
            "needs the inherent stage), or fixed values, e.g. [0.37, 0.55]",
            check=unless(AUTO_TEMPERATURES, all_of(non_empty, distinct, all_positive)),
        ),
        "t_star_multiples": Key(
            NUMBERS,
            [1.0, 1.25, 1.5],
            help="with temperatures = 'auto': the run "
            "temperatures in units of the fitted T* (paper: T* up to about 1.5 T*)",
            check=all_of(non_empty, distinct, all_positive),
        ),
        "main_samples": Key(
            INT,
            0,
            help="runs whose mean is the main propensity Delta: the first "
            "main_samples of the `samples` runs (0 = all). With samples >= 3 main_samples the "
            "Table IV sub-ensembles come from the same runs (paper: 30 of 100)",
            check=between(0, MAX_COUNT),
        ),
        "samples": Key(INT, 30, help="N_s runs per configuration and temperature", check=between(2, MAX_COUNT)),
        "steps": Key(
            INT,
            help="MD steps per run (paper: up to 3e8); with until_delta the cap of a run",
            check=between(1, MAX_STEPS),
        ),
        "until_delta": Key(
            NUMBER,
            0.0,
            help="stop each run at the first output step where its own mean "
            "cage-relative displacement delta^s reaches this delta (at least the largest "
            "analyze.deltas; `steps` caps it and a run that hits the cap is reported); 0: every "
            "run lasts `steps`",
            check=non_negative,
        ),
        "outputs": Key(INT, 40, help="log-spaced output times per run", check=between(2, MAX_POINTS)),
        "checkpoint_every": Key(
            INT,
            50_000,
            help="steps between restart checkpoints; also the "
            "longest wait before a SIGTERM checkpoints and stops a run (50 000: about "
            "30 s at N = 2000 on one core, inside SLURM's usual 60 s SIGTERM margin)",
            check=between(1, MAX_STEPS),
        ),
    },
    "analyze": {
        "deltas": Key(
            NUMBERS,
            [0.3, 1.0, 3.0],
            help="delta values of Figs. 1-3, S3",
            check=all_of(non_empty, distinct, all_positive),
        ),
        "xi_grid": Key(
            NUMBERS,
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0],
            help="coarse-graining lengths scanned for xi_alpha (Table S1)",
            check=all_of(non_empty, distinct, all_non_negative),
        ),
        "xi": Key(
            word_or(XI_RULE, NUMBER_TABLE),
            XI_RULE,
            help="coarse-graining lengths: 'rule' = the paper's rule on this campaign's data "
            "(docs/physics.md: xi_Delta from C_Delta(r) = 1/e at delta = 1, xi_alpha the largest of the "
            "xi maximising Pearson with the coarse-grained Delta, Fig. 6 at xi_Delta), or fixed values "
            "{Delta = 4.0, alpha = 8.0, violin = 4.0}: xi_Delta of Figs. 5, 7 and Table IV, xi_alpha of "
            "Figs. 1, 2, 5, 7, xi_alpha of Fig. 6 (paper, Table III: KAM 4, 8, 4; ABM 3, 5, 3)",
            check=unless(XI_RULE, table_of(XI_KEYS, non_negative)),
        ),
        "one_minus": Key(
            STRINGS,
            ["gradcam", "ttop"],
            help="indicators shown and correlated as 1 - X (the paper: KAM gradcam, ttop; ABM "
            "gradcam, voronoi; see glassdist.structure.indicators)",
            check=distinct,
        ),
        "correlation_bins": Key(INT, 60, help="bins of C_X(r)", check=between(2, MAX_POINTS)),
        "correlation_rmax": Key(NUMBER, 10.0, help="range of C_X(r)", check=positive),
        "bootstrap": Key(
            INT,
            1000,
            help="bootstrap resamples of every 95 % interval (over configurations; over "
            "spatial blocks of particles where a value comes from one configuration)",
            check=between(10, 10**6),
        ),
        "null_samples": Key(
            INT,
            200,
            help="random periodic shifts of the field behind each null band (the "
            "statistic between an indicator and a field of the same spatial smoothness that "
            "carries no information about it)",
            check=between(10, 10**6),
        ),
        "agreement_threshold": Key(
            NUMBER,
            0.8,
            help="mean inter-member agreement (Pearson between the members' "
            "coarse-grained Grad-CAM fields) above which the report calls Gamma a "
            "property of the glass rather than of one training",
            check=between(0.0, 1.0),
        ),
    },
    "dask": {
        "address": Key(STRING, "", help="existing scheduler address ('' = start a LocalCluster)"),
        "workers": Key(INT, 2, help="LocalCluster workers", check=between(1, MAX_WORKERS)),
        "threads_per_worker": Key(INT, 1, help="threads per LocalCluster worker", check=between(1, MAX_WORKERS)),
    },
}


class Section(dict):
    """A validated campaign section with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Spec:
    """A validated campaign: ``spec.system.density``, derived geometry and hashes."""

    def __init__(self, data: dict):
        self.raw = validate(data)
        for section, values in self.raw.items():
            setattr(self, section, Section(values))

    @staticmethod
    def with_new_keys(values: dict) -> dict:
        """Section values recorded by an older glassdist ({section: {key: value}}) with every key the
        schema gained since at its default: a key added later, left at its default, computes what the
        results were computed with (required keys, never added later, are left as they are)."""
        return {
            s: {**{k: key.default for k, key in SCHEMA.get(s, {}).items() if key.default is not REQUIRED}, **v}
            for s, v in values.items()
        }

    # ---- derived quantities -------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.system.dim

    @property
    def box_length(self) -> float:
        """L = (N / rho)^(1/dim)."""
        return (self.system.n_particles / self.system.density) ** (1.0 / self.dim)

    @property
    def class_names(self) -> tuple[str, str]:
        """Names of the two classes, in the order of the class axis (label 0, label 1)."""
        return tuple(self.classes.names)

    def target_classes(self) -> list[int]:
        """Class explained by Grad-CAM on configurations of [class 0, class 1] (gradcam.*; '' = class 1)."""
        return [
            self.class_names.index(name) if name else 1
            for name in (self.gradcam.liquid_target_class, self.gradcam.target_class)
        ]

    def class_quench(self, c: int) -> "Spec":
        """The spec whose quench makes class c's glass when classes.cooling_rates is set: the campaign
        with quench.cooling_rate = cooling_rates[c]."""
        raw = json.loads(json.dumps(self.raw))
        raw["quench"]["cooling_rate"] = self.classes.cooling_rates[c]
        return Spec(raw)

    @property
    def imported(self) -> bool:
        """Whether the configurations come from `glassdist import` (no quench MD)."""
        return self.quench.source == "import"

    @property
    def n_species(self) -> int:
        return len(self.system.species)

    @property
    def types(self) -> np.ndarray:
        """Species index of each particle, shape (N,): the first counts[0] are species 0, ..."""
        return np.repeat(np.arange(self.n_species), self.system.counts).astype(np.int8)

    @property
    def sigma(self) -> np.ndarray:
        return np.asarray(self.system.sigma, dtype=float)

    @property
    def epsilon(self) -> np.ndarray:
        return np.asarray(self.system.epsilon, dtype=float)

    @property
    def cutoff(self) -> np.ndarray:
        """r_c,ij, shape (S, S)."""
        return self.system.cutoff_factor * self.sigma

    @property
    def contact_sigma(self) -> np.ndarray:
        cs = self.system.contact_sigma
        return np.asarray(cs, dtype=float) if cs else self.sigma

    @property
    def cooling_steps(self) -> int:
        """MD steps of the linear cooling from T_start to T_glass (1 to MAX_STEPS, checked)."""
        return int(round(cooling_span(self.quench, self.md.dt)))

    @property
    def equilibration_steps(self) -> int:
        """MD steps of the NVT equilibration at T_start before the cooling."""
        return int(round(self.quench.equilibration_time / self.md.dt))

    @property
    def hold_liquid_steps(self) -> int:
        """MD steps of the liquid hold at T_L (0: no hold)."""
        return int(round(self.quench.hold_liquid / self.md.dt))

    @property
    def n_test(self) -> int:
        """Test-split replicas (the Grad-CAM and analysis configurations)."""
        return self.quench.split[2]

    def split_of(self) -> np.ndarray:
        """Split code (index into glassdist.constants.SPLITS) of each replica, shape (R,)."""
        return np.repeat(np.arange(len(SPLITS)), self.quench.split).astype(np.int8)

    def replicas_of(self, split: str) -> np.ndarray:
        """Replica ids (R_split,) of one split ('train', 'val' or 'test'), ascending."""
        return np.flatnonzero(self.split_of() == SPLITS.index(split))

    def section_hash(self, *sections: str) -> str:
        """Hash of the named sections (plus the campaign seed): what a stage's results depend on."""
        payload = {s: self.raw[s] for s in sections}
        payload["seed"] = self.raw["campaign"]["seed"]
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def hash(self) -> str:
        return self.section_hash(*SCHEMA)


def fixed_xi(analyze: dict) -> dict:
    """The fixed coarse-graining lengths {Delta, alpha, violin} of an [analyze] section ({} for 'rule')."""
    return {} if analyze["xi"] == XI_RULE else {k: float(v) for k, v in analyze["xi"].items()}


def validate(data: dict) -> dict:
    """Check types, values and cross-key consistency; fill defaults. Returns a new dict."""
    out = validate_file(data, SCHEMA, SpecError, fix="start from `glassdist init DIR --preset demo-kam`")
    _check_consistency(out)
    return out


def cooling_span(q: dict, dt: float) -> float:
    """MD steps of the linear cooling from T_start to T_glass, unrounded (inf when it overflows)."""
    return (q["T_start"] - q["T_glass"]) / q["cooling_rate"] / dt


def _check_steps(span: float, key: str, what: str, least: int = 1) -> None:
    if not least <= span <= MAX_STEPS:  # also false for inf and nan
        raise SpecError(
            key,
            f"{what} takes {span:.3g} MD steps",
            f"give values that make it {least} to {MAX_STEPS} steps (LAMMPS's limit of one run)",
        )


def _check_consistency(d: dict) -> None:
    s, q, md = d["system"], d["quench"], d["md"]
    n_sp = len(s["species"])
    if not 1 <= n_sp <= 127 or len(set(s["species"])) != n_sp:  # particle types are stored as int8
        raise SpecError("system.species", "must list 1 to 127 distinct species names", 'e.g. species = ["A", "B"]')
    for key in ("counts", "masses"):
        if len(s[key]) != n_sp:
            raise SpecError(
                f"system.{key}", f"has {len(s[key])} entries for {n_sp} system.species", "give one entry per species"
            )
    if min(s["counts"]) < 0:
        raise SpecError(
            "system.counts", f"{s['counts']} has a negative count", "give every species 0 or more particles"
        )
    if sum(s["counts"]) != s["n_particles"]:
        raise SpecError(
            "system.counts",
            f"sum {sum(s['counts'])} != system.n_particles {s['n_particles']}",
            "make the counts add up to n_particles",
        )
    for key in ("sigma", "epsilon") + (("contact_sigma",) if s["contact_sigma"] else ()):
        m = np.asarray(s[key], dtype=float) if len(s[key]) == n_sp and all(len(r) == n_sp for r in s[key]) else None
        if m is None:
            raise SpecError(
                f"system.{key}",
                f"must be a {n_sp} x {n_sp} matrix",
                "give one row per entry of system.species, one column per species",
            )
        if not np.allclose(m, m.T):
            raise SpecError(f"system.{key}", "is not symmetric", "make entry [i][j] equal entry [j][i]")
        if (m <= 0).any():
            raise SpecError(f"system.{key}", "has entries <= 0", "use positive values")
    L = (s["n_particles"] / s["density"]) ** (1 / s["dim"])
    rc = s["cutoff_factor"] * max(max(r) for r in s["sigma"])
    if not L >= 2 * rc:  # also false when L or rc overflow
        raise SpecError(
            "system.n_particles",
            f"box length (system.n_particles / system.density)^(1/dim) = "
            f"{L:.3g} < 2 x largest cutoff (system.cutoff_factor x system.sigma) = {2 * rc:.3g}",
            "use more particles, a lower density or a lower cutoff_factor",
        )
    if not L >= 2 * (rc + md["neighbor_skin"]):
        raise SpecError(
            "md.neighbor_skin",
            f"cutoff {rc:.3g} + skin {md['neighbor_skin']:.3g} exceeds half the box length {L:.3g}",
            "use a smaller neighbor_skin (LAMMPS default 0.3)",
        )
    if s["contact_sigma"] and np.max(s["contact_sigma"]) > L:
        raise SpecError(
            "system.contact_sigma",
            f"has entries larger than the box length {L:.3g}",
            "give contact distances of the order of sigma",
        )
    if len(q["split"]) != 3 or sum(q["split"]) != q["replicas"] or min(q["split"]) < 1:
        raise SpecError(
            "quench.split",
            f"{q['split']} must be three positive counts summing to quench.replicas = {q['replicas']}",
            "e.g. split = [4000, 400, 600] for 5000",
        )
    if not q["T_glass"] < q["T_liquid"] < q["T_start"]:
        raise SpecError(
            "quench.T_liquid", "need quench.T_glass < quench.T_liquid < quench.T_start", "order the three temperatures"
        )
    _check_steps(
        cooling_span(q, md["dt"]),
        "quench.cooling_rate",
        "the cooling (quench.T_start - quench.T_glass) / quench.cooling_rate / md.dt",
    )
    _check_steps(
        q["equilibration_time"] / md["dt"],
        "quench.equilibration_time",
        "the equilibration quench.equilibration_time / md.dt",
        least=0,
    )
    if q["hold_liquid"]:
        _check_steps(
            q["hold_liquid"] / md["dt"], "quench.hold_liquid", "the hold quench.hold_liquid / md.dt", least=HOLD_OUTPUTS
        )
    segments = (cooling_span(q, md["dt"]) + (q["equilibration_time"] + q["hold_liquid"]) / md["dt"]) / md[
        "checkpoint_every"
    ]
    if segments > MAX_POINTS:
        raise SpecError(
            "md.checkpoint_every",
            f"{segments:.3g} checkpoints per quench",
            f"use at most {MAX_POINTS} (a larger md.checkpoint_every)",
        )
    if q["snapshot_replicas"] > q["replicas"]:
        raise SpecError("quench.snapshot_replicas", "exceeds quench.replicas", "use at most `replicas`")
    for T in q["snapshot_temperatures"]:
        if not q["T_glass"] <= T <= q["T_start"]:
            raise SpecError(
                "quench.snapshot_temperatures",
                f"{T} is outside [quench.T_glass, quench.T_start]",
                "keep snapshot temperatures within the cooling range",
            )
    g = d["dataset"]["grid"]
    if g ** s["dim"] > MAX_COUNT:
        raise SpecError(
            "dataset.grid",
            f"an image of grid^system.dim = {g}^{s['dim']} pixels is too large",
            f"use at most {MAX_COUNT} pixels per image",
        )
    sigma_ii = max(s["sigma"][i][i] for i in range(n_sp))
    for key, length in (
        ("dataset.kernel_cutoff", d["dataset"]["kernel_cutoff"] * sigma_ii),
        ("indicators.rdf_rmax", d["indicators"]["rdf_rmax"]),
        ("analyze.correlation_rmax", d["analyze"]["correlation_rmax"]),
        *((f"analyze.xi.{k}", v) for k, v in fixed_xi(d["analyze"]).items()),
        ("analyze.xi_grid", max(d["analyze"]["xi_grid"])),
    ):
        if not length <= 2 * L:  # pair searches tile the box up to this length
            raise SpecError(
                key,
                f"length {length:.3g} exceeds twice the box length {L:.3g}",
                "keep lengths within the box (beyond it they only see periodic images)",
            )
    m = d["model"]
    for key in ("channels", "kernel_sizes"):
        if len(m[key]) != 3:
            raise SpecError(f"model.{key}", "the paper's CNN has exactly three conv layers", f"give three {key}")
    if any(k % 2 == 0 or not 1 <= k <= g for k in m["kernel_sizes"]):
        raise SpecError(
            "model.kernel_sizes",
            f"must be odd and at most dataset.grid = {g} (same-size circular padding)",
            "e.g. [5, 3, 3]",
        )
    if any(not 1 <= c <= MAX_LAYER for c in m["channels"]):
        raise SpecError("model.channels", f"must be in [1, {MAX_LAYER}]", "e.g. [16, 32, 32]")
    weights = m["channels"][-1] * g ** s["dim"] * m["hidden"]
    if weights > MAX_COUNT:
        raise SpecError(
            "model.hidden",
            f"the first fully connected layer (model.channels[-1] x dataset.grid^dim x "
            f"model.hidden) would hold {weights:.3g} weights",
            f"keep it at most {MAX_COUNT} (8 GB)",
        )
    if not 0 <= m["dropout"] < 1:
        raise SpecError("model.dropout", "must be in [0, 1)", "paper: 0.5")
    p = d["propensity"]
    if p["main_samples"] > p["samples"]:
        raise SpecError(
            "propensity.main_samples",
            f"{p['main_samples']} exceeds propensity.samples = {p['samples']}",
            "use at most `samples` (0: all of them)",
        )
    if p["outputs"] > p["steps"]:
        raise SpecError(
            "propensity.outputs",
            f"{p['outputs']} distinct output steps do not fit in propensity.steps = {p['steps']} steps",
            "use outputs <= steps",
        )
    if p["steps"] // p["checkpoint_every"] > MAX_POINTS:
        raise SpecError(
            "propensity.checkpoint_every",
            f"propensity.steps / propensity.checkpoint_every = "
            f"{p['steps'] // p['checkpoint_every']} checkpoints per run",
            f"use at most {MAX_POINTS}",
        )
    if 0 < p["until_delta"] < max(d["analyze"]["deltas"]):
        raise SpecError(
            "propensity.until_delta",
            f"runs would stop at delta = {p['until_delta']:g}, below the "
            f"largest analyze.deltas = {max(d['analyze']['deltas']):g}",
            "set it to the largest analyze.deltas (or 0: run every run for propensity.steps)",
        )
    if p["temperatures"] == AUTO_TEMPERATURES:
        if not (q["snapshot_replicas"] and q["snapshot_temperatures"]):
            raise SpecError(
                "propensity.temperatures",
                "'auto' places the runs at multiples of the fitted T*, "
                "but this campaign keeps no cooling snapshots for the T* fit",
                "give fixed temperatures, e.g. temperatures = [0.37, 0.55], or set "
                "quench.snapshot_replicas and quench.snapshot_temperatures",
            )
    elif max(p["temperatures"]) > q["T_start"]:
        raise SpecError(
            "propensity.temperatures",
            f"{max(p['temperatures'])} is above quench.T_start",
            "run the isoconfigurational ensembles below the quench's liquid temperature",
        )
    n_test = q["split"][2]
    if any(not 0 <= c < n_test for c in p["configurations"]):
        raise SpecError(
            "propensity.configurations",
            f"indices must be in [0, {n_test}) (test split of quench.split)",
            "name test-split glass configurations by their index in the test split",
        )
    names = d["classes"]["names"]
    if len(names) != 2 or not all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", n) for n in names):
        raise SpecError(
            "classes.names",
            f"{names} must be two names (letters, digits, '_' or '-', starting with a letter)",
            'e.g. names = ["liquid", "glass"] or ["fast", "slow"]',
        )
    for key in ("target_class", "liquid_target_class"):
        if d["gradcam"][key] not in ("", *names):
            raise SpecError(
                f"gradcam.{key}", f"{d['gradcam'][key]!r} is not one of classes.names {names}", f"name one of {names}"
            )
    rates = d["classes"]["cooling_rates"]
    if rates and (len(rates) != 2 or rates[0] == rates[1]):
        raise SpecError(
            "classes.cooling_rates",
            f"{rates} must be [] or two different cooling rates",
            "e.g. cooling_rates = [1.0, 0.02] (class 0 fast, class 1 slow)",
        )
    for rate in rates:
        _check_steps(
            cooling_span({**q, "cooling_rate": rate}, md["dt"]),
            "classes.cooling_rates",
            f"the cooling at {rate:g} ((quench.T_start - quench.T_glass) / rate / md.dt)",
        )
    if q["source"] == "import" and q["snapshot_temperatures"]:
        raise SpecError(
            "quench.snapshot_temperatures",
            "imported configurations have no cooling to take snapshots from (quench.source = 'import')",
            "set snapshot_temperatures = []",
        )
    fit = d["inherent"]["fit_mid_T"]
    if fit and (len(fit) != 2 or fit[0] >= fit[1]):
        raise SpecError(
            "inherent.fit_mid_T", "must be [] or [T_min, T_max] with T_min < T_max", "e.g. fit_mid_T = [0.4, 0.8]"
        )
    from .structure import indicators

    indicators.check(d)


# ---- files, presets and overrides ----------------------------------------------------

PRESETS = ("demo-kam", "demo-abm", "paper-kam", "paper-abm", "demo-ka3d", "ka3d", "demo-kam-cooling")


def preset_text(name: str) -> str:
    """The commented TOML text of a preset."""
    if name not in PRESETS:
        raise UsageError(f"--preset {name!r}: unknown preset; use one of {', '.join(PRESETS)}")
    return resources.files("glassdist.presets").joinpath(f"{name}.toml").read_text()


def parse_override(text: str) -> tuple[str, str, Any]:
    """'section.key=value' -> (section, key, value); the value is parsed as TOML."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise UsageError(f"--set {text}: not of the form section.key=value, e.g. --set quench.replicas=40")
    path, raw = text.split("=", 1)
    section, key = path.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # bare word: a string
    if section not in SCHEMA or key not in SCHEMA[section]:
        close = difflib.get_close_matches(path.strip(), [f"{s}.{k}" for s in SCHEMA for k in SCHEMA[s]], n=1)
        raise SpecError(
            path.strip(),
            "unknown key",
            (f"did you mean '{close[0]}'? " if close else "") + "see docs/campaign.md for the keys",
        )
    return section, key, value


def apply_overrides(text: str, overrides: list[str]) -> str:
    """Rewrite TOML text with `section.key=value` overrides, keeping every comment."""
    for item in overrides:
        section, key, value = parse_override(item)
        line = f"{key} = {toml_value(value)}  # set by --set"
        lines = text.splitlines()
        start = next((i for i, ln in enumerate(lines) if ln.strip() == f"[{section}]"), None)
        if start is None:
            lines += ["", f"[{section}]", line]
        else:
            end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
            pat = re.compile(rf"^\s*{re.escape(key)}\s*=")
            hit = next((i for i in range(start + 1, end) if pat.match(lines[i])), None)
            if hit is None:
                while end > start + 1 and not lines[end - 1].strip():
                    end -= 1
                lines.insert(end, line)
            else:
                lines[hit] = line
        text = "\n".join(lines) + "\n"
    return text


def warnings(spec: Spec) -> list[str]:
    """Allowed values a user should think twice about (printed by `init`): a coarse-graining
    length xi whose cutoff 2 xi exceeds L/2 wraps the periodic box (the fields tend to box averages)."""
    a, half = spec.raw["analyze"], spec.box_length / 2
    lengths = {f"analyze.xi.{k}": v for k, v in fixed_xi(a).items()}
    lengths["analyze.xi_grid"] = max(a["xi_grid"])
    return [
        f"warning: {key} = {xi:g}: the coarse-graining cutoff 2 xi = {2 * xi:g} exceeds L/2 = {half:.3g}, so "
        f"it wraps the periodic box and the fields tend to box averages; keep xi <= {half / 2:.3g}"
        for key, xi in lengths.items()
        if 2 * xi > half
    ]


def file_error(source: str, problem: str, fix: str) -> UsageError:
    """A campaign file that cannot be read as TOML (named as a file, not as a key)."""
    return UsageError(f"{source} {problem}. Fix: {fix}")


def loads(text: str | bytes, source: str = "campaign.toml") -> Spec:
    return Spec(parse_toml(text, source, file_error))


def load(campaign_dir: str | Path) -> Spec:
    """Load and validate ``DIR/campaign.toml``."""
    path = Path(campaign_dir) / "campaign.toml"
    if not path.is_file():
        raise file_error(
            str(path), "does not exist", f"create it with `glassdist init {campaign_dir} --preset demo-kam`"
        )
    return loads(path.read_bytes(), str(path))


def reference_markdown() -> str:
    """docs/campaign.md: every section and key with type, default and help (kept in sync by a test)."""
    out = [
        "# Campaign file reference",
        "",
        "`DIR/campaign.toml` holds the whole experiment. `glassdist init DIR --preset NAME` writes one",
        f"from a preset ({', '.join(PRESETS)}); `--set section.key=value` overrides a key.",
        "Unknown keys, wrong types and impossible values are refused with exit code 2.",
        "This page is generated from `glassdist.spec.SCHEMA` (`python -m glassdist.spec > docs/campaign.md`).",
        "",
    ]
    for section, keys in SCHEMA.items():
        out += [f"## [{section}]", "", *reference_table(keys), ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(reference_markdown())
