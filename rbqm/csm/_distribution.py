"""Distribution: the two-sample Kolmogorov-Smirnov test of a site's subject-level means of a measurement
against those of every other site, from one ranking of the study per variable."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
from scipy.stats import kstwo

from rbqm.csm._contract import (
    check_analysis, check_integer, check_variables, empty_findings, finish, label, measurements, percent,
    shown, study_stamp,
)
from rbqm.derive import AnalysisTables
from rbqm.stats import tie_safe

__all__ = ["distribution", "ks_distances"]


def ks_distances(means: pl.LazyFrame) -> pl.LazyFrame:
    """The Kolmogorov-Smirnov distance of each site's values from every other site's, per variable.

    ``means`` has one row per value: variable, site_id and ``m``. Each variable's values are ranked
    once: with A(x) the number of values <= x and S(x) the site's, the other sites' ECDF is
    (A(x) - S(x)) / (N - n). Between two of the site's values the site's ECDF is flat and the other
    sites' rises, so the largest gap lies at a site value x, either at x or just below it; both are
    evaluated, using ranks within the site only.

    Returns one row per (variable, site_id): ``n``, ``rest_n``, ``D`` (the distance), ``at`` (the
    value where the largest gap lies), ``below`` (True: the gap is just below ``at``, i.e. for values
    < at; False: for values <= at), ``site_share`` and ``rest_share`` (the two ECDFs there).
    """
    per_variable, per_site = ["variable"], ["variable", "site_id"]
    n, total = pl.len().over(per_site), pl.len().over(per_variable)
    m = tie_safe(pl.col("m"))  # subject means equal in exact arithmetic must tie in every run
    site_le, site_lt = m.rank("max").over(per_site), m.rank("min").over(per_site) - 1
    all_le, all_lt = m.rank("max").over(per_variable), m.rank("min").over(per_variable) - 1
    rest = total - n
    ranked = means.with_columns(
        n=n, rest_n=rest,
        share_le=site_le / n, rest_le=(all_le - site_le) / rest,
        share_lt=site_lt / n, rest_lt=(all_lt - site_lt) / rest,
    ).filter(pl.col("rest_n") > 0).with_columns(
        below=(pl.col("share_lt") - pl.col("rest_lt")).abs() > (pl.col("share_le") - pl.col("rest_le")).abs())
    ranked = ranked.with_columns(
        site_share=pl.when("below").then("share_lt").otherwise("share_le"),
        rest_share=pl.when("below").then("rest_lt").otherwise("rest_le"),
    ).with_columns(gap=(pl.col("site_share") - pl.col("rest_share")).abs())
    best = tie_safe(pl.col("gap")).arg_max()  # among equal gaps, the smallest value (sorted below)
    return ranked.sort("variable", "site_id", "m").group_by(per_site).agg(
        n=pl.col("n").first(), rest_n=pl.col("rest_n").first(), D=pl.col("gap").max(),
        at=pl.col("m").get(best), below=pl.col("below").get(best),
        site_share=pl.col("site_share").get(best), rest_share=pl.col("rest_share").get(best),
    )


def distribution(analysis: AnalysisTables, *, variables: tuple[str, ...] | None = None, min_subjects: int = 5,
                 study_id: str | None = None, cut_date: date | None = None) -> pl.DataFrame:
    """Sites whose subjects' lab or vital-sign levels are distributed unlike those of every other site
    (a shifted, narrowed, truncated or bimodal distribution), by the two-sample Kolmogorov-Smirnov test.

    Each subject contributes the mean of its results of the variable (subjects are the independent
    units). The site's subject means are compared with those of every other site
    (:func:`ks_distances`). The p-value is Smirnov's asymptotic one as in ``scipy.stats.ks_2samp``
    (``method="asymp"``): ``kstwo.sf(D, round(n m / (n + m)))``; ties make it conservative.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; uses the numeric results of ``vs`` and ``lb``.
    variables : sequence of str, optional
        Names ``DOMAIN:CODE``; default every vs and lb variable.
    min_subjects : int, default 5
        Subjects with a result a site (and the rest of the study) needs to be tested.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site and variable, test ``distribution``:
        ``statistic`` the distance D (the largest gap between the two ECDFs), ``p_value``,
        ``q_value`` BH across all rows, ``effect`` the other sites' ECDF minus the site's where the
        gap is largest (positive: the site's values are higher). Row-free without ``vs`` and ``lb``;
        a variable with a single value in the study is not tested.

    See Also
    --------
    mean_shift, variance, run_csm

    Examples
    --------
    >>> from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=6, subjects=300, countries=2, seed=2, anomalies=(
    ...     AnomalySpec(type="lab_calibration_shift", magnitude=0.3, sites=("1003",), start=0.0),))
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> out = distribution(derive_tables(tables, as_of=cfg.end), variables=("LB:CREAT",)).sort("p_value")
    >>> out["site_id"][0], out["description"][0]  # doctest: +ELLIPSIS
    ('1003', 'Creatinine: ...% of subjects at site 1003 average ... vs ...% elsewhere (Kolmogorov-Smirnov distance ...)')
    """
    caller = "distribution"
    check_analysis(analysis, caller)
    variables = check_variables(variables, caller)
    check_integer(min_subjects, "min_subjects", caller, low=1)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    values = measurements(analysis, variables)
    if values is None:
        return empty_findings()
    means = (values.group_by("variable", "site_id", "USUBJID").agg(m=pl.col("value").mean())
             .filter(pl.col("m").n_unique().over("variable") > 1))
    spread = means.group_by("variable").agg(spread=pl.col("m").std())
    found = (ks_distances(means)
             .filter((pl.col("n") >= min_subjects) & (pl.col("rest_n") >= min_subjects))
             .join(spread, on="variable")
             .collect())
    if found.height == 0:
        return empty_findings()
    n, m = found["n"].to_numpy().astype(float), found["rest_n"].to_numpy().astype(float)
    found = found.with_columns(
        statistic=pl.col("D"),
        p_value=pl.Series(np.clip(kstwo.sf(found["D"].to_numpy(), np.round(n * m / (n + m))), 0.0, 1.0)),
        effect=pl.col("rest_share") - pl.col("site_share"),
    )
    labels = found["variable"].unique()
    name = pl.col("variable").replace_strict(labels, [label(v) for v in labels], return_dtype=pl.String)
    found = found.with_columns(description=pl.format(
        "{}: {}% of subjects at site {} average {} {} vs {}% elsewhere (Kolmogorov-Smirnov distance {}; {} "
        "subjects)",
        name, percent(pl.col("site_share")), pl.col("site_id"),
        pl.when("below").then(pl.lit("below")).otherwise(pl.lit("at most")),
        shown(pl.col("at"), scale=pl.col("spread")), percent(pl.col("rest_share")), pl.col("D").round(2),
        pl.col("n")))
    return finish(found, test="distribution", study_id=study_id, cut_date=cut_date)
