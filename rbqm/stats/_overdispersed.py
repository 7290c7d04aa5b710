"""Over-dispersed exact scores: each group's count against the beta-binomial or negative-binomial
distribution fitted to every group, on the z scale, and their funnel limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl
from scipy.special import ndtr, ndtri
from scipy.stats import betabinom, nbinom

from rbqm.stats._bayes import _fit_prior
from rbqm.stats._frame import (
    BOUNDS_COLUMNS, KINDS, METRIC, Frame, check_number, check_option, check_thresholds, collect_input,
    long_bounds, same_kind, scatter, scorable_arrays,
)

__all__ = ["overdispersed_exact", "overdispersed_exact_bounds"]

#: mid-p values are kept this far inside (0, 1), so every score is finite (|z| <= 8.2).
_P_FLOOR = 1e-16


def _predictive(kind: str, n_trials: np.ndarray, a: float, b: float):
    """The marginal distribution of a group's count: BetaBinomial(D, a, b), or the negative binomial of
    Poisson(D lambda) with lambda ~ Gamma(shape a, rate b)."""
    if kind == "binary":
        return betabinom(n_trials.astype(np.int64), a, b)
    return nbinom(a, b / (b + n_trials))


def _mid_p(dist, k: np.ndarray) -> np.ndarray:
    """P(X < k) + P(X = k) / 2: the mid-p lower tail, increasing in k."""
    return dist.cdf(k - 1) + 0.5 * dist.pmf(k)


def _fit(n: np.ndarray, d: np.ndarray, kind: str) -> tuple[float, float, float]:
    """Study rate mu and the fitted prior (a, b); NaN when mu is 0 (or 1 for binary) or nothing scores."""
    mu = n.sum() / d.sum() if n.size else np.nan
    if not (0.0 < mu < (1.0 if kind == "binary" else np.inf)):
        return mu, np.nan, np.nan
    return (mu, *_fit_prior(n, d, kind, mu))


def overdispersed_exact(frame: Frame, *, kind: Literal["rate", "binary"]) -> Frame:
    """Score each group's count against the over-dispersed distribution fitted to all groups.

    ``"binary"``: N_i ~ BetaBinomial(D_i, a, b); ``"rate"``: N_i ~ NegativeBinomial, the
    Poisson(D_i lambda) count with lambda ~ Gamma(shape a, rate b). (a, b) maximise the marginal
    likelihood of every group with a denominator > 0 (as in :func:`empirical_bayes`), so the
    between-group variation is allowed for as gsm's over-dispersion factor allows for it, but the
    count keeps its discrete, skewed distribution: for small expected counts the normal
    approximation's upper tail flags about twice as many groups as its z thresholds promise, this
    does not. The score is the mid-p lower tail put on the z scale, ``z = Phi^-1(P(X < N) + P(X = N)
    / 2)``, so a KRI keeps its z thresholds (2 and 3 for amber and red).

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per group with ``group_id``, ``numerator`` (a whole number) and ``denominator`` (a
        whole number for ``"binary"``).
    kind : {"rate", "binary"}
        Beta-binomial (``"binary"``) or negative-binomial (``"rate"``) counts.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The input, same kind and row order, with ``metric``, ``overall_metric`` (mu = sum N / sum D),
        ``prior_a`` and ``prior_b`` (the fitted mixing distribution), ``expected`` (D mu), ``p_low`` =
        P(X <= N), ``p_high`` = P(X >= N) and ``score`` (the z of the mid-p, within +-8.2). Per-group
        columns are null where the denominator is 0 or null; when mu is 0 (or 1 for binary) no group
        can differ and every score is 0.

    See Also
    --------
    normal_approx : gsm's over-dispersed normal approximation.
    exact_tail : exact tails without over-dispersion.
    overdispersed_exact_bounds : the funnel limits of these scores.

    Examples
    --------
    >>> import polars as pl
    >>> sites = pl.DataFrame({"group_id": ["a", "b", "c", "d"], "numerator": [1, 4, 2, 9],
    ...                       "denominator": [100, 100, 100, 100]})
    >>> out = overdispersed_exact(sites, kind="rate")
    >>> out["score"].round(3).to_list()
    [-1.049, 0.197, -0.548, 1.463]
    """
    check_option(kind, "kind", "overdispersed_exact", KINDS)
    integer = ("numerator", "denominator") if kind == "binary" else ("numerator",)
    df = collect_input(frame, "overdispersed_exact", binary=kind == "binary", integer=integer)
    n, d, mask = scorable_arrays(df)
    n, d = n[mask], d[mask]
    mu, a, b = _fit(n, d, kind)
    if np.isnan(a):
        p_low = p_high = np.ones(n.shape)
        score = np.zeros(n.shape)
    else:
        dist = _predictive(kind, d, a, b)
        p_low, p_high = dist.cdf(n), dist.sf(n - 1)
        score = ndtri(np.clip(_mid_p(dist, n), _P_FLOOR, 1.0 - _P_FLOOR))
    out = df.with_columns(
        METRIC.alias("metric"),
        pl.lit(None if np.isnan(mu) else mu, pl.Float64).alias("overall_metric"),
        pl.lit(None if np.isnan(a) else a, pl.Float64).alias("prior_a"),
        pl.lit(None if np.isnan(b) else b, pl.Float64).alias("prior_b"),
        scatter(d * mu, mask, "expected"),
        scatter(p_low, mask, "p_low"),
        scatter(p_high, mask, "p_high"),
        scatter(score, mask, "score"),
    )
    return same_kind(out, frame)


def _crossing(kind: str, grid: np.ndarray, a: float, b: float, level: float) -> np.ndarray:
    """Per denominator, the (interpolated) count at which the mid-p reaches ``Phi(level)``; NaN when
    even a count of 0 is above it.

    With q the ``Phi(level)`` quantile (the least k with P(X <= k) >= target), mid-p(q) <= P(X <= q) and
    mid-p(q + 1) >= P(X <= q), so the first count whose mid-p reaches the target is q or q + 1.
    """
    target = ndtr(level)
    dist = _predictive(kind, grid, a, b)
    q = dist.ppf(target)
    first = np.where(_mid_p(dist, q) >= target, q, q + 1)
    above, below = _mid_p(dist, first), _mid_p(dist, first - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = first - 1 + (target - below) / (above - below)
    return np.where(first > 0, x, np.nan)


def overdispersed_exact_bounds(
    frame: Frame,
    *,
    kind: Literal["rate", "binary"],
    thresholds: Sequence[float] = (-3, -2, 2, 3),
    steps: int = 250,
) -> Frame:
    """Funnel limits of :func:`overdispersed_exact` over a range of denominators.

    For each threshold t and denominator D the limit is the count at which the score reaches t,
    divided by D: between two whole counts k and k + 1 whose mid-p values straddle Phi(t) it is
    interpolated linearly, so a group with a whole count lies beyond the limit exactly when its
    score does. D runs over a linear grid of ``steps`` values from the smallest to the largest
    positive denominator (whole numbers for ``"binary"``; repeated values kept once). Where even a
    count of 0 scores above t (a low limit at a small denominator) there is no limit and the point
    is left out.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        As in :func:`overdispersed_exact`.
    kind : {"rate", "binary"}
        As in :func:`overdispersed_exact`.
    thresholds : sequence of float, default (-3, -2, 2, 3)
        z-values of the limits, strictly increasing; include 0 for the centre line.
    steps : int, default 250
        Number of grid points (at least 2).

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        Long format, ordered by threshold then denominator: ``denominator``, ``threshold``,
        ``numerator`` (the limiting count) and ``metric`` (the limit), all Float64. Empty when no
        group has a positive denominator or the study rate is 0.

    Examples
    --------
    >>> import polars as pl
    >>> sites = pl.DataFrame({"group_id": ["a", "b", "c", "d"], "numerator": [1, 4, 2, 9],
    ...                       "denominator": [100, 100, 100, 100]})
    >>> overdispersed_exact_bounds(sites, kind="rate", thresholds=[2], steps=2)["numerator"].round(2).to_list()
    [11.82]
    """
    caller = "overdispersed_exact_bounds"
    check_option(kind, "kind", caller, KINDS)
    levels = check_thresholds(thresholds, "thresholds", caller)
    check_number(steps, "steps", caller, low=2, integer=True)
    integer = ("numerator", "denominator") if kind == "binary" else ("numerator",)
    df = collect_input(frame, caller, binary=kind == "binary", integer=integer)
    n, d, mask = scorable_arrays(df)
    mu, a, b = _fit(n[mask], d[mask], kind)
    if np.isnan(a):
        return same_kind(pl.DataFrame(schema=dict.fromkeys(BOUNDS_COLUMNS, pl.Float64)), frame)
    grid = np.linspace(d[mask].min(), d[mask].max(), steps)
    grid = np.unique(np.round(grid) if kind == "binary" else grid)
    counts = np.vstack([_crossing(kind, grid, a, b, level) for level in levels])
    return same_kind(long_bounds(grid, levels, counts, np.isfinite(counts)), frame)
