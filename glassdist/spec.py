"""The campaign file: schema, presets, validation, overrides and hashing.

A campaign file (``DIR/campaign.toml``) is the whole experiment. It is validated on load
against :data:`SCHEMA`; every problem is reported as a :class:`~glassdist.errors.SpecError`
naming the key and the fix. The loaded :class:`Spec` gives attribute access
(``spec.system.n_particles``) and derived quantities (box length, type counts, ...).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import SpecError

REQUIRED = object()


@dataclass(frozen=True)
class Key:
    """One campaign-file key: its type, default, a value check and a one-line help."""

    type: type | tuple
    default: Any = REQUIRED
    help: str = ""
    check: Callable[[Any], str | None] | None = None


def positive(v):
    return None if v > 0 else "must be > 0"


def non_negative(v):
    return None if v >= 0 else "must be >= 0"


def at_least(n):
    return lambda v: None if v >= n else f"must be >= {n}"


def one_of(*options):
    return lambda v: None if v in options else f"must be one of {', '.join(map(repr, options))}"


def all_positive(v):
    return None if all(x > 0 for x in v) else "every entry must be > 0"


def all_non_negative(v):
    return None if all(x >= 0 for x in v) else "every entry must be >= 0"


def _number_list(v):
    return isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


def _matrix(v):
    return isinstance(v, list) and all(_number_list(row) for row in v)


NUM = (int, float)
LIST = "list of numbers"
MATRIX = "matrix of numbers"
STRLIST = "list of strings"
INTLIST = "list of integers"

SCHEMA: dict[str, dict[str, Key]] = {
    "campaign": {
        "name": Key(str, help="campaign name (free text)"),
        "seed": Key(int, help="master seed; every task seed derives from it and the task index",
                    check=non_negative),
        "description": Key(str, "", help="what this campaign is for"),
    },
    "system": {
        "dim": Key(int, help="spatial dimension (2 or 3)", check=one_of(2, 3)),
        "n_particles": Key(int, help="total number of particles N", check=at_least(4)),
        "density": Key(NUM, help="number density rho = N / L^dim", check=positive),
        "species": Key(STRLIST, help="species names, one per LAMMPS atom type"),
        "counts": Key(INTLIST, help="number of particles of each species (sum = n_particles)"),
        "masses": Key(LIST, help="mass of each species", check=all_positive),
        "sigma": Key(MATRIX, help="LJ sigma_ij, symmetric species x species matrix"),
        "epsilon": Key(MATRIX, help="LJ epsilon_ij, symmetric species x species matrix"),
        "cutoff_factor": Key(NUM, help="r_c,ij = cutoff_factor * sigma_ij (eq. 1)", check=positive),
        "contact_sigma": Key(MATRIX, [], help="'sum of radii' for the Tong-Tanaka ideal angle; "
                             "empty = use sigma (KAM presets: additive 0.94)"),
    },
    "md": {
        "dt": Key(NUM, 0.005, help="MD time step (LJ time units)", check=positive),
        "thermostat_damping": Key(NUM, 0.5, help="Nose-Hoover damping time (LJ time units; 100 dt)",
                                  check=positive),
        "neighbor_skin": Key(NUM, 0.3, help="LAMMPS neighbour-list skin", check=positive),
        "ranks_per_task": Key(int, 1, help="MPI ranks per LAMMPS task (use > 1 only for large N)",
                              check=at_least(1)),
        "max_attempts": Key(int, 3, help="attempts per task before it is left failed",
                            check=at_least(1)),
        "lammps_suffix": Key(str, "", help="LAMMPS accelerator suffix ('' or 'omp')",
                             check=one_of("", "omp")),
    },
    "quench": {
        "replicas": Key(int, help="independent quenches R", check=at_least(2)),
        "split": Key(INTLIST, help="train/val/test replica counts (sum = replicas)"),
        "T_start": Key(NUM, 4.0, help="equilibration temperature before cooling", check=positive),
        "equilibration_time": Key(NUM, 100.0, help="NVT time at T_start (LJ units)", check=non_negative),
        "cooling_rate": Key(NUM, help="|dT/dt| of the linear quench", check=positive),
        "T_liquid": Key(NUM, help="T_L: configuration saved as class 'liquid'", check=positive),
        "T_glass": Key(NUM, help="T_G: configuration saved as class 'glass'", check=positive),
        "thermo_points": Key(int, 100, help="T and potential energy recorded at this many evenly "
                             "spaced temperatures along the cooling (Fig. S9a)", check=at_least(2)),
        "snapshot_replicas": Key(int, 4, help="the first k replicas also keep cooling snapshots "
                                 "(for E0(T))", check=non_negative),
        "snapshot_temperatures": Key(LIST, [], help="temperatures of the cooling snapshots",
                                     check=all_positive),
    },
    "dataset": {
        "grid": Key(int, 64, help="image size: grid points per box side (paper: not given)",
                    check=at_least(4)),
        "kernel_cutoff": Key(NUM, 2.5, help="Gaussian kernel cutoff in units of sigma_ii",
                             check=positive),
        "normalise": Key(str, "standard", help="CNN input scaling (paper: 'to [0, 1]', ambiguous): "
                         "'image' = per-image min-max (drops the fluctuation amplitude that tells glass "
                         "from liquid), 'dataset' = min-max of the training images, 'standard' = "
                         "(x - mean) / std of the training images (trains fastest)",
                         check=one_of("image", "dataset", "standard")),
    },
    "model": {
        "channels": Key(INTLIST, [16, 32, 32], help="filters of the three conv layers"),
        "kernel_sizes": Key(INTLIST, [5, 3, 3], help="odd kernel sizes of the three conv layers"),
        "hidden": Key(int, 64, help="width of the first fully connected layer", check=at_least(1)),
        "dropout": Key(NUM, 0.5, help="dropout ratio before the output layer"),
        "head": Key(str, "dense", help="'dense' (the paper's: flatten the last feature maps; the first "
                    "fully connected layer has channels x grid^dim inputs) or 'gap' (global average "
                    "pooling of each feature map: the same network for every N, so a model trained "
                    "at one N explains configurations at another)", check=one_of("dense", "gap")),
    },
    "train": {
        "epochs": Key(int, 30, help="training epochs (paper: 250)", check=at_least(1)),
        "batch_size": Key(int, 8, help="global batch size (paper: 5)", check=at_least(1)),
        "lr": Key(NUM, 3e-4, help="Adam learning rate (paper: 1e-6)", check=positive),
        "augment": Key(bool, True, help="random periodic translations of each training image "
                       "(exact symmetry of a periodic system; paper: none)"),
        "weight_decay": Key(NUM, 1e-4, help="L2 regularisation strength", check=non_negative),
        "seed": Key(int, 0, help="training seed (weights init, shuffling, dropout, translations)",
                    check=non_negative),
    },
    "gradcam": {
        "target_class": Key(str, "glass", help="class whose score y^C is explained (paper: glass)",
                            check=one_of("glass", "liquid")),
        "liquid_target_class": Key(str, "glass", help="class explained on liquid configurations "
                                   "(the paper does not say; default glass)",
                                   check=one_of("glass", "liquid")),
    },
    "indicators": {
        "rdf_rmax": Key(NUM, 5.0, help="g(r) range", check=positive),
        "rdf_bins": Key(int, 200, help="g(r) bins", check=at_least(2)),
    },
    "inherent": {
        "min_style": Key(str, "fire", help="LAMMPS minimiser", check=one_of("fire", "cg")),
        "etol": Key(NUM, 0.0, help="energy tolerance of the minimisation", check=non_negative),
        "ftol": Key(NUM, 1e-8, help="force tolerance of the minimisation", check=non_negative),
        "max_iterations": Key(int, 100000, help="minimiser iterations", check=at_least(1)),
        "fit_low_T_max": Key(NUM, 0.0, help="low-T line of the T* fit uses T <= this (0: auto)",
                             check=non_negative),
        "fit_mid_T": Key(LIST, [], help="[T_min, T_max] of the linear mid-T regime (empty: auto)"),
        "fit_upper_T": Key(NUM, 0.0, help="top of the automatic mid-T regime (0: quench.T_liquid, the "
                           "paper's choice)", check=non_negative),
    },
    "propensity": {
        "configurations": Key(INTLIST, [0], help="test-split glass configurations (index within "
                              "the test split) that get isoconfigurational ensembles"),
        "temperatures": Key(LIST, help="run temperatures (paper: T* to 1.5 T*)", check=all_positive),
        "samples": Key(int, 30, help="N_s runs per configuration and temperature", check=at_least(2)),
        "steps": Key(int, help="MD steps per run (paper: up to 3e8)", check=at_least(1)),
        "outputs": Key(int, 40, help="log-spaced output times per run", check=at_least(2)),
        "checkpoint_every": Key(int, 1_000_000, help="steps between restart checkpoints; also the "
                                "longest wait before a SIGTERM checkpoints and stops a run",
                                check=at_least(1)),
    },
    "analyze": {
        "deltas": Key(LIST, [0.3, 1.0, 3.0], help="delta values of Figs. 1-3, S3", check=all_positive),
        "xi_grid": Key(LIST, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0],
                       help="coarse-graining lengths scanned for xi_alpha (Table S1)",
                       check=all_non_negative),
        "xi_structure": Key(NUM, 8.0, help="xi_alpha of Figs. 1, 2, 5, 7 (KAM 8, ABM 5)",
                            check=non_negative),
        "xi_violin": Key(NUM, 4.0, help="xi_alpha of Fig. 6 (KAM 4, ABM 3)", check=non_negative),
        "xi_propensity": Key(NUM, 4.0, help="fixed xi_Delta of Figs. 5, 7 (KAM 4, ABM 3)",
                             check=non_negative),
        "one_minus": Key(STRLIST, ["gradcam", "ttop"],
                         help="indicators shown as 1 - X (KAM: gradcam, ttop; ABM: gradcam, voronoi)"),
        "correlation_bins": Key(int, 60, help="bins of C_X(r)", check=at_least(2)),
        "correlation_rmax": Key(NUM, 10.0, help="range of C_X(r)", check=positive),
    },
    "dask": {
        "address": Key(str, "", help="existing scheduler address ('' = start a LocalCluster)"),
        "workers": Key(int, 2, help="LocalCluster workers", check=at_least(1)),
        "threads_per_worker": Key(int, 1, help="threads per LocalCluster worker", check=at_least(1)),
    },
}


class Section(dict):
    """A validated campaign section with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _type_ok(kind, value) -> bool:
    if kind == LIST:
        return _number_list(value)
    if kind == MATRIX:
        return _matrix(value)
    if kind == STRLIST:
        return isinstance(value, list) and all(isinstance(x, str) for x in value)
    if kind == INTLIST:
        return isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
    if kind is NUM:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _type_name(kind) -> str:
    if isinstance(kind, str):
        return kind
    if kind is NUM:
        return "number"
    return {int: "integer", str: "string"}.get(kind, getattr(kind, "__name__", str(kind)))


class Spec:
    """A validated campaign: ``spec.system.density``, derived geometry and hashes."""

    def __init__(self, data: dict):
        self.raw = validate(data)
        for section, values in self.raw.items():
            setattr(self, section, Section(values))

    # ---- derived quantities -------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.system.dim

    @property
    def box_length(self) -> float:
        """L = (N / rho)^(1/dim)."""
        return (self.system.n_particles / self.system.density) ** (1.0 / self.dim)

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
    def split_names(self) -> tuple[str, str, str]:
        return ("train", "val", "test")

    def split_of(self) -> np.ndarray:
        """Split index (0 train, 1 val, 2 test) of each replica, shape (R,)."""
        return np.repeat(np.arange(3), self.quench.split).astype(np.int8)

    def section_hash(self, *sections: str) -> str:
        """Hash of the named sections (plus the campaign seed): what a stage's results depend on."""
        payload = {s: self.raw[s] for s in sections}
        payload["seed"] = self.raw["campaign"]["seed"]
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def hash(self) -> str:
        return self.section_hash(*SCHEMA)


def validate(data: dict) -> dict:
    """Check types, values and cross-key consistency; fill defaults. Returns a new dict."""
    if not isinstance(data, dict):
        raise SpecError("<file>", "is not a TOML table", "start from `glassdist init DIR --preset demo-kam`")
    out: dict[str, dict] = {}
    for section in data:
        if section not in SCHEMA:
            raise SpecError(section, "unknown section",
                            f"remove it; known sections: {', '.join(SCHEMA)}")
    for section, keys in SCHEMA.items():
        given = data.get(section, {})
        if not isinstance(given, dict):
            raise SpecError(section, "must be a table", f"write it as [{section}]")
        for key in given:
            if key not in keys:
                close = [k for k in keys if k.split("_")[0] == key.split("_")[0]]
                hint = f"did you mean '{section}.{close[0]}'?" if close else \
                    f"known keys in [{section}]: {', '.join(keys)}"
                raise SpecError(f"{section}.{key}", "unknown key", f"remove it; {hint}")
        sec = {}
        for key, spec in keys.items():
            name = f"{section}.{key}"
            if key in given:
                value = given[key]
            elif spec.default is REQUIRED:
                raise SpecError(name, "is missing", f"add '{key} = ...' under [{section}] ({spec.help})")
            else:
                value = copy.deepcopy(spec.default)
            if not _type_ok(spec.type, value):
                raise SpecError(name, f"must be a {_type_name(spec.type)}, got {value!r}",
                                f"set it to a {_type_name(spec.type)} ({spec.help})")
            if spec.type is NUM:
                value = float(value)
            if spec.check and (msg := spec.check(value)):
                raise SpecError(name, f"{msg}, got {value!r}", f"give a valid value ({spec.help})")
            sec[key] = value
        out[section] = sec
    _check_consistency(out)
    return out


def _check_consistency(d: dict) -> None:
    s, q = d["system"], d["quench"]
    n_sp = len(s["species"])
    if n_sp < 1 or len(set(s["species"])) != n_sp:
        raise SpecError("system.species", "must list distinct species names", 'e.g. species = ["A", "B"]')
    for key in ("counts", "masses"):
        if len(s[key]) != n_sp:
            raise SpecError(f"system.{key}", f"has {len(s[key])} entries for {n_sp} species",
                            "give one entry per species")
    if sum(s["counts"]) != s["n_particles"] or min(s["counts"]) < 0:
        raise SpecError("system.counts", f"sum {sum(s['counts'])} != n_particles {s['n_particles']}",
                        "make the non-negative counts add up to n_particles")
    for key in ("sigma", "epsilon") + (("contact_sigma",) if s["contact_sigma"] else ()):
        m = np.asarray(s[key], dtype=float) if all(len(r) == n_sp for r in s[key]) else None
        if m is None or m.shape != (n_sp, n_sp):
            raise SpecError(f"system.{key}", f"must be a {n_sp} x {n_sp} matrix",
                            "give one row per species, one column per species")
        if not np.allclose(m, m.T):
            raise SpecError(f"system.{key}", "is not symmetric", "make entry [i][j] equal entry [j][i]")
        if (m <= 0).any():
            raise SpecError(f"system.{key}", "has entries <= 0", "use positive values")
    L = (s["n_particles"] / s["density"]) ** (1 / s["dim"])
    rc = s["cutoff_factor"] * max(max(r) for r in s["sigma"])
    if L < 2 * rc:
        raise SpecError("system.n_particles", f"box length {L:.3g} < 2 x largest cutoff {rc:.3g}",
                        "use more particles or a lower cutoff_factor")
    if len(q["split"]) != 3 or sum(q["split"]) != q["replicas"] or min(q["split"]) < 1:
        raise SpecError("quench.split", f"{q['split']} must be three positive counts summing to "
                        f"replicas = {q['replicas']}", "e.g. split = [4000, 400, 600] for 5000")
    if not q["T_glass"] < q["T_liquid"] < q["T_start"]:
        raise SpecError("quench.T_liquid", "need T_glass < T_liquid < T_start",
                        "order the three temperatures")
    if q["snapshot_replicas"] > q["replicas"]:
        raise SpecError("quench.snapshot_replicas", "exceeds replicas", "use at most `replicas`")
    for T in q["snapshot_temperatures"]:
        if not q["T_glass"] <= T <= q["T_start"]:
            raise SpecError("quench.snapshot_temperatures", f"{T} is outside [T_glass, T_start]",
                            "keep snapshot temperatures within the cooling range")
    m = d["model"]
    if len(m["channels"]) != 3 or len(m["kernel_sizes"]) != 3:
        raise SpecError("model.channels", "the paper's CNN has exactly three conv layers",
                        "give three channels and three kernel_sizes")
    if any(k % 2 == 0 or k < 1 for k in m["kernel_sizes"]):
        raise SpecError("model.kernel_sizes", "must be odd (same-size circular padding)", "e.g. [5, 3, 3]")
    if any(c < 1 for c in m["channels"]):
        raise SpecError("model.channels", "must be >= 1", "e.g. [16, 32, 32]")
    if not 0 <= m["dropout"] < 1:
        raise SpecError("model.dropout", "must be in [0, 1)", "paper: 0.5")
    p = d["propensity"]
    if p["outputs"] > p["steps"]:
        raise SpecError("propensity.outputs", f"{p['outputs']} distinct output steps do not fit in "
                        f"{p['steps']} steps", "use outputs <= steps")
    n_test = q["split"][2]
    if any(not 0 <= c < n_test for c in p["configurations"]):
        raise SpecError("propensity.configurations", f"indices must be in [0, {n_test}) (test split)",
                        "name test-split glass configurations by their index in the test split")
    fit = d["inherent"]["fit_mid_T"]
    if fit and (len(fit) != 2 or fit[0] >= fit[1]):
        raise SpecError("inherent.fit_mid_T", "must be [] or [T_min, T_max] with T_min < T_max",
                        "e.g. fit_mid_T = [0.4, 0.8]")
    for name in d["analyze"]["one_minus"]:
        if name not in ("gradcam", "voronoi", "ttop"):
            raise SpecError("analyze.one_minus", f"unknown indicator {name!r}",
                            "use names from gradcam, voronoi, ttop")


# ---- files, presets and overrides ----------------------------------------------------

PRESETS = ("demo-kam", "demo-abm", "paper-kam", "paper-abm", "demo-ka3d", "ka3d")


def preset_text(name: str) -> str:
    """The commented TOML text of a preset."""
    if name not in PRESETS:
        raise SpecError("--preset", f"unknown preset {name!r}", f"use one of {', '.join(PRESETS)}")
    return resources.files("glassdist.presets").joinpath(f"{name}.toml").read_text()


def parse_override(text: str) -> tuple[str, str, Any]:
    """'section.key=value' -> (section, key, value); the value is parsed as TOML."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise SpecError(text, "is not of the form section.key=value", "e.g. --set quench.replicas=40")
    path, raw = text.split("=", 1)
    section, key = path.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # bare word: a string
    if section not in SCHEMA or key not in SCHEMA[section]:
        raise SpecError(path.strip(), "unknown key", "see docs/campaign.md for the keys")
    return section, key, value


def apply_overrides(text: str, overrides: list[str]) -> str:
    """Rewrite TOML text with `section.key=value` overrides, keeping every comment."""
    for item in overrides:
        section, key, value = parse_override(item)
        line = f"{key} = {_toml_value(value)}  # set by --set"
        lines = text.splitlines()
        start = next((i for i, ln in enumerate(lines) if ln.strip() == f"[{section}]"), None)
        if start is None:
            lines += ["", f"[{section}]", line]
        else:
            end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
                       len(lines))
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


def _toml_value(value) -> str:
    """A value as one line of TOML (arrays inline, so line-based overrides stay valid)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def loads(text: str, source: str = "campaign.toml") -> Spec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, f"is not valid TOML ({exc})", "fix the syntax at the line given") from None
    return Spec(data)


def load(campaign_dir: str | Path) -> Spec:
    """Load and validate ``DIR/campaign.toml``."""
    path = Path(campaign_dir) / "campaign.toml"
    if not path.is_file():
        raise SpecError(str(path), "does not exist",
                        f"create it with `glassdist init {campaign_dir} --preset demo-kam`")
    return loads(path.read_text(), str(path))



def reference_markdown() -> str:
    """docs/campaign.md: every section and key with type, default and help (kept in sync by a test)."""
    out = ["# Campaign file reference", "",
           "`DIR/campaign.toml` holds the whole experiment. `glassdist init DIR --preset NAME` writes one",
           f"from a preset ({', '.join(PRESETS)}); `--set section.key=value` overrides a key.",
           "Unknown keys, wrong types and impossible values are refused with exit code 2.",
           "This page is generated from `glassdist.spec.SCHEMA` (`python -m glassdist.spec > docs/campaign.md`).", ""]
    for section, keys in SCHEMA.items():
        out += [f"## [{section}]", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for key, k in keys.items():
            default = "required" if k.default is REQUIRED else f"`{_toml_value(k.default)}`"
            out.append(f"| `{key}` | {_type_name(k.type)} | {default} | {k.help} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(reference_markdown())
