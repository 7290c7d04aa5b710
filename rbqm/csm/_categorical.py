"""Proportions: the distribution of a site's categorical values (AE severity, grade, seriousness and
causality; disposition reasons) against the rest of the study, by chi-square or, for small tables,
Fisher's exact test per category."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

import numpy as np
import polars as pl
from scipy.stats import chi2 as chi2_dist

from rbqm.csm._contract import (
    MIN_EXPECTED, check_analysis, check_integer, empty_findings, finish, percent, study_stamp, two_by_two,
)
from rbqm.derive import AnalysisTables

__all__ = ["CATEGORICAL", "categories", "proportions"]


class Categorical(NamedTuple):
    """A categorical variable: its table and column, and how descriptions name it."""

    table: str
    column: str
    label: str
    prefix: str  # put before a category in descriptions ("grade " + "3")
    unit: str


#: The categorical variables tested (each when its table has the column with values).
CATEGORICAL: dict[str, Categorical] = {
    "AE:AESEV": Categorical("ae", "AESEV", "AE severity", "", "AEs"),
    "AE:AETOXGR": Categorical("ae", "AETOXGR", "AE toxicity grade", "grade ", "AEs"),
    "AE:AESER": Categorical("ae", "AESER", "AE seriousness", "AESER = ", "AEs"),
    "AE:AEREL": Categorical("ae", "AEREL", "AE causality", "", "AEs"),
}
#: Disposition events (DSCAT), one variable per subcategory (DSSCAT): reasons for ending the study,
#: the treatment, ... are compared separately, among subjects who ended early (the share completed
#: depends mostly on when a site started enrolling).
_DISPOSITION = "DISPOSITION EVENT"
_NOT_A_REASON = ("COMPLETED",)


def categories(analysis: AnalysisTables) -> pl.LazyFrame | None:
    """One row per categorical value: site_id, variable, label, prefix, unit and category (String).

    The ``CATEGORICAL`` columns of ``ae`` and DSDECOD of ``ds`` disposition events other than
    COMPLETED (the reasons for ending early), as variable ``DS:DSDECOD (<DSSCAT>)`` (``DS:DSDECOD``
    without a subcategory). Empty values are left out. None
    when the study has none of them.
    """
    parts = []
    for variable, spec in CATEGORICAL.items():
        if spec.table in analysis and spec.column in analysis[spec.table].collect_schema().names():
            parts.append(analysis.with_sites(spec.table).select(
                site_id=pl.col("SITEID").cast(pl.String), variable=pl.lit(variable), label=pl.lit(spec.label),
                prefix=pl.lit(spec.prefix), unit=pl.lit(spec.unit), category=pl.col(spec.column).cast(pl.String)))
    if "ds" in analysis and "DSDECOD" in analysis["ds"].collect_schema().names():
        ds = analysis.with_sites("ds")
        names = ds.collect_schema().names()
        subcategory = pl.col("DSSCAT").cast(pl.String) if "DSSCAT" in names else pl.lit(None, pl.String)
        keep = pl.col("DSCAT").is_null() | (pl.col("DSCAT") == _DISPOSITION) if "DSCAT" in names else pl.lit(True)
        keep = keep & ~pl.col("DSDECOD").is_in(_NOT_A_REASON)
        parts.append(ds.filter(keep).select(
            site_id=pl.col("SITEID").cast(pl.String),
            variable=pl.when(subcategory.is_null()).then(pl.lit("DS:DSDECOD"))
            .otherwise(pl.format("DS:DSDECOD ({})", subcategory)),
            label=pl.when(subcategory.is_null()).then(pl.lit("Disposition"))
            .otherwise(pl.format("Disposition ({})", subcategory.str.to_lowercase())),
            prefix=pl.lit(""), unit=pl.lit("disposition events"), category=pl.col("DSDECOD").cast(pl.String)))
    if not parts:
        return None
    return pl.concat(parts).filter(pl.col("site_id").is_not_null() & pl.col("category").is_not_null())


def proportions(analysis: AnalysisTables, *, min_records: int = 10, study_id: str | None = None,
                cut_date: date | None = None) -> pl.DataFrame:
    """Sites whose AEs are graded, called serious or related, or whose subjects leave the study for
    reasons, in proportions unlike the rest of the study.

    For each categorical variable (:func:`categories`) and site, the 2 x k table of category counts
    (site, rest of the study; k categories seen in the study) gives Pearson's chi-square with k - 1
    degrees of freedom. When an expected count is below 5, the p-value is instead the smallest of
    the k two-sided tests of one category against the others, times k (Bonferroni; a single test
    when k = 2), each Fisher's exact test when its own 2 x 2 table has an expected count below 5
    (else Pearson's chi-square): this stays valid for small sites. Records (AEs, disposition events)
    are counted as independent.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; uses ``ae`` (AESEV, AETOXGR, AESER, AEREL when present)
        and ``ds`` (DSDECOD of disposition events, per DSSCAT).
    min_records : int, default 10
        Records a site (and the rest of the study) needs to be tested for a variable.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site and variable, test ``proportions``:
        ``statistic`` Pearson's chi-square, ``p_value`` as above, ``q_value`` BH across all rows,
        ``effect`` the site's share minus the rest's for the category where they differ most (named
        in the description). Row-free without ``ae`` and ``ds``; a variable with a single category
        is not tested.

    See Also
    --------
    ae_under_reporting, missingness, run_csm

    Examples
    --------
    >>> from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=6, subjects=400, countries=2, seed=2, anomalies=(
    ...     AnomalySpec(type="sae_under_reporting", magnitude=1.0, sites=("1003",), start=0.0),))
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> out = proportions(derive_tables(tables, as_of=cfg.end)).filter(pl.col("variable") == "AE:AESER")
    >>> out.sort("p_value")["description"][0]  # doctest: +ELLIPSIS
    'AE seriousness at site 1003: AESER = N in ...% of ... AEs vs ...% elsewhere (chi-square ...; 2 categories)'
    """
    caller = "proportions"
    check_analysis(analysis, caller)
    check_integer(min_records, "min_records", caller, low=1)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    records = categories(analysis)
    if records is None:
        return empty_findings()
    counts = records.group_by("variable", "site_id", "category").agg(
        x=pl.len().cast(pl.Int64), label=pl.first("label"), prefix=pl.first("prefix"), unit=pl.first("unit"))
    names = counts.group_by("variable").agg(pl.first("label"), pl.first("prefix"), pl.first("unit"))
    sites = counts.select("variable", "site_id").unique()
    seen = counts.select("variable", "category").unique()
    grid = (sites.join(seen, on="variable")            # every category at every site, zeros included
            .join(counts.select("variable", "site_id", "category", "x"), on=["variable", "site_id", "category"],
                  how="left")
            .with_columns(pl.col("x").fill_null(0))
            .with_columns(n=pl.col("x").sum().over("variable", "site_id"),
                          column=pl.col("x").sum().over("variable", "category"),
                          total=pl.col("x").sum().over("variable"),
                          k=pl.len().over("variable", "site_id"))
            .filter((pl.col("k") >= 2) & (pl.col("n") >= min_records) & (pl.col("total") - pl.col("n") >= min_records))
            .with_columns(expected=pl.col("n") * pl.col("column") / pl.col("total"),
                          rest_expected=(pl.col("total") - pl.col("n")) * pl.col("column") / pl.col("total"),
                          share=pl.col("x") / pl.col("n"),
                          rest_share=(pl.col("column") - pl.col("x")) / (pl.col("total") - pl.col("n")))
            .with_columns(small=(pl.min_horizontal("expected", "rest_expected") < MIN_EXPECTED)
                          .any().over("variable", "site_id"))
            .collect())
    if grid.height == 0:
        return empty_findings()
    rest_x = (grid["column"] - grid["x"]).to_numpy()
    small = grid["small"].to_numpy()
    fisher = np.ones(grid.height)                     # one category against the others: small tables only
    fisher[small] = two_by_two(*(grid[c].to_numpy()[small] for c in ("x", "n", "column", "total")))
    with np.errstate(divide="ignore", invalid="ignore"):
        cells = ((grid["x"] - grid["expected"]) ** 2 / grid["expected"]
                 + (rest_x - grid["rest_expected"]) ** 2 / grid["rest_expected"])
    difference = pl.col("share") - pl.col("rest_share")

    def most_different(column: pl.Expr) -> pl.Expr:   # ties (two categories) go to the first category
        return column.sort_by([difference.abs().round(12), pl.col("category")], descending=[True, False]).first()

    found = (grid.with_columns(cell=cells, fisher=fisher)
             .group_by("variable", "site_id")
             .agg(statistic=pl.col("cell").sum(), k=pl.first("k"), n=pl.first("n"),
                  small=pl.first("small"),
                  fisher=pl.col("fisher").min(),
                  category=most_different(pl.col("category")), share=most_different(pl.col("share")),
                  rest_share=most_different(pl.col("rest_share")), effect=most_different(difference))
             .join(names.collect(), on="variable"))
    chi2_p = chi2_dist.sf(found["statistic"].to_numpy(), found["k"].to_numpy() - 1)
    bonferroni = np.where(found["k"].to_numpy() > 2, found["k"].to_numpy(), 1)
    fisher_p = np.minimum(1.0, found["fisher"].to_numpy() * bonferroni)
    found = found.with_columns(p_value=pl.Series(np.where(found["small"].to_numpy(), fisher_p, chi2_p),
                                                 dtype=pl.Float64))
    found = found.with_columns(description=pl.format(
        "{} at site {}: {}{} in {}% of {} {} vs {}% elsewhere (chi-square {}; {} categories)",
        pl.col("label"), pl.col("site_id"), pl.col("prefix"), pl.col("category"), percent(pl.col("share")),
        pl.col("n"), pl.col("unit"), percent(pl.col("rest_share")), pl.col("statistic").round(1), pl.col("k")))
    return finish(found, test="proportions", study_id=study_id, cut_date=cut_date)
