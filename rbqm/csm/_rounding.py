"""Rounding: the share of a site's readings that are rounded beyond the variable's recorded resolution
(whole numbers, multiples of 5 or 10), against the rest of the study (Fisher's exact test)."""

from __future__ import annotations

from datetime import date

import polars as pl

from rbqm.csm._contract import (
    check_analysis, check_integer, check_variables, empty_findings, finish, label, measurements, percent,
    study_stamp, two_by_two,
)
from rbqm.derive import AnalysisTables

__all__ = ["UNITS", "rounding", "rounding_units"]

#: The rounding ladder, finest first; each unit divides the next.
UNITS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 5.0, 10.0, 50.0, 100.0)
#: A variable is recorded to a unit when at least this share of its values is a multiple of it.
_RESOLUTION_SHARE = 0.98


def _multiple_of(unit: pl.Expr | float) -> pl.Expr:
    scaled = pl.col("value") / unit
    return (scaled - scaled.round()).abs() < 1e-6 * pl.max_horizontal(scaled.abs(), pl.lit(1.0))


def rounding_units(values: pl.LazyFrame) -> pl.LazyFrame:
    """Per variable: ``resolution``, the coarsest unit of :data:`UNITS` that at least 98% of its values
    are a multiple of, and ``unit``, the next coarser one (a value that is a multiple of ``unit`` is
    "rounded"). Variables with no such resolution (continuous values) or recorded to the coarsest unit
    are left out."""
    shares = values.group_by("variable").agg(_multiple_of(u).mean().alias(f"u{i}") for i, u in enumerate(UNITS))
    coarsest = pl.max_horizontal(pl.when(pl.col(f"u{i}") >= _RESOLUTION_SHARE).then(pl.lit(i))
                                 for i in range(len(UNITS)))
    ladder = pl.Series(UNITS)
    return (shares.select("variable", step=coarsest)
            .filter(pl.col("step").is_not_null() & (pl.col("step") < len(UNITS) - 1))
            .select("variable", resolution=pl.lit(ladder).gather(pl.col("step")),
                    unit=pl.lit(ladder).gather(pl.col("step") + 1)))


def rounding(analysis: AnalysisTables, *, variables: tuple[str, ...] | None = None, min_readings: int = 50,
             study_id: str | None = None, cut_date: date | None = None) -> pl.DataFrame:
    """Sites that round lab or vital-sign readings more (or less) than the rest of the study: readings
    that are whole numbers, or multiples of 5 or 10, beyond what the recorded resolution implies.

    Each variable's resolution and its natural rounding unit come from the whole study
    (:func:`rounding_units`): blood pressure recorded in whole mmHg is "rounded" when a multiple of 5,
    a temperature recorded to 0.1 C when a whole number, a neutrophil count recorded to 0.01 when a
    multiple of 0.1. For each site and variable the 2 x 2 table (rounded, not) x (site, rest of the
    study) gives a two-sided p-value: Fisher's exact test when an expected count is below 5, else
    Pearson's chi-square. This complements ``digit_preference`` (which last
    digit) with a one-number summary that also catches rounding to 5.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; uses the numeric results of ``vs`` and ``lb``.
    variables : sequence of str, optional
        Names ``DOMAIN:CODE``; default every vs and lb variable.
    min_readings : int, default 50
        Readings a site (and the rest of the study) needs to be tested.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site and variable, test ``rounding``: ``statistic``
        the site's share of rounded readings, ``p_value`` two-sided, ``q_value`` BH across
        all rows, ``effect`` the site's share minus the rest's. Row-free without ``vs`` and ``lb``;
        variables with no recorded resolution, and variables whose readings are all rounded or none
        are, are not tested.

    See Also
    --------
    digit_preference, missingness, run_csm

    Examples
    --------
    >>> from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=5, subjects=200, countries=2, seed=2, anomalies=(
    ...     AnomalySpec(type="digit_preference", magnitude=0.8, sites=("1002",), start=0.0),))
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> out = rounding(derive_tables(tables, as_of=cfg.end), variables=("VS:SYSBP",)).sort("p_value")
    >>> out["site_id"][0], out["description"][0]  # doctest: +ELLIPSIS
    ('1002', 'Systolic BP is a multiple of 5 in ...% of ... readings at site 1002 vs ...% elsewhere')
    """
    caller = "rounding"
    check_analysis(analysis, caller)
    variables = check_variables(variables, caller)
    check_integer(min_readings, "min_readings", caller, low=1)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    values = measurements(analysis, variables)
    if values is None:
        return empty_findings()
    found = (values.join(rounding_units(values), on="variable")
             .group_by("variable", "site_id")
             .agg(n=pl.len().cast(pl.Int64), rounded=_multiple_of(pl.col("unit")).sum().cast(pl.Int64),
                  unit=pl.col("unit").first())
             .with_columns(total=pl.col("n").sum().over("variable"),
                           total_rounded=pl.col("rounded").sum().over("variable"))
             .filter((pl.col("n") >= min_readings) & (pl.col("total") - pl.col("n") >= min_readings)
                     & (pl.col("total_rounded") > 0) & (pl.col("total_rounded") < pl.col("total")))
             .with_columns(share=pl.col("rounded") / pl.col("n"),
                           rest_share=(pl.col("total_rounded") - pl.col("rounded"))
                           / (pl.col("total") - pl.col("n")))
             .collect())
    if found.height == 0:
        return empty_findings()
    p = two_by_two(*(found[c].to_numpy() for c in ("rounded", "n", "total_rounded", "total")))
    found = found.with_columns(statistic=pl.col("share"), p_value=pl.Series(p, dtype=pl.Float64),
                               effect=pl.col("share") - pl.col("rest_share"))
    labels = found["variable"].unique()
    name = pl.col("variable").replace_strict(labels, [label(v) for v in labels], return_dtype=pl.String)
    what = (pl.when(pl.col("unit") == 1).then(pl.lit("a whole number"))
            .when(pl.col("unit") >= 1).then(pl.format("a multiple of {}", pl.col("unit").cast(pl.Int64)))
            .otherwise(pl.format("a multiple of {}", pl.col("unit"))))
    found = found.with_columns(description=pl.format(
        "{} is {} in {}% of {} readings at site {} vs {}% elsewhere",
        name, what, percent(pl.col("share")), pl.col("n"), pl.col("site_id"), percent(pl.col("rest_share"))))
    return finish(found, test="rounding", study_id=study_id, cut_date=cut_date)
