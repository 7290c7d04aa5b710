"""Variance: how far a site's results spread around the site's own median, against comparable sites
(a Brown-Forsythe test on subject-level absolute deviations); too little spread suggests invented data."""

from __future__ import annotations

from datetime import date

import polars as pl

from rbqm.csm._contract import (
    check_analysis, check_integer, check_variables, empty_findings, finish, label, measurements, percent,
    study_stamp,
)
from rbqm.csm._means import two_sided_t, welch_versus_rest
from rbqm.csm._reference import (
    MIN_COUNTRY_SITES, MIN_COUNTRY_SUBJECTS, reference_phrase, site_countries, versus_rest,
)
from rbqm.derive import AnalysisTables

__all__ = ["subject_deviations", "variance"]


def subject_deviations(values: pl.LazyFrame) -> pl.LazyFrame:
    """One row per subject and variable: variable, site_id, USUBJID and ``d``, the mean absolute
    deviation of the subject's results from the median of its site's results of the variable (of log
    results for a variable whose results are all positive, so spread is relative and a calibration
    factor leaves it unchanged)."""
    y = pl.when(pl.col("positive")).then(pl.col("value").log()).otherwise(pl.col("value"))
    return (values.with_columns(positive=(pl.col("value") > 0).all().over("variable"))
            .with_columns(y=y)
            .with_columns(deviation=(pl.col("y") - pl.col("y").median().over("variable", "site_id")).abs())
            .group_by("variable", "site_id", "USUBJID").agg(d=pl.col("deviation").mean()))


def variance(analysis: AnalysisTables, *, variables: tuple[str, ...] | None = None, min_subjects: int = 5,
             min_country_sites: int = MIN_COUNTRY_SITES, min_country_subjects: int = MIN_COUNTRY_SUBJECTS,
             study_id: str | None = None, cut_date: date | None = None) -> pl.DataFrame:
    """Sites whose lab or vital-sign results spread too little (invented or copied data) or too much
    (measurement problems) around the site's own median, against comparable sites.

    A Brown-Forsythe test, site against its comparison group: each result's absolute deviation from
    its site's median is averaged per subject (:func:`subject_deviations`; subjects, not readings,
    are the independent units), and the square roots of the site's subject averages are compared
    with those of its comparison group by Welch's t (the square root makes these skewed averages
    near-normal, so the test holds for small sites). Each site is centred on its own median, so a
    site whose level is shifted (see ``mean_shift``) does not look more variable. The comparison group is the other sites
    of the site's country when the country has at least ``min_country_sites`` other sites with
    ``min_country_subjects`` subjects between them, else every other site; its sums follow by
    subtraction from country and study totals.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; uses the numeric results of ``vs`` and ``lb``.
    variables : sequence of str, optional
        Names ``DOMAIN:CODE``; default every vs and lb variable.
    min_subjects : int, default 5
        Subjects with a result a site (and its comparison group) needs to be tested.
    min_country_sites, min_country_subjects : int, default 5 and 50
        What a country needs, besides the site, to be the comparison group.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site and variable, test ``variance``: ``statistic``
        Welch's t of the square-rooted subject deviations (negative: the site is steadier), ``p_value`` two-sided,
        ``q_value`` BH across all rows, ``effect`` the log ratio of the mean deviations, site over
        comparison group (for normal data, the log ratio of SDs; negative = too regular). Row-free
        without ``vs`` and ``lb``; a variable constant at the site and in its comparison group is not
        tested.

    See Also
    --------
    mean_shift, low_variability, run_csm

    Examples
    --------
    >>> from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=6, subjects=400, countries=2, seed=2, anomalies=(
    ...     AnomalySpec(type="fabricated_subjects", magnitude=0.8, sites=("1003",), start=0.0),))
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> out = variance(derive_tables(tables, as_of=cfg.end), variables=("LB:K",)).sort("p_value")
    >>> out["site_id"][0], out["description"][0]  # doctest: +ELLIPSIS
    ('1003', 'Potassium results spread ...% less around the site median at site 1003 than elsewhere (... subjects)')
    """
    caller = "variance"
    check_analysis(analysis, caller)
    variables = check_variables(variables, caller)
    check_integer(min_subjects, "min_subjects", caller, low=2)
    check_integer(min_country_sites, "min_country_sites", caller, low=1)
    check_integer(min_country_subjects, "min_country_subjects", caller, low=2)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    values = measurements(analysis, variables)
    if values is None:
        return empty_findings()
    per_site = (subject_deviations(values).group_by("variable", "site_id")
                .agg(n=pl.len().cast(pl.Float64), s1=pl.col("d").sqrt().sum(), s2=pl.col("d").sum(),
                     d1=pl.col("d").sum())    # s1, s2 of sqrt(d); d1 for the effect
                .join(site_countries(analysis), on="site_id", how="left"))
    rest = versus_rest(per_site, count="n", sums=("s1", "s2", "d1"), min_country_sites=min_country_sites,
                       min_country_subjects=min_country_subjects)
    found = (welch_versus_rest(rest.filter((pl.col("n") >= min_subjects) & (pl.col("rest_n") >= min_subjects)))
             .filter((pl.col("se") > 0) & (pl.col("d1") > 0) & (pl.col("rest_d1") > 0))
             .with_columns(statistic=pl.col("t"),
                           effect=(pl.col("d1") / pl.col("n") / (pl.col("rest_d1") / pl.col("rest_n"))).log())
             .collect())
    if found.height == 0:
        return empty_findings()
    found = found.with_columns(two_sided_t(found))
    labels = found["variable"].unique()
    name = pl.col("variable").replace_strict(labels, [label(v) for v in labels], return_dtype=pl.String)
    ratio = pl.col("effect").exp()
    found = found.with_columns(description=pl.format(
        "{} results spread {}% {} around the site median at site {} than {} ({} subjects)",
        name, percent((ratio - 1).abs()), pl.when(pl.col("effect") < 0).then(pl.lit("less")).otherwise(
            pl.lit("more")), pl.col("site_id"), reference_phrase(), pl.col("n").cast(pl.Int64)))
    return finish(found, test="variance", study_id=study_id, cut_date=cut_date)
