"""Observed minus expected over data cuts: the study-level O-E chart of each QTL, one point per cut.

``observed_minus_expected`` (rbqmR) follows one binary QTL subject by subject. The analysis keeps only
each cut's study totals, so this is the same chart with one point per data cut: ``O`` is the numerator
at the cut, ``E = n p0`` the events expected from the denominator ``n`` at the QTL's expected rate, and
the warning band is where ``O - E`` lies with probability ``q[1] - q[0]`` if the true rate were ``p0``
(binomial for a share, Poisson for a rate). Instead of rbqmR's whole-trial action limits, which need the
planned size and permitted rates, the chart carries the secondary and tolerance limits in effect at each
cut as O - E lines: ``n (limit - p0)`` is the excess at which the observed rate ``O / n`` reaches the
limit. See docs/qtl.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy.stats import binom, poisson

from rbqm.errors import RbqmError
from rbqm.qtl.definition import QtlDefinition

__all__ = ["OE_CUT_COLUMNS", "observed_minus_expected_by_cut"]

OE_CUT_COLUMNS = {
    "study_id": pl.String, "qtl_id": pl.String, "cut_date": pl.Date, "observed": pl.Float64,
    "expected": pl.Float64, "o_minus_e": pl.Float64, "warn_lower": pl.Float64, "warn_upper": pl.Float64,
    "secondary_line": pl.Float64, "limit_line": pl.Float64, "status": pl.String,
}
"""The columns of :func:`observed_minus_expected_by_cut`."""


def _expected_rates(definitions: Sequence[QtlDefinition]) -> pl.DataFrame:
    """One row per definition: its kind and expected events per unit of denominator (``p0``)."""
    return pl.DataFrame(
        {"qtl_id": [d.id for d in definitions], "kind": [d.kind for d in definitions],
         "p0": [d.expected_rate / d.metric_scale for d in definitions],
         "scale": [d.metric_scale for d in definitions]},
        schema={"qtl_id": pl.String, "kind": pl.String, "p0": pl.Float64, "scale": pl.Float64},
    )


def _band(kind: np.ndarray, n: np.ndarray, p0: np.ndarray, q: float) -> np.ndarray:
    """The ``q`` quantile of the event count at each point: binomial(n, p0) or Poisson(n p0); NaN where unjudged."""
    out = np.full(n.shape, np.nan)
    share, rate = (kind == "binary") & np.isfinite(n), (kind == "rate") & np.isfinite(n)
    out[share] = binom.ppf(q, np.round(n[share]), p0[share])
    out[rate] = poisson.ppf(q, n[rate] * p0[rate])
    return out


def observed_minus_expected_by_cut(qtl: pl.DataFrame, definitions: Sequence[QtlDefinition], *,
                                   q: tuple[float, float] = (0.01, 0.99)) -> pl.DataFrame:
    """The observed-minus-expected chart of every QTL over the data cuts.

    Parameters
    ----------
    qtl
        ``compute_qtls`` results of one or more cuts (``Analysis.qtl``): ``study_id``, ``qtl_id``,
        ``cut_date``, ``numerator``, ``denominator``, ``limit`` and ``secondary_limit``.
    definitions
        The definitions the results were judged with (the library with the study's own limits,
        ``rbqm.store.qtl.effective_definitions``): each gives ``expected_rate``, ``kind`` and ``metric_scale``.
    q
        Lower and upper quantiles of the warning band, strictly between 0 and 1.

    Returns
    -------
    polars.DataFrame
        ``OE_CUT_COLUMNS``, one row per QTL and cut, by study, QTL and cut: ``observed`` (the numerator),
        ``expected`` (``n p0`` with ``p0 = expected_rate / metric_scale``), ``o_minus_e``, the warning band
        ``warn_lower``-``warn_upper`` (``ppf(q) - n p0`` of binomial(n, p0), or of Poisson(n p0) for a rate),
        ``secondary_line`` and ``limit_line`` (``n (limit / metric_scale - p0)``: O - E where the observed
        rate equals that limit) and ``status``: ``"action"`` when the observed rate is at or above the
        tolerance limit (``o_minus_e >= limit_line``), else ``"warning"`` outside the warning band, else
        ``"within"``. A cut whose QTL was not judged (no denominator, not computable) or whose QTL is not
        among ``definitions`` has nulls from ``expected`` on.

    Examples
    --------
    >>> from datetime import date
    >>> from rbqm.qtl import load_qtl_definitions
    >>> frame = pl.DataFrame({"study_id": ["S"], "qtl_id": ["qtl0003"], "cut_date": [date(2025, 1, 31)],
    ...                       "numerator": [31.0], "denominator": [100.0], "limit": [0.35],
    ...                       "secondary_limit": [0.3]})
    >>> row = observed_minus_expected_by_cut(frame, load_qtl_definitions()).row(0, named=True)
    >>> row["expected"], row["o_minus_e"], row["warn_upper"], row["secondary_line"], row["limit_line"], row["status"]
    (20.0, 11.0, 10.0, 10.0, 15.0, 'warning')
    """
    low, high = q
    if not 0.0 < low < high < 1.0:
        raise RbqmError(f"The 'q' parameter of observed_minus_expected_by_cut must be two quantiles "
                        f"0 < low < high < 1; got {q!r} instead.")
    judged = (pl.col("denominator") > 0) & pl.col("limit").is_not_null() & pl.col("p0").is_not_null()
    n = pl.when(judged).then(pl.col("denominator"))
    frame = (
        qtl.lazy().join(_expected_rates(definitions).lazy(), on="qtl_id", how="left")
        .with_columns(n=n, observed=pl.col("numerator").cast(pl.Float64))
        .with_columns(expected=pl.col("n") * pl.col("p0"))
        .with_columns(
            o_minus_e=pl.when(judged).then(pl.col("observed") - pl.col("expected")),
            # rounded as in observed_minus_expected: 100 (0.3 - 0.2) reads 10, not 9.999999999999998
            secondary_line=(pl.col("n") * (pl.col("secondary_limit") / pl.col("scale") - pl.col("p0"))).round(12),
            limit_line=(pl.col("n") * (pl.col("limit") / pl.col("scale") - pl.col("p0"))).round(12),
            # compared as compute_qtls does (estimate >= limit), free of the lines' rounding
            reached=pl.col("observed") / pl.col("n") * pl.col("scale") >= pl.col("limit"),
        )
        .sort("study_id", "qtl_id", "cut_date")
        .collect()
    )
    kind = frame["kind"].fill_null("").to_numpy()
    sizes, p0 = frame["n"].fill_null(np.nan).to_numpy(), frame["p0"].fill_null(np.nan).to_numpy()
    expected = frame["expected"]
    frame = frame.with_columns(
        warn_lower=pl.Series(_band(kind, sizes, p0, low)).fill_nan(None) - expected,
        warn_upper=pl.Series(_band(kind, sizes, p0, high)).fill_nan(None) - expected,
    )
    oe = pl.col("o_minus_e")
    return frame.with_columns(
        status=pl.when(oe.is_null()).then(None)
        .when(pl.col("reached")).then(pl.lit("action"))
        .when((oe < pl.col("warn_lower")) | (oe > pl.col("warn_upper"))).then(pl.lit("warning"))
        .otherwise(pl.lit("within")),
    ).select(pl.col(c).cast(t) for c, t in OE_CUT_COLUMNS.items())
