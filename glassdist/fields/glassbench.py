"""Correlations in the layout of the GlassBench comparison of machine-learned predictors of glassy
dynamics (Jung et al., roadmap on machine learning glassy dynamics): per output time, the Pearson
and Spearman coefficients between a structural indicator and the dynamic propensity, for each
species and for all particles, with the propensity bare and coarse-grained (eq. 7).

The indicators are the bare ones with the paper's sign convention (1 - X for analyze.one_minus),
so a positive coefficient means "predicts mobility" for every indicator alike; a user compares Γ
with a published predictor at the same time and species.
"""

from __future__ import annotations

import numpy as np

from .analysis import smooth
from .coarse import coarse_grain
from .correlation import pearson, spearman

PROPENSITY = ("bare", "coarse-grained")


def groups(species: list[str]) -> list[str]:
    """Names of the particle groups of the last-but-one axis: each species, then 'all'."""
    return [*species, "all"]


def species_correlations(
    positions: np.ndarray,
    fields: np.ndarray,
    Delta_t: np.ndarray,
    types: np.ndarray,
    n_species: int,
    L,
    xi: float,
    flip,
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson and Spearman, each (A, 2, S + 1, T): indicator a, propensity [bare, coarse-grained at xi],
    group [species 0..S-1, all], output time t.

    positions (N, dim): the configuration at t = 0; fields (N, A): its bare indicators; Delta_t (T, N):
    the propensity at each output time; types (N,) species index; flip: (A,) bools (1 - X).
    NaN where a group has fewer than 3 particles or a field is constant (times before any motion).
    """
    alpha = smooth(positions, fields, L, 0.0, flip)  # (N, A): bare, signed
    Delta = np.asarray(Delta_t, dtype=float).T  # (N, T)
    targets = (Delta, coarse_grain(positions, Delta, L, xi))
    masks = [types == s for s in range(n_species)] + [np.ones(len(types), bool)]
    A, T = alpha.shape[1], Delta.shape[1]
    out = np.full((2, A, 2, len(masks), T), np.nan)
    for g, mask in enumerate(masks):
        if mask.sum() < 3:
            continue
        for p, target in enumerate(targets):
            for t in range(T):
                y = target[mask, t]
                if np.ptp(y) == 0:
                    continue
                for a in range(A):
                    x = alpha[mask, a]
                    if np.ptp(x) > 0:
                        out[:, a, p, g, t] = pearson(x, y), spearman(x, y)
    return out[0], out[1]
