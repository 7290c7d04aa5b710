"""Mean shift: a site's subject-level means of a measurement against those of its comparison group
(the other sites of its country, or the rest of the study), by Welch's t."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
from scipy.stats import t as t_dist

from rbqm.csm._contract import (
    check_analysis, check_integer, check_variables, empty_findings, finish, label, measurements, shown,
    study_stamp,
)
from rbqm.csm._reference import (
    MIN_COUNTRY_SITES, MIN_COUNTRY_SUBJECTS, reference_phrase, site_countries, versus_rest,
)
from rbqm.derive import AnalysisTables

__all__ = ["mean_shift", "two_sided_t", "welch_versus_rest"]


def welch_versus_rest(per_site: pl.LazyFrame) -> pl.LazyFrame:
    """Welch's t of each site against its comparison group from counts, sums and sums of squares.

    ``per_site`` has ``n``, ``s1``, ``s2`` (the site's count, sum and sum of squares) and the same of
    the comparison group as ``rest_n``, ``rest_s1``, ``rest_s2``. Adds ``mean``, ``var`` (n - 1
    divisor), ``rest_mean``, ``rest_var``, ``t`` (site minus group), ``df`` (Welch-Satterthwaite) and
    ``se`` (0 when both groups are constant: then ``t`` is not a number).
    """
    def moments(prefix: str) -> dict[str, pl.Expr]:
        n, s1, s2 = (pl.col(f"{prefix}{c}") for c in ("n", "s1", "s2"))
        return {f"{prefix}mean": s1 / n, f"{prefix}var": ((s2 - s1**2 / n) / (n - 1)).clip(lower_bound=0.0)}

    v1, v2 = pl.col("var") / pl.col("n"), pl.col("rest_var") / pl.col("rest_n")
    return per_site.with_columns(**moments(""), **moments("rest_")).with_columns(
        t=(pl.col("mean") - pl.col("rest_mean")) / (v1 + v2).sqrt(),
        df=(v1 + v2) ** 2 / (v1**2 / (pl.col("n") - 1) + v2**2 / (pl.col("rest_n") - 1)),
        se=(v1 + v2).sqrt(),
    )


def two_sided_t(found: pl.DataFrame) -> pl.Series:
    """``p_value``: the two-sided p-value of the ``t`` and ``df`` columns of ``found``."""
    return pl.Series("p_value", 2 * t_dist.sf(np.abs(found["t"].to_numpy()), found["df"].to_numpy()),
                     dtype=pl.Float64)


def mean_shift(analysis: AnalysisTables, *, variables: tuple[str, ...] | None = None, min_subjects: int = 5,
               min_country_sites: int = MIN_COUNTRY_SITES, min_country_subjects: int = MIN_COUNTRY_SUBJECTS,
               study_id: str | None = None, cut_date: date | None = None) -> pl.DataFrame:
    """Sites whose subjects' average lab or vital-sign results are shifted against comparable sites
    (miscalibrated equipment, a local lab, a wrong unit, data invented around the wrong value).

    Each subject contributes the mean of its results of the variable (so subjects with many visits
    do not dominate, and subjects are the independent units); for a variable whose results are all
    positive the test uses the log of these means (lab results are skewed; the t-test is then well
    calibrated for small sites). A site's subjects are compared with those of its comparison group
    by Welch's t: the other sites of its country when the country has at least ``min_country_sites``
    other sites with ``min_country_subjects`` subjects between them (differences between countries
    are then not flagged), else every other site of the study. Counts, sums and sums of squares are
    computed once per site, country and variable; the comparison group's follow by subtraction.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; uses the numeric results of ``vs`` and ``lb``.
    variables : sequence of str, optional
        Names ``DOMAIN:CODE`` such as ``"LB:CREAT"``; default every vs and lb variable.
    min_subjects : int, default 5
        Subjects with a result a site (and its comparison group) needs to be tested.
    min_country_sites, min_country_subjects : int, default 5 and 50
        What a country needs, besides the site, to be the comparison group.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site and variable, test ``mean_shift``: ``statistic``
        Welch's t (positive: the site is higher), ``p_value`` two-sided, ``q_value`` BH across all
        rows, ``effect`` the difference of means in SDs of the comparison group's subject means (on
        the log scale for positive variables). Row-free without ``vs`` and ``lb``; a variable
        constant at the site and in its comparison group is not tested.

    See Also
    --------
    variance, distribution, run_csm

    Examples
    --------
    >>> from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=6, subjects=300, countries=2, seed=2, anomalies=(
    ...     AnomalySpec(type="lab_calibration_shift", magnitude=0.2, sites=("1003",), start=0.0),))
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> out = mean_shift(derive_tables(tables, as_of=cfg.end), variables=("LB:CREAT",)).sort("p_value")
    >>> out["site_id"][0], out["description"][0]  # doctest: +ELLIPSIS
    ('1003', 'Creatinine averages ... at site 1003 vs ... elsewhere (... SD higher; subject means of ... subjects)')
    """
    caller = "mean_shift"
    check_analysis(analysis, caller)
    variables = check_variables(variables, caller)
    check_integer(min_subjects, "min_subjects", caller, low=2)
    check_integer(min_country_sites, "min_country_sites", caller, low=1)
    check_integer(min_country_subjects, "min_country_subjects", caller, low=2)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    values = measurements(analysis, variables)
    if values is None:
        return empty_findings()
    subjects = (values.group_by("variable", "site_id", "USUBJID").agg(m=pl.col("value").mean())
                .with_columns(positive=(pl.col("m") > 0).all().over("variable"),
                              spread=pl.col("m").std().over("variable"))
                .with_columns(y=pl.when("positive").then(pl.col("m").log()).otherwise("m"))
                .with_columns(y=pl.col("y") - pl.col("y").mean().over("variable")))  # centred: precise sums
    per_site = (subjects.group_by("variable", "site_id")
                .agg(n=pl.len().cast(pl.Float64), s1=pl.col("y").sum(), s2=(pl.col("y") ** 2).sum(),
                     m1=pl.col("m").sum(), spread=pl.col("spread").first())
                .join(site_countries(analysis), on="site_id", how="left"))
    rest = versus_rest(per_site, count="n", sums=("s1", "s2", "m1"), min_country_sites=min_country_sites,
                       min_country_subjects=min_country_subjects)
    yardstick = pl.when(pl.col("rest_var") > 0).then(pl.col("rest_var")).otherwise(pl.col("var")).sqrt()
    found = (welch_versus_rest(rest.filter((pl.col("n") >= min_subjects) & (pl.col("rest_n") >= min_subjects)))
             .filter(pl.col("se") > 0)
             .with_columns(statistic=pl.col("t"), effect=(pl.col("mean") - pl.col("rest_mean")) / yardstick)
             .collect())
    if found.height == 0:
        return empty_findings()
    found = found.with_columns(two_sided_t(found))
    labels = found["variable"].unique()
    name = pl.col("variable").replace_strict(labels, [label(v) for v in labels], return_dtype=pl.String)
    level = {"scale": pl.col("spread")}
    found = found.with_columns(description=pl.format(
        "{} averages {} at site {} vs {} {} ({} SD {}; subject means of {} subjects)",
        name, shown(pl.col("m1") / pl.col("n"), **level), pl.col("site_id"),
        shown(pl.col("rest_m1") / pl.col("rest_n"), **level), reference_phrase(),
        pl.col("effect").abs().round(1),
        pl.when(pl.col("effect") > 0).then(pl.lit("higher")).otherwise(pl.lit("lower")),
        pl.col("n").cast(pl.Int64)))
    return finish(found, test="mean_shift", study_id=study_id, cut_date=cut_date)
