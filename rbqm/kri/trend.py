"""KRI results across data cuts: what changed since the previous cut."""

from __future__ import annotations

import polars as pl

__all__ = ["add_trend", "FLAG_CHANGES"]

FLAG_CHANGES = {
    "new": "flagged now, not flagged at the previous cut (or first cut)",
    "escalated": "flagged at both, more severe now (amber to red)",
    "de-escalated": "flagged at both, less severe now",
    "persisting": "flagged at both with the same severity",
    "resolved": "flagged at the previous cut, not now",
    "none": "not flagged at either",
}


def add_trend(results: pl.DataFrame) -> pl.DataFrame:
    """Add change-versus-previous-cut columns to KRI results holding one or more cuts.

    Adds ``previous_score``, ``score_change``, ``previous_flag``, ``flag_change`` (one of
    ``FLAG_CHANGES``) and ``flagged_cuts`` (consecutive cuts up to this one with a
    non-zero flag), per level, group and KRI in cut-date order.
    """
    by = ["level", "group_id", "kri_id"]
    severity = pl.col("flag").fill_null(0).abs()
    before = pl.col("previous_flag").fill_null(0).abs()
    flagged = (severity > 0).cast(pl.Int64)
    return (
        results.sort([*by, "cut_date"])
        .with_columns(previous_score=pl.col("score").shift(1).over(by),
                      previous_flag=pl.col("flag").shift(1).over(by),
                      _run=(flagged == 0).cum_sum().over(by))
        .with_columns(
            score_change=pl.col("score") - pl.col("previous_score"),
            flag_change=pl.when((severity > 0) & (before == 0)).then(pl.lit("new"))
            .when((severity > 0) & (severity > before)).then(pl.lit("escalated"))
            .when((severity > 0) & (severity < before)).then(pl.lit("de-escalated"))
            .when(severity > 0).then(pl.lit("persisting"))
            .when(before > 0).then(pl.lit("resolved"))
            .otherwise(pl.lit("none")),
            flagged_cuts=flagged.cum_sum().over([*by, "_run"]) * flagged,
        )
        .drop("_run")
        .sort(["cut_date", "kri_id", "level", "group_id"])
    )
