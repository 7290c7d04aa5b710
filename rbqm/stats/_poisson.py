"""Poisson log-link model of the numerator, scored by deviance residuals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy.special import lambertw

from rbqm.errors import RbqmError
from rbqm.stats._frame import (
    METRIC, Frame, check_number, check_option, check_thresholds, collect_input, long_bounds, same_kind, scatter,
    scorable_arrays,
)

__all__ = ["poisson", "poisson_bounds"]

_TOL = 1e-12
_MAX_ITER = 100


def _deviance_unit(r: np.ndarray) -> np.ndarray:
    """(1 + r) ln(1 + r) - r, the deviance per unit of expected count at y = m (1 + r); 1 at r = -1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = (1.0 + r) * np.log1p(r) - r
    return np.where(r <= -1.0, 1.0, np.maximum(unit, 0.0))


def deviance_residual(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    """sign(y - m) sqrt(2 [y ln(y/m) - (y - m)]), with y ln(y/m) = 0 at y = 0 and 0 when y = m = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = 2.0 * m * _deviance_unit((y - m) / m)
    dev = np.where(m > 0, dev, np.where(y > 0, np.inf, 0.0))
    return np.sign(y - m) * np.sqrt(dev)


def _fit_free_slope(y: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (b0, b1) of log m = b0 + b1 log d by Newton's method with step halving.

    log d is centred for conditioning. b1 is NaN when it is not identifiable (all
    denominators equal), as R reports an aliased coefficient; then b0 = log(mean y).
    Both are NaN when there are no events (the intercept would be minus infinity).
    When all events sit at the smallest or largest denominator the maximum lies at
    infinity: the fitted counts converge (to 0 for the groups without events) while
    the coefficients grow large, and the fit stops there, as R's glm does.
    """
    if y.sum() <= 0:
        return np.nan, np.nan
    x = np.log(d)
    if np.ptp(x) == 0:
        return float(np.log(y.mean())), np.nan
    centre = x.mean()
    design = np.column_stack([np.ones_like(x), x - centre])
    beta = np.array([np.log(y.sum() / d.sum()) + centre, 1.0])

    def loglik(b: np.ndarray) -> float:
        eta = design @ b
        with np.errstate(over="ignore"):  # an overshooting step gives -inf and is halved
            return float(np.sum(y * eta - np.exp(eta)))

    current = loglik(beta)
    for _ in range(_MAX_ITER):
        m = np.exp(design @ beta)
        gradient = design.T @ (y - m)
        hessian = design.T @ (design * m[:, None])
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        for _ in range(60):  # halve a step that lowers the log-likelihood beyond rounding
            candidate = loglik(beta + step)
            if candidate >= current - _TOL * (abs(current) + 1.0):
                break
            step = step / 2.0
        beta, previous, current = beta + step, current, candidate
        if np.max(np.abs(step)) < _TOL or abs(current - previous) <= _TOL * (abs(current) + 0.1):
            break
    else:  # pragma: no cover - Newton on a concave log-likelihood converges
        raise RbqmError("poisson(offset=False): the free-slope fit did not converge in 100 iterations.")
    return float(beta[0] - beta[1] * centre), float(beta[1])


def _fit(n: np.ndarray, d: np.ndarray, offset: bool) -> tuple[float, float]:
    """(b0, b1) of the chosen model on the scorable rows; the true offset model has b1 = 1."""
    if offset:
        return (float(np.log(n.sum() / d.sum())) if n.sum() > 0 else -np.inf), 1.0
    return _fit_free_slope(n, d)


def _expected(
    d: np.ndarray, n_total: float, d_total: float, coef: tuple[float, float], offset: bool
) -> np.ndarray:
    if offset:
        return d * (n_total / d_total if d_total > 0 else 0.0)
    b0, b1 = coef
    if np.isnan(b0):
        return np.zeros_like(d)
    return np.exp(b0 + (0.0 if np.isnan(b1) else b1) * np.log(d))


def poisson(frame: Frame, *, offset: bool = True) -> Frame:
    """Score each group by its deviance residual from a log-link Poisson model.

    With offset=True (default) the model is the true offset model
    log m = b0 + log D, whose fit has the closed form m_i = D_i sum(N) / sum(D).
    With offset=False it is gsm's free-slope variant log m = b0 + b1 log D
    (what R fits for ``Numerator ~ stats::offset(LogDenominator)``), fitted by
    Newton's method to a tolerance of 1e-12. Only groups with denominator > 0
    enter the fit. The score is the deviance residual
    sign(y - m) sqrt(2 [y ln(y/m) - (y - m)]), with y ln(y/m) = 0 at y = 0.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per group with ``group_id``, ``numerator`` (event count) and
        ``denominator`` (exposure). Other columns are kept as they are.
    offset : bool, default True
        True for the offset model, False for the free-slope variant.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The input, same kind and row order, with ``metric``, ``expected`` (m),
        ``score`` (null where the denominator is 0 or null) and, for
        offset=False, the constant ``intercept`` (b0) and ``slope`` (b1). Both are
        null when there are no events; ``slope`` is null when every denominator is
        the same (not identifiable).

    See Also
    --------
    poisson_bounds : the limits of the same model in count space.

    Examples
    --------
    >>> import polars as pl
    >>> sites = pl.DataFrame({"group_id": ["a", "b", "c"], "numerator": [4, 10, 1],
    ...                       "denominator": [100.0, 200.0, 50.0]})
    >>> out = poisson(sites)
    >>> out["expected"].round(6).to_list()
    [4.285714, 8.571429, 2.142857]
    >>> out["score"].round(3).to_list()
    [-0.14, 0.475, -0.873]
    """
    check_option(offset, "offset", "poisson", (True, False))
    df = collect_input(frame, "poisson")
    n, d, mask = scorable_arrays(df)
    coef = _fit(n[mask], d[mask], offset)
    expected = _expected(d[mask], n[mask].sum(), d[mask].sum(), coef, offset)
    columns = [METRIC.alias("metric")]
    if not offset:
        columns += [pl.lit(coef[0] if np.isfinite(coef[0]) else None, pl.Float64).alias("intercept"),
                    pl.lit(coef[1] if np.isfinite(coef[1]) else None, pl.Float64).alias("slope")]
    out = df.with_columns(*columns).with_columns(
        scatter(expected, mask, "expected"),
        scatter(deviance_residual(n[mask], expected), mask, "score"),
    )
    return same_kind(out, frame)


def invert_deviance_residual(m: np.ndarray, t: float) -> np.ndarray:
    """The count y on the side sign(t) of m whose deviance residual is t (NaN where none exists).

    Writing y = m u, 2 [y ln(y/m) - (y - m)] = t^2 becomes u (ln u - 1) = k - 1
    with k = t^2 / (2 m); with v = ln u - 1, v e^v = (k - 1) / e, so
    y = m exp(1 + W((k - 1) / e)): branch 0 (u >= 1) for t > 0 and branch -1
    (u <= 1) for t < 0, where no solution exists once k > 1 (t^2 > 2 m). The
    Lambert W value, or near the branch point (k < 1e-2, where (k - 1) / e loses
    digits) its series 1 + W = p - p^2/3 + 11 p^3/72 - 43 p^4/540 in
    p = sign(t) sqrt(2 k), starts three Newton steps on the cancellation-safe
    form (1 + r) ln(1 + r) - r = k with r = u - 1 (skipped where |p| <= 1e-3:
    there the series is already exact to about 1e-14).
    """
    m = np.asarray(m, dtype=float)
    if t == 0:
        return m.copy()
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        k = t * t / (2.0 * m)
        x = np.maximum((k - 1.0) / np.e, -np.exp(-1.0))
        w = lambertw(x, 0 if t > 0 else -1)
        defined = (np.abs(w.imag) == 0) & np.isfinite(k) & ~np.isnan(w.real)
        r = np.expm1(1.0 + w.real)
        p = np.sign(t) * np.sqrt(2.0 * k)
        series = np.expm1(p - p**2 / 3.0 + 11.0 * p**3 / 72.0 - 43.0 * p**4 / 540.0)
        r = np.where(k < 1e-2, series, r)
        for _ in range(3):
            slope = np.log1p(r)
            update = r - ((1.0 + r) * slope - r - k) / slope
            polish = defined & (r > -1.0) & (np.abs(p) > 1e-3) & np.isfinite(update)
            r = np.where(polish, np.maximum(update, -1.0), r)
        y = m * (1.0 + r)
    return np.where(defined & (y >= 0) & np.isfinite(y), y, np.nan)


def poisson_bounds(
    frame: Frame,
    *,
    offset: bool = True,
    thresholds: Sequence[float] = (-7, -5, 5, 7),
    steps: int = 250,
) -> Frame:
    """Count limits of the Poisson model at given deviance residuals over a range of denominators.

    For each grid denominator D the fitted expected count is m(D) (D mu for the
    offset model, exp(b0) D^b1 for the free-slope one) and, for each threshold t,
    the limit is the count y on the side sign(t) of m whose deviance residual is
    exactly t, found with the Lambert W function (see the Notes). The grid has
    ``steps`` points evenly spaced in log D between the smallest and the largest
    positive denominator, as gsm spaces it. Points where no such count exists
    (a low limit below zero: t^2 > 2 m) or it is undefined are dropped.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per group with ``group_id``, ``numerator``, ``denominator``.
    offset : bool, default True
        As in :func:`poisson`.
    thresholds : sequence of float, default (-7, -5, 5, 7)
        Deviance residuals of the limits, strictly increasing; 0 gives m itself.
    steps : int, default 250
        Number of grid points (at least 2).

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        Long format ordered by threshold then denominator: ``denominator``,
        ``threshold``, ``numerator`` (the limiting count) and ``metric``
        (numerator / denominator), all Float64.

    Notes
    -----
    With y = m u, 2 [y ln(y/m) - (y - m)] = t^2 gives y = m exp(1 + W((k - 1)/e)),
    k = t^2 / (2 m), on branch 0 for t > 0 and branch -1 for t < 0; the value is
    then polished by Newton steps so that it reproduces t to better than 1e-10.

    See Also
    --------
    poisson : the scores these limits bound.

    Examples
    --------
    >>> import polars as pl
    >>> sites = pl.DataFrame({"group_id": ["a", "b"], "numerator": [10, 30],
    ...                       "denominator": [100.0, 100.0]})
    >>> bounds = poisson_bounds(sites, thresholds=[-2, 0, 2])
    >>> bounds["numerator"].round(4).to_list()
    [11.7508, 20.0, 29.5887]
    """
    caller = "poisson_bounds"
    check_option(offset, "offset", caller, (True, False))
    levels = check_thresholds(thresholds, "thresholds", caller)
    check_number(steps, "steps", caller, low=2, integer=True)
    df = collect_input(frame, caller)
    n, d, mask = scorable_arrays(df)
    if mask.any():
        n, d = n[mask], d[mask]
        grid = np.unique(np.geomspace(d.min(), d.max(), steps))
        expected = _expected(grid, n.sum(), d.sum(), _fit(n, d, offset), offset)
    else:
        grid = expected = np.empty(0)
    limits = np.stack([invert_deviance_residual(expected, t) for t in levels])
    return same_kind(long_bounds(grid, levels, limits, np.isfinite(limits)), frame)
