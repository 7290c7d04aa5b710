"""Missingness: the share of planned lab and vital-sign results that a site left empty, against the
rest of the study (Fisher's exact test)."""

from __future__ import annotations

from datetime import date

import polars as pl

from rbqm.csm._contract import (
    DOMAINS, check_analysis, check_integer, check_variables, empty_findings, finish, label, percent,
    study_stamp, two_by_two,
)
from rbqm.derive import AnalysisTables

__all__ = ["missingness", "planned_results"]

#: A variable is planned at a visit when the study has a record of it (empty or not) for at least this
#: share of the subject-visits of its domain at that visit.
_PLANNED_SHARE = 0.5


def planned_results(analysis: AnalysisTables, variables: tuple[str, ...] | None) -> pl.LazyFrame | None:
    """Per variable and site: ``planned`` results and ``missing`` ones among them.

    A subject-visit of a domain is a (subject, VISITNUM) with at least one record in its table (vs or
    lb). A variable is planned at a visit when at least half of the study's subject-visits of its
    domain at that visit have a record of it; each subject-visit then plans one result, missing when
    the record is absent or its numeric result is empty. Results at visits where the variable is not
    planned are ignored. None when the study has neither table.
    """
    parts = []
    for domain, (table, code, value) in DOMAINS.items():
        wanted = variables is None or any(v.startswith(domain + ":") for v in variables)
        if table not in analysis or not wanted:
            continue
        records = analysis.with_sites(table).select(
            site_id=pl.col("SITEID").cast(pl.String), USUBJID=pl.col("USUBJID"),
            VISITNUM=pl.col("VISITNUM").cast(pl.Float64),
            variable=pl.concat_str(pl.lit(domain + ":"), pl.col(code)),
            present=pl.col(value).cast(pl.Float64).is_finite().fill_null(False),
        ).filter(pl.col("site_id").is_not_null() & pl.col("VISITNUM").is_not_null()
                 & pl.col("variable").is_not_null())
        visits = records.select("site_id", "USUBJID", "VISITNUM").unique()
        at_site = visits.group_by("site_id", "VISITNUM").agg(site_visits=pl.len())
        in_study = visits.group_by("VISITNUM").agg(study_visits=pl.len())
        if variables is not None:
            records = records.filter(pl.col("variable").is_in(variables))
        per_visit = records.group_by("variable", "site_id", "VISITNUM").agg(  # one record per key (ingest)
            recorded=pl.len(), present=pl.col("present").sum())
        planned = (per_visit.group_by("variable", "VISITNUM").agg(pl.col("recorded").sum())
                   .join(in_study, on="VISITNUM")
                   .filter(pl.col("recorded") >= _PLANNED_SHARE * pl.col("study_visits"))
                   .select("variable", "VISITNUM"))
        parts.append(
            planned.join(at_site, on="VISITNUM")
            .join(per_visit, on=["variable", "site_id", "VISITNUM"], how="left")
            .group_by("variable", "site_id")
            .agg(planned=pl.col("site_visits").sum().cast(pl.Int64),
                 present=pl.col("present").fill_null(0).sum().cast(pl.Int64))
            .select("variable", "site_id", "planned",
                    missing=(pl.col("planned") - pl.col("present")).clip(lower_bound=0)))
    return pl.concat(parts) if parts else None


def missingness(analysis: AnalysisTables, *, variables: tuple[str, ...] | None = None, min_planned: int = 20,
                study_id: str | None = None, cut_date: date | None = None) -> pl.DataFrame:
    """Sites that leave more (or fewer) of the planned lab and vital-sign results empty than the rest
    of the study.

    Planned results are counted per subject-visit of each domain (:func:`planned_results`): a visit
    whose form or panel was entered plans every variable the study collects at that visit, and a
    result is missing when its record is absent or empty. Visits that did not happen, and forms not
    entered at all, are the business of the visit and data-entry KRIs. For each site and variable, the
    2 x 2 table (missing, present) x (site, rest of the study) gives a two-sided p-value: Fisher's
    exact test (as ``rbqm.stats.fisher``) when an expected count is below 5, else Pearson's
    chi-square, vectorised over sites and variables.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; uses the records of ``vs`` and ``lb``, empty results
        included.
    variables : sequence of str, optional
        Names ``DOMAIN:CODE``; default every vs and lb variable.
    min_planned : int, default 20
        Planned results a site (and the rest of the study) needs to be tested.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site and variable, test ``missingness``:
        ``statistic`` the site's share of missing results, ``p_value`` two-sided,
        ``q_value`` BH across all rows, ``effect`` the site's share minus the rest's. Row-free without
        ``vs`` and ``lb``; a variable with no missing result in the study is not tested.

    See Also
    --------
    rounding, digit_preference, run_csm

    Examples
    --------
    >>> import polars as pl
    >>> from datetime import date
    >>> from rbqm.derive import derive_tables
    >>> dm = pl.DataFrame({"STUDYID": "S", "USUBJID": [f"S-{i}" for i in range(40)],
    ...                    "SITEID": ["A"] * 20 + ["B"] * 20, "COUNTRY": "FRA", "ARMCD": "X",
    ...                    "RFSTDTC": "2024-01-01"})
    >>> vs = pl.DataFrame({"USUBJID": [f"S-{i}" for i in range(40)], "VSTESTCD": "HR", "VISITNUM": 1.0,
    ...                    "VSDTC": "2024-01-02", "VSSTRESN": [None] * 8 + [70.0] * 32})
    >>> out = missingness(derive_tables({"dm": dm, "vs": vs}, as_of=date(2024, 2, 1)))
    >>> out.filter(pl.col("site_id") == "A")["description"].item()
    'Heart rate is missing for 40% of 20 planned results at site A vs 0% elsewhere (8 missing)'
    """
    caller = "missingness"
    check_analysis(analysis, caller)
    variables = check_variables(variables, caller)
    check_integer(min_planned, "min_planned", caller, low=1)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    counts = planned_results(analysis, variables)
    if counts is None:
        return empty_findings()
    found = (counts.with_columns(total=pl.col("planned").sum().over("variable"),
                                 total_missing=pl.col("missing").sum().over("variable"))
             .filter((pl.col("total_missing") > 0) & (pl.col("planned") >= min_planned)
                     & (pl.col("total") - pl.col("planned") >= min_planned))
             .with_columns(share=pl.col("missing") / pl.col("planned"),
                           rest_share=(pl.col("total_missing") - pl.col("missing"))
                           / (pl.col("total") - pl.col("planned")))
             .collect())
    if found.height == 0:
        return empty_findings()
    p = two_by_two(*(found[c].to_numpy() for c in ("missing", "planned", "total_missing", "total")))
    found = found.with_columns(statistic=pl.col("share"), p_value=pl.Series(p, dtype=pl.Float64),
                               effect=pl.col("share") - pl.col("rest_share"))
    labels = found["variable"].unique()
    name = pl.col("variable").replace_strict(labels, [label(v) for v in labels], return_dtype=pl.String)
    found = found.with_columns(description=pl.format(
        "{} is missing for {}% of {} planned results at site {} vs {}% elsewhere ({} missing)",
        name, percent(pl.col("share")), pl.col("planned"), pl.col("site_id"), percent(pl.col("rest_share")),
        pl.col("missing")))
    return finish(found, test="missingness", study_id=study_id, cut_date=cut_date)
