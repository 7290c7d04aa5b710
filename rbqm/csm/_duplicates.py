"""Duplicated data: whole visit records repeated value for value, and readings that repeat the
subject's previous reading exactly, site against the rest of the study (copied or carried-forward data)."""

from __future__ import annotations

from datetime import date

import polars as pl

from rbqm.csm._contract import (
    check_analysis, check_integer, check_variables, empty_findings, excess_versus_rest, finish, label,
    measurements, percent, study_stamp,
)
from rbqm.derive import AnalysisTables

__all__ = ["duplicate_records", "duplicates", "repeated_readings"]

_KINDS = {"LB": "lab", "VS": "vital-sign"}


def duplicate_records(values: pl.LazyFrame, *, min_values: int = 3) -> pl.LazyFrame:
    """Per site and domain: ``n`` visit records and ``x`` of them duplicated.

    A record is one subject's results of one domain at one visit with at least ``min_values``
    results (fewer coincide by chance too easily); it is duplicated when another record of the same
    site and domain (another subject, or another visit) has exactly the same tests and values.
    Records are compared by the number of results and the sum of the 64-bit hashes of their
    (test, value) pairs, which does not depend on the order of the results (two different records
    collide with probability about 2^-64). Columns: site_id, variable (the domain, ``VS`` or ``LB``),
    n, x.
    """
    records = (values.with_columns(domain=pl.col("variable").str.split(":").list.first(),
                                   pair=pl.struct("variable", "value").hash(seed=0))
               .group_by("site_id", "domain", "USUBJID", "VISITNUM")
               .agg(results=pl.len(), key=pl.col("pair").sum())
               .filter(pl.col("results") >= min_values))
    return (records.with_columns(copies=pl.len().over("site_id", "domain", "results", "key"))
            .group_by("site_id", variable=pl.col("domain"))
            .agg(n=pl.len().cast(pl.Int64), x=(pl.col("copies") > 1).sum().cast(pl.Int64)))


def repeated_readings(values: pl.LazyFrame) -> pl.LazyFrame:
    """Per site and variable: ``n`` readings that follow an earlier reading of the same subject and
    ``x`` of them exactly equal to the subject's previous reading (by VISITNUM).

    Columns: site_id, variable, n, x.
    """
    series = pl.struct("USUBJID", "variable").hash(seed=0)  # one integer key per subject and variable
    previous = pl.col("value").shift(1).over(series, order_by="VISITNUM")
    return (values.with_columns(previous=previous)
            .group_by("site_id", "variable")
            .agg(n=pl.col("previous").is_not_null().sum().cast(pl.Int64),
                 x=(pl.col("value") == pl.col("previous")).sum().cast(pl.Int64))
            .filter(pl.col("n") > 0))


def _shown(share: pl.Expr) -> pl.Expr:
    """A share as a percentage with one decimal (duplicates are rare: 0.3% is not 0%)."""
    return (100 * share).round(1)


def duplicates(analysis: AnalysisTables, *, variables: tuple[str, ...] | None = None, min_values: int = 3,
               min_records: int = 20, study_id: str | None = None,
               cut_date: date | None = None) -> pl.DataFrame:
    """Sites with more duplicated data than the rest of the study: whole visit records copied value for
    value, and readings identical to the subject's previous reading (copy-forward).

    * **Records** (variable ``VS`` or ``LB``): a subject's results of the domain at one visit with at
      least ``min_values`` results; duplicated when another record of the site (another subject or
      another visit) has exactly the same tests and values (:func:`duplicate_records`).
    * **Repeated readings** (variable ``VS:SYSBP``, ``LB:ALT``, ...): readings equal to the subject's
      previous reading of the variable (:func:`repeated_readings`); the chance of this depends on the
      variable's precision and spread, so each variable is tested on its own against its rate elsewhere.

    Each count is compared with the rest of the study's by the one-sided Fisher exact test (excess at
    the site; :func:`rbqm.csm._contract.excess_versus_rest`).

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; uses the numeric results of ``vs`` and ``lb``.
    variables : sequence of str, optional
        Names ``DOMAIN:CODE``; default every vs and lb variable (records then hold only these).
    min_values : int, default 3
        Results a visit record needs to count.
    min_records : int, default 20
        Records (or readings that follow an earlier one) a site, and the rest of the study, need for
        the site to be tested on a domain or variable.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site and domain or variable, test ``duplicates``:
        ``statistic`` the number of duplicated records or repeated readings at the site, ``p_value``
        the one-sided Fisher test, ``q_value`` BH across all rows, ``effect`` the share at the site
        minus that elsewhere. Row-free without ``vs`` and ``lb``.

    See Also
    --------
    digit_preference, low_variability, mahalanobis, run_csm

    Examples
    --------
    >>> from synthetic import SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=5, subjects=150, countries=2, seed=2)
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> out = duplicates(derive_tables(tables, as_of=cfg.end))
    >>> out.filter(variable="VS")["description"][0]  # doctest: +ELLIPSIS
    'At site 1001, 0 of ... vital-sign visit records (0.0%) repeat another record of the site value for...'
    """
    caller = "duplicates"
    check_analysis(analysis, caller)
    variables = check_variables(variables, caller)
    check_integer(min_values, "min_values", caller, low=2)
    check_integer(min_records, "min_records", caller, low=1)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    values = measurements(analysis, variables)
    if values is None:
        return empty_findings()
    records, repeats = pl.collect_all([duplicate_records(values, min_values=min_values),
                                       repeated_readings(values)])
    records = excess_versus_rest(records, minimum=min_records)
    repeats = excess_versus_rest(repeats, minimum=min_records)
    if records.height + repeats.height == 0:
        return empty_findings()
    kind = pl.col("variable").replace_strict(_KINDS, default=pl.col("variable"), return_dtype=pl.String)
    records = records.with_columns(description=pl.format(
        "At site {}, {} of {} {} visit records ({}%) repeat another record of the site value for value "
        "vs {}% elsewhere", pl.col("site_id"), pl.col("x"), pl.col("n"), kind, _shown(pl.col("share")),
        _shown(pl.col("rest_share"))))
    names = repeats["variable"].unique().to_list()
    name = pl.col("variable").replace_strict(names, [label(v) for v in names], return_dtype=pl.String)
    repeats = repeats.with_columns(description=pl.format(
        "At site {}, {} of {} {} readings ({}%) repeat the subject's previous reading exactly vs {}% "
        "elsewhere",
        pl.col("site_id"), pl.col("x"), pl.col("n"), name, percent(pl.col("share")),
        percent(pl.col("rest_share"))))
    found = pl.concat([records, repeats], how="diagonal_relaxed")
    return finish(found, test="duplicates", study_id=study_id, cut_date=cut_date)
