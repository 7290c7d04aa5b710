"""Ranking floating-point results the same way in every run."""

from __future__ import annotations

import polars as pl

#: Significant figures kept before computed values are ranked or compared for ties.
TIE_FIGURES = 9


def tie_safe(expr: pl.Expr) -> pl.Expr:
    """``expr`` rounded to :data:`TIE_FIGURES` significant figures, for ranking.

    polars sums a group's values in an order that depends on its threads and hashing, so two
    values equal in exact arithmetic (two subjects whose visits deviate alike, two sites with the
    same flags) can differ in the last bit, differently in every process; ranked raw, such ties
    break at random and a rank, a percentile or a permutation p-value changes between reruns.
    Rounding to 9 significant figures makes them equal again while keeping every real difference
    a statistician would care about.

    Examples
    --------
    >>> frame = pl.DataFrame({"x": [0.1 + 0.2, 0.3, 0.31]})
    >>> frame.select(raw=pl.col("x").rank("min"), safe=tie_safe(pl.col("x")).rank("min")).rows()
    [(2, 1), (1, 1), (3, 3)]
    """
    return expr.round_sig_figs(TIE_FIGURES)
