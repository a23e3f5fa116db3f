"""The two-line T* fit of inherent-structure energies E0(T) (supp. II B, C); the minimisation
itself is the MD engine's (glassdist.md.engine).

The glass transition point T* is where two straight lines cross: one fitted to the low-T
regime, where E0(T) is almost constant down to T_G, and one to the mid-T regime, where
E0 falls linearly with T.

Regimes (rule used when the campaign leaves them empty):
- ``low_max`` and ``mid`` given: low = T <= low_max, mid = mid[0] <= T <= mid[1].
- only ``mid`` given: low = every T < mid[0].
- only ``low_max`` given: mid = low_max < T <= upper.
- neither: a breakpoint T_b splits the points with T <= upper into low = T <= T_b and
  mid = T > T_b; T_b is the split (at least 3 points each side) with the least summed
  squared residual of the two line fits (segmented least squares) among the splits that
  make a kink: mid line steeper than the low line, crossing between the two regimes.
``upper`` is the top of the linear regime: the stage passes ``inherent.fit_upper_T``, by default
T_L, which the paper chose as the temperature where E0's decrease becomes linear (supp. II B).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


MIN_POINTS = 3


class FitError(ValueError):
    """The temperatures cannot support the fit; ``key`` names the campaign key that chose them."""

    def __init__(self, key: str, problem: str, fix: str):
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"{key}: {problem}")


@dataclass(frozen=True)
class TStarFit:
    """T* = crossing of the low-T line E0 = low[0] T + low[1] and the mid-T line ``mid``.

    low_mask, mid_mask: (n,) points of each regime; residuals: (n,) E0 - line of the point's
    regime (NaN for points in neither). ``ok`` False: the lines make no kink (``reason`` says
    why, with the slopes), and T* is not a glass transition point: nothing may use it.
    """

    t_star: float
    low: tuple[float, float]
    mid: tuple[float, float]
    low_mask: np.ndarray
    mid_mask: np.ndarray
    residuals: np.ndarray
    ok: bool = True
    reason: str = ""


def _line(T, E):
    coef, res, *_ = np.polyfit(T, E, 1, full=True)
    return (float(coef[0]), float(coef[1])), float(res[0]) if len(res) else 0.0


def kink_problem(T_low: np.ndarray, T_mid: np.ndarray, low: tuple, mid: tuple) -> str:
    """Why the lines ``low`` and ``mid`` (slope, intercept) fitted to the temperatures ``T_low``
    and ``T_mid`` make no kink ("" when they do): the mid-T line must rise with T, be steeper
    than the low-T line, and cross it between the last low-T and the first mid-T point."""
    slopes = f"low-T slope {low[0]:.4g}, mid-T slope {mid[0]:.4g}"
    if mid[0] <= 0:
        return f"E0 does not rise with T in the mid-T regime ({slopes})"
    if mid[0] <= low[0]:
        return f"the mid-T line is not steeper than the low-T line ({slopes})"
    crossing = (mid[1] - low[1]) / (low[0] - mid[0])
    if not T_low.max() <= crossing <= T_mid.min():
        return (
            f"the lines cross at T = {crossing:.4g}, outside [{T_low.max():g}, {T_mid.min():g}] between "
            f"the low-T and the mid-T points ({slopes})"
        )
    return ""


def _best_split(T, E, upper):
    """low/mid masks by segmented least squares over the points with T <= upper, among the
    splits that describe a kink (:func:`kink_problem`); least residual overall if none does
    (the fit then reports the failure)."""
    order = np.argsort(T)
    usable = order[T[order] <= upper]
    if len(usable) < 2 * MIN_POINTS:
        raise FitError(
            "quench.snapshot_temperatures",
            f"{len(usable)} cooling temperatures <= {upper:g}; the automatic T* fit needs at least {2 * MIN_POINTS}",
            "add snapshot temperatures or set inherent.fit_mid_T",
        )
    candidates = []
    for k in range(MIN_POINTS, len(usable) - MIN_POINTS + 1):
        low, mid = usable[:k], usable[k:]
        (a, sse_low), (b, sse_mid) = _line(T[low], E[low]), _line(T[mid], E[mid])
        candidates.append((bool(kink_problem(T[low], T[mid], a, b)), sse_low + sse_mid, k))
    _, _, k = min(candidates)
    low_mask, mid_mask = np.zeros(len(T), bool), np.zeros(len(T), bool)
    low_mask[usable[:k]], mid_mask[usable[k:]] = True, True
    return low_mask, mid_mask


def fit_t_star(
    T: np.ndarray, E0: np.ndarray, low_max: float = 0.0, mid: tuple | list = (), upper: float | None = None
) -> TStarFit:
    """Two-line fit of E0(T) (both (n,)); ``low_max`` = 0 and empty ``mid`` mean automatic
    (module docstring); ``upper`` (default: max T) bounds the automatic mid regime. A fit
    without a kink comes back with ``ok`` False and the reason."""
    T, E0 = np.asarray(T, dtype=float), np.asarray(E0, dtype=float)
    upper = float(T.max()) if upper is None else upper
    if low_max and len(mid):
        low_mask, mid_mask = T <= low_max, (T >= mid[0]) & (T <= mid[1])
    elif len(mid):
        low_mask, mid_mask = T < mid[0], (T >= mid[0]) & (T <= mid[1])
    elif low_max:
        low_mask, mid_mask = T <= low_max, (T > low_max) & (T <= upper)
    else:
        low_mask, mid_mask = _best_split(T, E0, upper)
    for name, mask in (("inherent.fit_low_T_max", low_mask), ("inherent.fit_mid_T", mid_mask)):
        if mask.sum() < 2:
            raise FitError(
                name,
                f"selects {int(mask.sum())} temperature(s); a line needs 2 or more",
                "widen the regime or add snapshot temperatures",
            )
    low, _ = _line(T[low_mask], E0[low_mask])
    mid_line, _ = _line(T[mid_mask], E0[mid_mask])
    if np.isclose(low[0], mid_line[0]):
        raise FitError(
            "inherent.fit_mid_T",
            "the low-T and mid-T lines of the T* fit are parallel: no crossing",
            "set inherent.fit_low_T_max and inherent.fit_mid_T by hand",
        )
    t_star = (mid_line[1] - low[1]) / (low[0] - mid_line[0])
    residuals = np.full(len(T), np.nan)
    residuals[low_mask] = E0[low_mask] - np.polyval(low, T[low_mask])
    residuals[mid_mask] = E0[mid_mask] - np.polyval(mid_line, T[mid_mask])
    reason = kink_problem(T[low_mask], T[mid_mask], low, mid_line)
    return TStarFit(float(t_star), low, mid_line, low_mask, mid_mask, residuals, ok=not reason, reason=reason)


def t_star_error(T: np.ndarray, E0: np.ndarray, fit: TStarFit) -> float:
    """Standard error of T* from the scatter of E0 (n,) about the two lines: the standard errors
    of both lines' values at T* (OLS, residual variance SSE / (n - 2)) added in quadrature, over
    the difference of their slopes. NaN when a regime has only 2 points (no scatter to judge)."""
    variances = []
    for mask in (fit.low_mask, fit.mid_mask):
        t, e = np.asarray(T, dtype=float)[mask], np.asarray(E0, dtype=float)[mask]
        if len(t) <= 2:
            return float("nan")
        X = np.stack([t, np.ones_like(t)], axis=1)  # (n, 2): E = a T + b
        residual = e - X @ np.linalg.lstsq(X, e, rcond=None)[0]
        cov = residual @ residual / (len(t) - 2) * np.linalg.inv(X.T @ X)  # (2, 2) of (a, b)
        at = np.array([fit.t_star, 1.0])
        variances.append(at @ cov @ at)
    return float(np.sqrt(sum(variances)) / abs(fit.low[0] - fit.mid[0]))
