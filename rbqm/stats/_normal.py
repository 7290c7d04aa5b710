"""Normal approximation with over-dispersion (Spiegelhalter 2005; gsm's default KRI model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl

from rbqm.stats._frame import (
    D, KINDS, METRIC, N, SCORABLE, Frame, check_number, check_option, check_thresholds, collect_input, long_bounds,
    same_kind,
)

__all__ = ["normal_approx", "normal_approx_bounds"]

Kind = Literal["rate", "binary"]


def _overall_and_factor(kind: str) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """Expressions for mu (overall metric), V(mu) and phi (over-dispersion factor).

    Both statistics use only the scorable rows (numerator present, denominator > 0).
    When V(mu) is 0 (mu = 0, or mu = 1 for a binary metric) every z0 is 0, so phi = 0.
    """
    total_d = pl.when(SCORABLE).then(D).sum()
    mu = pl.when(total_d > 0).then(pl.when(SCORABLE).then(N).sum().cast(pl.Float64) / total_d)
    variance = mu * (1.0 - mu) if kind == "binary" else mu
    z0 = pl.when(SCORABLE).then(
        pl.when(variance > 0).then((METRIC - mu) / (variance / D).sqrt()).otherwise(0.0)
    )
    phi = (z0**2).mean()
    return mu, variance, phi


def normal_approx(frame: Frame, *, kind: Kind) -> Frame:
    """Score each group by its over-dispersed normal-approximation z-score.

    With y = numerator / denominator and, over the groups with denominator > 0,
    mu = sum(numerator) / sum(denominator), V(mu) = mu (1 - mu) for ``"binary"``
    or mu for ``"rate"``, z0 = (y - mu) / sqrt(V(mu) / D) and phi = mean(z0^2)
    (not floored), the score is z = (y - mu) / sqrt(phi V(mu) / D). The score is
    0 when V(mu) = 0 (mu = 0, or mu = 1 for binary) or phi = 0. Because
    z = z0 / sqrt(phi), the mean of z^2 over the scored groups is exactly 1.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per group with ``group_id``, ``numerator``, ``denominator``.
        Other columns are kept as they are.
    kind : {"rate", "binary"}
        ``"binary"`` for proportions (numerator <= denominator), ``"rate"`` for
        events per unit of exposure.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The input, same kind and row order, with ``metric`` (null where the
        denominator is 0 or null), ``overall_metric`` (mu), ``factor`` (phi) and
        ``score`` (z; null where the metric is null).

    Raises
    ------
    rbqm.errors.RbqmError
        On a bad ``kind``, missing columns or invalid counts.

    See Also
    --------
    normal_approx_bounds : the funnel limits of the same model.
    flag : turn the scores into flags.

    Examples
    --------
    >>> import polars as pl
    >>> sites = pl.DataFrame({"group_id": ["a", "b", "c"], "numerator": [2, 9, 5],
    ...                       "denominator": [10, 12, 10]})
    >>> out = normal_approx(sites, kind="binary")
    >>> round(out["overall_metric"][0], 4), round(out["factor"][0], 4)
    (0.5, 2.2)
    >>> out["score"].round(3).to_list()
    [-1.279, 1.168, 0.0]
    """
    check_option(kind, "kind", "normal_approx", KINDS)
    df = collect_input(frame, "normal_approx", binary=kind == "binary")
    mu, variance, phi = _overall_and_factor(kind)
    score = pl.when(SCORABLE).then(
        pl.when((variance > 0) & (phi > 0))
        .then((METRIC - mu) / (phi * variance / D).sqrt())
        .otherwise(0.0)
    )
    out = df.with_columns(metric=METRIC, overall_metric=mu, factor=phi, score=score)
    return same_kind(out, frame)


def normal_approx_bounds(
    frame: Frame,
    *,
    kind: Kind,
    thresholds: Sequence[float] = (-3, -2, 2, 3),
    steps: int = 250,
) -> Frame:
    """Funnel limits of the normal approximation over a range of denominators.

    For each threshold t the limit is metric(D) = mu + t sqrt(phi V(mu) / D),
    with mu and phi estimated exactly as in :func:`normal_approx`. D runs over a
    linear grid of ``steps`` values from the smallest to the largest positive
    denominator (repeated grid values, as when every group has the same
    denominator, are kept once). Points whose implied numerator metric * D is
    negative are dropped. As in gsm, binary limits above 1 are kept: they show
    that no proportion can breach the limit at that denominator.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per group with ``group_id``, ``numerator``, ``denominator``.
    kind : {"rate", "binary"}
        As in :func:`normal_approx`.
    thresholds : sequence of float, default (-3, -2, 2, 3)
        z-values of the limits, strictly increasing; include 0 for the centre line.
    steps : int, default 250
        Number of grid points (at least 2).

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        Long format, one row per threshold and grid point, ordered by threshold
        then denominator: ``denominator``, ``threshold``, ``numerator``
        (= metric * denominator) and ``metric`` (the limit), all Float64. Empty
        when no group has a positive denominator.

    See Also
    --------
    normal_approx : the scores these limits bound.

    Examples
    --------
    >>> import polars as pl
    >>> sites = pl.DataFrame({"group_id": ["a", "b", "c"], "numerator": [2, 9, 5],
    ...                       "denominator": [10, 12, 10]})
    >>> bounds = normal_approx_bounds(sites, kind="binary", thresholds=[-2, 2], steps=3)
    >>> bounds.columns
    ['denominator', 'threshold', 'numerator', 'metric']
    >>> bounds.filter(pl.col("denominator") == 10)["metric"].round(3).to_list()
    [0.031, 0.969]
    """
    caller = "normal_approx_bounds"
    check_option(kind, "kind", caller, KINDS)
    levels = check_thresholds(thresholds, "thresholds", caller)
    check_number(steps, "steps", caller, low=2, integer=True)
    df = collect_input(frame, caller, binary=kind == "binary")
    mu, variance, phi = _overall_and_factor(kind)
    stats = df.select(
        mu=mu, variance=variance, phi=phi,
        low=pl.when(SCORABLE).then(D).min().cast(pl.Float64),
        high=pl.when(SCORABLE).then(D).max().cast(pl.Float64),
    ).row(0, named=True)
    if stats["mu"] is None:
        grid, limits = np.empty(0), np.empty((len(levels), 0))
    else:
        grid = np.unique(np.linspace(stats["low"], stats["high"], steps))
        spread = np.sqrt(stats["phi"] * stats["variance"] / grid)
        limits = stats["mu"] + np.asarray(levels)[:, None] * spread
    numerators = limits * grid
    return same_kind(long_bounds(grid, levels, numerators, numerators >= 0), frame)
