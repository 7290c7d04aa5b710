"""Low within-subject variability (possible fabrication): subjects whose repeated measurements vary
too little from visit to visit, site against the rest of the study."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
from scipy.special import ndtri
from scipy.stats import hypergeom

from rbqm.csm._contract import (
    check_analysis, check_integer, check_variables, empty_findings, finish, measurements, percent,
    study_stamp,
)
from rbqm.derive import AnalysisTables
from rbqm.errors import RbqmError
from rbqm.stats import tie_safe

__all__ = ["low_variability", "subject_scores"]

#: Floor of a subject's SD relative to its stratum median (a subject with identical values at every
#: visit would otherwise have a log ratio of minus infinity).
_RATIO_FLOOR = 0.05
_KINDS = {"LB": "lab", "VS": "vital-sign"}


def _strata(counts: pl.DataFrame, min_stratum: int) -> pl.DataFrame:
    """Per variable, group the numbers of values into strata of at least ``min_stratum`` subjects.

    ``counts`` has variable, n (values per subject) and subjects (how many subjects have n values).
    Strata are runs of consecutive n, filled from the largest n down; a short last run joins the
    one before. Loops over the (few) distinct n of each variable, never over subjects.
    """
    out = []
    for (variable,), part in counts.sort(["variable", "n"], descending=[False, True]).group_by(
            "variable", maintain_order=True):
        sizes = part["subjects"].to_numpy()
        stratum = np.zeros(len(sizes), np.int64)
        current, filled = 0, 0
        for i, size in enumerate(sizes):
            if filled >= min_stratum:
                current, filled = current + 1, 0
            stratum[i], filled = current, filled + size
        if current > 0 and filled < min_stratum:
            stratum[stratum == current] = current - 1
        out.append(part.select("variable", "n").with_columns(stratum=stratum))
    return pl.concat(out)


def subject_scores(values: pl.LazyFrame, *, min_values: int = 3, min_variables: int = 3,
                   min_stratum: int = 30) -> pl.DataFrame:
    """How steady each subject's results are from visit to visit, against every other subject: the
    score :func:`low_variability` tests per site.

    For each subject and variable with at least ``min_values`` results, the SD of its results over
    visits (of log values for a variable whose results are all positive, so it is a relative SD).
    Subjects with as many results form strata (pooled to at least ``min_stratum`` subjects), which
    absorbs the dependence of the sample SD on the number of visits and on autocorrelation. Within a
    stratum the SD's mid-rank percentile gives a normal score, and its ratio to the stratum median a
    log ratio.

    Parameters
    ----------
    values : polars.LazyFrame
        ``site_id``, ``USUBJID``, ``variable`` and ``value``, one row per result, as
        :func:`rbqm.csm.measurements` returns them.
    min_values, min_variables, min_stratum
        Results a subject needs of a variable to be scored on it; variables a subject needs to be
        scored at all; subjects a stratum is pooled to.

    Returns
    -------
    polars.DataFrame
        One row per scored subject: ``site_id``, ``USUBJID``, ``variables`` (how many it is scored
        on), ``score`` = sum of the normal scores / sqrt(variables) (low = steadier than others) and
        ``log_ratio`` = mean log ratio of its SDs to the stratum medians (each floored at log 0.05).

    Examples
    --------
    >>> values = pl.LazyFrame({"site_id": "1", "USUBJID": ["S-1"] * 3 + ["S-2"] * 3, "variable": "VS:HR",
    ...                        "value": [70.0, 70.5, 69.5, 60.0, 80.0, 72.0]})
    >>> subject_scores(values, min_variables=1).sort("USUBJID").select("USUBJID", "score").rows()
    [('S-1', -0.6744897501960817), ('S-2', 0.6744897501960817)]
    """
    positive = values.group_by("variable").agg(positive=(pl.col("value") > 0).all())
    per = (values.join(positive, on="variable")
           .with_columns(y=pl.when("positive").then(pl.col("value").log()).otherwise("value"))
           .group_by("variable", "site_id", "USUBJID").agg(n=pl.len(), sd=pl.col("y").std())
           .filter(pl.col("n") >= min_values)
           .collect())
    if per.height == 0:
        return pl.DataFrame(schema={"site_id": pl.String, "USUBJID": pl.String, "variables": pl.Int64,
                                    "score": pl.Float64, "log_ratio": pl.Float64})
    strata = _strata(per.group_by("variable", "n").agg(subjects=pl.len()), min_stratum)
    within = ["variable", "stratum"]
    typical = pl.col("sd").median().over(within)
    per = per.join(strata, on=["variable", "n"]).with_columns(
        percentile=(tie_safe(pl.col("sd")).rank("average").over(within) - 0.5) / pl.len().over(within),
        log_ratio=pl.when(typical > 0)
        .then(pl.max_horizontal(pl.col("sd") / typical, pl.lit(_RATIO_FLOOR)).log()).otherwise(0.0),
    )
    per = per.with_columns(normal=pl.Series(ndtri(per["percentile"].to_numpy())))
    return (per.group_by("site_id", "USUBJID")
            .agg(variables=pl.len().cast(pl.Int64), score=pl.col("normal").sum() / pl.len().sqrt(),
                 log_ratio=pl.col("log_ratio").mean())
            .filter(pl.col("variables") >= min_variables))


def low_variability(analysis: AnalysisTables, *, variables: tuple[str, ...] | None = None,
                    steady_share: float = 0.05, min_values: int = 3, min_variables: int = 3,
                    min_subjects: int = 3, study_id: str | None = None,
                    cut_date: date | None = None) -> pl.DataFrame:
    """Sites with too many subjects whose lab and vital-sign results barely vary between visits
    (fabrication: invented data tend to be too smooth).

    Each subject gets a variability score over all its variables (:func:`subject_scores`: within-
    subject SDs ranked against subjects with as many results). "Steady" subjects are those scoring
    below the ``steady_share`` quantile of all subjects' scores. With N scored subjects in the
    study, K of them steady, and x of a site's n subjects steady, the p-value is the hypergeometric
    upper tail P(X >= x) (site labels exchangeable: an exact permutation test, conservative).

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; uses the numeric results of ``vs`` and ``lb``.
    variables : sequence of str, optional
        Names ``DOMAIN:CODE``; default every vs and lb variable.
    steady_share : float, default 0.05
        The study-wide share of subjects called steady (quantile of the subject scores).
    min_values : int, default 3
        Results a subject needs for a variable to enter its score.
    min_variables : int, default 3
        Variables a subject needs to be scored.
    min_subjects : int, default 3
        Scored subjects a site (and the rest of the study) needs to be tested.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site, test ``low_variability``, variable ``LB+VS``
        (or the one domain used): ``statistic`` the number of steady subjects at the site,
        ``p_value`` the hypergeometric tail, ``q_value`` BH across sites, ``effect`` the share of
        steady subjects at the site minus that elsewhere. Row-free without ``vs`` and ``lb``.

    See Also
    --------
    ae_under_reporting, digit_preference, run_csm

    Examples
    --------
    >>> from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=6, subjects=400, countries=2, seed=2, anomalies=(
    ...     AnomalySpec(type="fabricated_subjects", magnitude=0.8, sites=("1003",), start=0.0),))
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> analysis = derive_tables(tables, as_of=cfg.end)
    >>> out = low_variability(analysis).sort("p_value")
    >>> out["site_id"][0], out["description"][0]  # doctest: +ELLIPSIS
    ('1003', 'At site 1003, ... subjects (...%) have lab and vital-sign results steadier from visit...')
    """
    caller = "low_variability"
    check_analysis(analysis, caller)
    variables = check_variables(variables, caller)
    number = isinstance(steady_share, (int, float)) and not isinstance(steady_share, bool)
    if not number or not 0 < steady_share < 0.5:
        raise RbqmError(f"The 'steady_share' parameter of {caller} must be a number in (0, 0.5); "
                        f"got {steady_share!r} instead.")
    for name, value, low in (("min_values", min_values, 2), ("min_variables", min_variables, 1),
                             ("min_subjects", min_subjects, 1)):
        check_integer(value, name, caller, low=low)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    values = measurements(analysis, variables)
    if values is None:
        return empty_findings()
    scores = subject_scores(values, min_values=min_values, min_variables=min_variables)
    if scores.height == 0:
        return empty_findings()
    domains = sorted(values.select(pl.col("variable").str.split(":").list.first().unique())
                     .collect().to_series())
    total = scores.height
    scores = scores.with_columns(steady=pl.col("score") < pl.col("score").quantile(steady_share))
    steady_total = int(scores["steady"].sum())
    per_site = (scores.group_by("site_id")
                .agg(n=pl.len().cast(pl.Int64), x=pl.col("steady").sum().cast(pl.Int64),
                     ratio=pl.col("log_ratio").filter("steady").median().exp())
                .filter((pl.col("n") >= min_subjects) & (total - pl.col("n") >= min_subjects)))
    n, x = per_site["n"].to_numpy(), per_site["x"].to_numpy()
    found = per_site.with_columns(
        variable=pl.lit("+".join(domains)), statistic=pl.col("x").cast(pl.Float64),
        p_value=hypergeom.sf(x - 1, total, steady_total, n),
        effect=x / n - (steady_total - x) / (total - n),
        elsewhere=(steady_total - x) / (total - n),
    )
    how_much = pl.when(pl.col("x") > 0).then(pl.format(
        "; theirs vary {}% less than typical", percent(1 - pl.col("ratio")))
    ).otherwise(pl.lit(""))
    found = found.with_columns(description=pl.format(
        "At site {}, {} of {} subjects ({}%) have {} results steadier from visit to visit than {}% of "
        "subjects in the study ({}% elsewhere){}",
        pl.col("site_id"), pl.col("x"), pl.col("n"), percent(pl.col("x") / pl.col("n")),
        pl.lit(" and ".join(_KINDS.get(d, d) for d in domains)), pl.lit(round(100 * (1 - steady_share))),
        percent(pl.col("elsewhere")), how_much))
    return finish(found, test="low_variability", study_id=study_id, cut_date=cut_date)
