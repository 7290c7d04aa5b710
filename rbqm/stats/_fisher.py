"""Fisher's exact test of each group against all other groups, vectorised over groups."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.stats import hypergeom

from rbqm.stats._frame import METRIC, Frame, collect_input, same_kind, scatter, scorable_arrays

__all__ = ["fisher"]

#: Probabilities within this relative distance of the observed one count as "as extreme" (R's fisher.test).
_RELATIVE_TOLERANCE = 1e-7


def _search(logpmf, threshold: np.ndarray, low: np.ndarray, high: np.ndarray, *, first: bool) -> np.ndarray:
    """Vectorised bisection on [low, high] where logpmf is monotone.

    first=True: the smallest k with logpmf(k) <= threshold on a non-increasing
    stretch (high + 1 when there is none). first=False: the largest such k on a
    non-decreasing stretch (low - 1 when there is none).
    """
    if first:  # invariant: the answer lies in (bad, good]
        bad, good = low - 1, high + 1
    else:  # invariant: the answer lies in [good, bad)
        bad, good = high + 1, low - 1
    while np.any(np.abs(good - bad) > 1):
        mid = (bad + good) // 2
        active = np.abs(good - bad) > 1
        hit = active & (logpmf(mid) <= threshold)
        good = np.where(hit, mid, good)
        bad = np.where(active & ~hit, mid, bad)
    return good


def fisher_two_sided(events: np.ndarray, size: np.ndarray, total_events: int, total: int) -> np.ndarray:
    """Two-sided Fisher p-values of each group (events of size) against the rest of the study.

    Under the null the group's count is hypergeometric (population ``total``
    with ``total_events`` events, ``size`` draws). The p-value sums the
    probabilities of every count no more likely than the observed one (within a
    relative 1e-7). The hypergeometric pmf is unimodal, so those counts form the
    two tails: the observed one's own tail and, beyond the mode, the tail found by
    bisection, all groups at once.
    """
    events = events.astype(np.int64)
    size = size.astype(np.int64)

    def logpmf(k: np.ndarray) -> np.ndarray:
        return hypergeom.logpmf(k, total, total_events, size)

    low = np.maximum(0, size - (total - total_events))
    high = np.minimum(total_events, size)
    mode = np.floor((size + 1.0) * (total_events + 1.0) / (total + 2.0)).astype(np.int64)
    mode = np.clip(mode, low, high)
    for shift in (1, -1):  # guard against floating-point rounding of the mode formula
        neighbour = np.clip(mode + shift, low, high)
        mode = np.where(logpmf(neighbour) > logpmf(mode), neighbour, mode)
    threshold = logpmf(events) + np.log1p(_RELATIVE_TOLERANCE)
    below = events < mode
    upper_start = _search(logpmf, threshold, mode, high, first=True)
    lower_end = _search(logpmf, threshold, low, mode, first=False)
    p_below = hypergeom.cdf(events, total, total_events, size) + hypergeom.sf(
        upper_start - 1, total, total_events, size)
    p_above = hypergeom.sf(events - 1, total, total_events, size) + hypergeom.cdf(
        lower_end, total, total_events, size)
    p = np.where(below, p_below, p_above)
    return np.where(logpmf(mode) <= threshold, 1.0, np.minimum(p, 1.0))


def fisher(frame: Frame) -> Frame:
    """Score each group by Fisher's exact test of its proportion against all other groups.

    For each group with denominator > 0 the 2x2 table is (events, non-events) of
    the group against the sum over the other groups, with
    non-events = denominator - numerator. The two-sided p-value sums the
    hypergeometric probabilities of all tables no more likely than the observed
    one (relative tolerance 1e-7, as R's ``fisher.test``); it equals
    ``scipy.stats.fisher_exact``. The computation is vectorised over groups.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per group with ``group_id``, ``numerator`` and ``denominator``,
        whole numbers with numerator <= denominator.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The input, same kind and row order, with ``metric``, ``p_value``,
        ``direction`` (Int8: +1 when the group's proportion is above that of the
        other groups, -1 below, 0 equal or no other groups) and ``score`` (the
        p-value). All are null where the denominator is 0 or null.

    Notes
    -----
    gsm flags p < 0.05 amber and p < 0.01 red, on the side given by
    ``direction``: use :func:`flag_p_value`.

    See Also
    --------
    flag_p_value : flags from ``p_value`` and ``direction``.
    benjamini_hochberg : false discovery rate over the groups' p-values.

    Examples
    --------
    >>> import polars as pl
    >>> sites = pl.DataFrame({"group_id": ["a", "b", "c"], "numerator": [8, 1, 2],
    ...                       "denominator": [10, 6, 10]})
    >>> out = fisher(sites)
    >>> out["p_value"].round(4).to_list(), out["direction"].to_list()
    ([0.004, 0.1973, 0.1092], [1, -1, -1])
    """
    df = collect_input(frame, "fisher", binary=True, integer=("numerator", "denominator"))
    n, d, mask = scorable_arrays(df)
    events, size = n[mask].astype(np.int64), d[mask].astype(np.int64)
    total_events, total = int(events.sum()), int(size.sum())
    p_value = fisher_two_sided(events, size, total_events, total) if events.size else np.empty(0)
    rest_events, rest_size = total_events - events, total - size
    with np.errstate(divide="ignore", invalid="ignore"):
        direction = np.where(rest_size > 0, np.sign(events / size - rest_events / rest_size), 0.0)
    out = df.with_columns(
        METRIC.alias("metric"),
        scatter(p_value, mask, "p_value"),
        scatter(direction, mask, "direction", pl.Int8),
    ).with_columns(score=pl.col("p_value"))
    return same_kind(out, frame)
