"""The paper's numbers (Oyama, Koyama, Kawasaki; main text and supplement), shown beside ours.

Keys: system "KAM" or "ABM"; indicators "gradcam" (Gamma), "voronoi" (Upsilon), "ttop" (Theta);
classes "glass" (G), "liquid" (L). A campaign is compared with a paper system only when its
interaction parameters, composition and density are that system's (:func:`match_system`).
"""

from __future__ import annotations

import numpy as np

#: Table I (sigma, epsilon as species x species matrices; composition as number fractions)
TABLE_I = {
    "KAM": {
        "masses": [1.0, 1.0],
        "sigma": [[1.0, 0.8], [0.8, 0.88]],
        "epsilon": [[1.0, 1.5], [1.5, 0.5]],
        "counts": [1300, 700],
        "density": 1.2,
        "cutoff_factor": 2.5,
    },
    "ABM": {
        "masses": [1.0, 1.0],
        "sigma": [[5 / 6, 1.0], [1.0, 7 / 6]],
        "epsilon": [[1.0, 1.0], [1.0, 1.0]],
        "counts": [1000, 1000],
        "density": 1.09,
        "cutoff_factor": 3.0,
    },
}

#: The indicators of every per-indicator table of the paper, in its column order
INDICATORS = ("gradcam", "voronoi", "ttop")

#: Paper scale (Sec. II B, III E, Supp. I C)
SCALE = {
    "N": 2000,
    "replicas": 5000,
    "split": [4000, 400, 600],
    "samples": 100,
    "main_samples": 30,
    "steps": 300_000_000,
    "epochs": 250,
}

#: Table II: test accuracy per class
TABLE_II = {"KAM": {"glass": 1.00, "liquid": 0.998}, "ABM": {"glass": 1.00, "liquid": 1.00}}

#: Sec. II: the liquid class's temperature
PAPER_T_LIQUID = {"KAM": 0.8, "ABM": 2.0}

#: Sec. IV C, supp. II C: empirical glass transition point
T_STAR = {"KAM": 0.37, "ABM": 1.0}

#: Table III: coarse-graining lengths
TABLE_III = {
    "KAM": {"xi_Delta": {0.3: 3.0, 1.0: 4.0, 3.0: 5.0}, "xi_propensity": 4.0, "xi_structure": 8.0, "xi_violin": 4.0},
    "ABM": {"xi_Delta": {0.3: 3.0, 1.0: 3.0, 3.0: 2.0}, "xi_propensity": 3.0, "xi_structure": 5.0, "xi_violin": 3.0},
}

#: Table IV (KAM only; columns as glassdist.fields.analysis.ensemble_columns), at delta = 1
#: (glassdist.fields.analysis.PAPER_DELTA)
TABLE_IV = {"KAM": [0.769, 0.958, 0.820, 0.878, 0.985]}

#: Table V: (C_max, delta*) of C_{alpha,Delta}
TABLE_V = {
    "KAM": {"gradcam": (0.925, 1.167), "voronoi": (0.966, 2.860), "ttop": (0.885, 1.402)},
    "ABM": {"gradcam": (0.712, 2.620), "voronoi": (0.858, 2.620), "ttop": (0.790, 0.148)},
}

#: Table S1: (C_max, delta*, xi*) with ("cg") and without ("bare") coarse-graining of Delta
TABLE_S1 = {
    "KAM": {
        "cg": {"gradcam": (0.907, 1.0, 6.0), "voronoi": (0.971, 3.0, 8.0), "ttop": (0.848, 3.0, 8.0)},
        "bare": {"gradcam": (0.746, 1.0, 4.0), "voronoi": (0.784, 1.0, 4.0), "ttop": (0.608, 3.0, 6.0)},
    },
    "ABM": {
        "cg": {"gradcam": (0.683, 3.0, 4.0), "voronoi": (0.825, 3.0, 3.0), "ttop": (0.749, 0.3, 5.0)},
        "bare": {"gradcam": (0.546, 3.0, 0.0), "voronoi": (0.730, 3.0, 1.0), "ttop": (0.615, 0.3, 4.0)},
    },
}

#: Table S2: per class, per pair (Gamma-Upsilon, Gamma-Theta, Theta-Upsilon):
#: (Pearson mean, std, Spearman mean, std)
TABLE_S2 = {
    "KAM": {
        "glass": [(-0.828, 0.055, -0.816, 0.061), (0.426, 0.143, 0.407, 0.143), (-0.597, 0.111, -0.580, 0.116)],
        "liquid": [(0.857, 0.047, 0.847, 0.052), (-0.014, 0.179, -0.016, 0.177), (-0.201, 0.170, -0.192, 0.169)],
    },
    "ABM": {
        "glass": [(0.585, 0.094, 0.539, 0.093), (-0.378, 0.121, -0.311, 0.111), (-0.327, 0.129, -0.256, 0.116)],
        "liquid": [(0.036, 0.180, 0.038, 0.178), (0.292, 0.110, 0.278, 0.109), (-0.225, 0.125, -0.196, 0.118)],
    },
}

#: Fig. 8: C_Gamma(r) reaches zero at r_Gamma ~ 3-4 (both systems)
R_GAMMA = (3.0, 4.0)

#: Figure numbers that differ between the systems
FIGURE_NUMBERS = {
    "KAM": {"maps": "1", "propensity_maps": "S4", "indicator_maps": "S6"},
    "ABM": {"maps": "2", "propensity_maps": "S5", "indicator_maps": "S7"},
}


def match_system(spec) -> str | None:
    """'KAM' or 'ABM' when the campaign's system is the paper's (any N), else None."""
    s = spec.system
    for name, ref in TABLE_I.items():
        if (
            len(s.counts) == len(ref["counts"])
            and np.allclose(s.masses, ref["masses"])
            and np.allclose(s.sigma, ref["sigma"])
            and np.allclose(s.epsilon, ref["epsilon"])
            and np.isclose(s.density, ref["density"])
            and np.isclose(s.cutoff_factor, ref["cutoff_factor"])
            and np.allclose(np.divide(s.counts, sum(s.counts)), np.divide(ref["counts"], sum(ref["counts"])), atol=0.01)
        ):
            return name
    return None


#: The paper's protocol, as the departure table (glassdist.report.departures) compares it; None: the
#: paper does not give the value. Per-system values are dicts by system.
PROTOCOL = {
    "n_particles": 2000,
    "replicas": 5000,
    "split": [4000, 400, 600],
    "cooling_rate": 8.33e-5,
    "T_start": 4.0,
    "equilibration_time": None,
    "T_liquid": PAPER_T_LIQUID,
    "T_glass": 0.05,
    "grid": None,
    "normalise": "image",
    "hidden_activation": "none",
    "head": "dense",
    "dropout": 0.5,
    "lr": 1e-6,
    "batch_size": 5,
    "augment": False,
    "epochs": 250,
    "ensemble": 1,
    "samples": 100,
    "main_samples": 30,
    "steps": 300_000_000,
    "delta_reached": 3.0,
    "t_star": T_STAR,
    "t_star_multiples": "T* to ~1.5 T*",
    "xi": "rule",
    "deltas": [0.3, 1.0, 3.0],
}

#: Where docs/validation.md measured that a departure moves a result
EFFECTS = {
    "T_liquid": "yes: T_L sets the sign of the Γ correlations (docs/validation.md, Summary: T_L = 2.5 gives the "
    "opposite signs)",
    "replicas": "yes: below the paper's training set trainings disagree in the Γ correlations, even in sign "
    "(docs/validation.md, Summary and 'Full campaigns at the paper's N and T_L')",
    "grid": "yes: the grid sets the sign of the Γ correlations (docs/validation.md, 'What the measurements say' 3: "
    "pixel 1.13 gives the opposite signs)",
    "normalise": "yes: 'image' and 'dataset' did not learn at N = 500 (docs/validation.md, Results: b500-image, "
    "b500-dataset)",
    "optimiser": "yes: the paper's lr 1e-6 / batch 5 did not learn with 100 training replicas (docs/validation.md, "
    "Results: b500-grid18-paperopt)",
    "hold": "yes: liquids saved while the thermostat passes T_L are at an effective T ≈ 0.9 for T_L = 0.8 "
    "(docs/validation.md, 'Are the liquids at T_L equilibrated?')",
}
