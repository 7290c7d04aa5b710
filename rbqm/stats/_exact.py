"""Exact binomial / Poisson tail probabilities of each group's count under the study rate."""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
from scipy.stats import binom, poisson

from rbqm.stats._frame import (
    KINDS, METRIC, Frame, check_option, collect_input, same_kind, scatter, scorable_arrays,
)

__all__ = ["exact_tail"]


def exact_tail(frame: Frame, *, kind: Literal["rate", "binary"]) -> Frame:
    """Exact one-sided tail probabilities of each group's count under the study-wide rate.

    The study rate is mu = sum(numerator) / sum(denominator) over all groups with
    denominator > 0, the group itself included (as in the normal approximation).
    Under the null the group's count X is Binomial(D, mu) for ``"binary"`` and
    Poisson(D mu) for ``"rate"``. Exact tails suit small groups, where the normal
    approximation is poor.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per group with ``group_id``, ``numerator`` (a whole number) and
        ``denominator`` (a whole number for ``"binary"``).
    kind : {"rate", "binary"}
        The distribution of the count under the null.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The input, same kind and row order, with ``metric``, ``overall_metric``
        (mu), ``expected`` (D mu), ``p_low`` = P(X <= N), ``p_high`` = P(X >= N),
        ``p_value`` = min(1, 2 min(p_low, p_high)) (the doubled one-sided tail),
        ``direction`` (Int8: sign of N - D mu, computed without rounding) and ``score`` (= ``p_value``). All
        are null where the denominator is 0 or null.

    See Also
    --------
    flag_p_value : flags from ``p_value`` and ``direction``.
    fisher : the exact test against the other groups instead of the study rate.

    Examples
    --------
    >>> import polars as pl
    >>> sites = pl.DataFrame({"group_id": ["a", "b"], "numerator": [0, 2],
    ...                       "denominator": [2, 2]})
    >>> out = exact_tail(sites, kind="binary")
    >>> out["p_low"].to_list(), out["p_high"].to_list()
    ([0.25, 1.0], [1.0, 0.25])
    """
    check_option(kind, "kind", "exact_tail", KINDS)
    integer = ("numerator", "denominator") if kind == "binary" else ("numerator",)
    df = collect_input(frame, "exact_tail", binary=kind == "binary", integer=integer)
    n, d, mask = scorable_arrays(df)
    n, d = n[mask], d[mask]
    mu = n.sum() / d.sum() if mask.any() else np.nan
    expected = d * mu
    if kind == "binary":
        p_low, p_high = binom.cdf(n, d, mu), binom.sf(n - 1, d, mu)
    else:
        p_low, p_high = poisson.cdf(n, expected), poisson.sf(n - 1, expected)
    out = df.with_columns(
        METRIC.alias("metric"),
        pl.lit(mu if mask.any() else None, pl.Float64).alias("overall_metric"),
        scatter(expected, mask, "expected"),
        scatter(p_low, mask, "p_low"),
        scatter(p_high, mask, "p_high"),
        scatter(np.minimum(1.0, 2.0 * np.minimum(p_low, p_high)), mask, "p_value"),
        scatter(np.sign(n * d.sum() - n.sum() * d), mask, "direction", pl.Int8),
    ).with_columns(score=pl.col("p_value"))
    return same_kind(out, frame)
