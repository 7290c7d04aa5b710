"""Digit preference: terminal digits of a site's measurements against those of all other sites."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
from scipy.stats import chi2 as chi2_dist

from rbqm.csm._contract import (
    check_analysis, check_integer, check_variables, empty_findings, finish, label, measurements, percent,
    study_stamp,
)
from rbqm.derive import AnalysisTables
from rbqm.stats import benjamini_hochberg

__all__ = ["digit_preference", "recorded_decimals"]

#: A variable is recorded to d decimals when at least this share of its values is a multiple of 10^-d.
_PRECISION_SHARE = 0.98
_MAX_DECIMALS = 3


def recorded_decimals(values: pl.LazyFrame) -> pl.LazyFrame:
    """Per variable, the decimals it is recorded to: the smallest d in 0..3 with at least 98% of
    values a multiple of 10^-d (null when there is none: no meaningful terminal digit)."""
    def share(d: int) -> pl.Expr:
        scaled = pl.col("value") * 10.0**d
        return ((scaled - scaled.round()).abs() < 1e-6 * pl.max_horizontal(scaled.abs(), pl.lit(1.0))).mean()

    shares = values.group_by("variable").agg(share(d).alias(f"d{d}") for d in range(_MAX_DECIMALS + 1))
    decimals = pl.coalesce(pl.when(pl.col(f"d{d}") >= _PRECISION_SHARE).then(pl.lit(d))
                           for d in range(_MAX_DECIMALS + 1))
    return shares.select("variable", decimals=decimals.cast(pl.Int64))


def _chi_square(site: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson chi-square of each 2 x 10 table (site row vs rest row) and its degrees of freedom
    (digits seen anywhere, minus 1)."""
    n_site, n_rest = site.sum(axis=1, keepdims=True), rest.sum(axis=1, keepdims=True)
    column = site + rest
    total = n_site + n_rest
    seen = column > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        e_site, e_rest = n_site * column / total, n_rest * column / total
        cells = np.where(seen, (site - e_site) ** 2 / e_site + (rest - e_rest) ** 2 / e_rest, 0.0)
    return cells.sum(axis=1), seen.sum(axis=1) - 1


#: While some site's BH q-value against the other reference sites is below this, the most extreme one
#: leaves the reference (per variable).
_REFERENCE_Q = 0.01


def _reference_sites(site: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Per row, whether the site stays in the reference ("elsewhere") of its variable.

    One site with a strong preference would make every other site look different from a rest that
    carries its digits; so, one at a time, the most extreme site of a variable whose q-value against
    the remaining reference sites is below :data:`_REFERENCE_Q` leaves the reference, until none is.
    """
    included = np.ones(len(var), bool)
    for _ in range(len(var)):
        chi2, df = _chi_square(site, _rest(site, var, included))
        p = np.where(included & (df >= 1), chi2_dist.sf(chi2, np.maximum(df, 1)), 1.0)
        q = benjamini_hochberg(pl.Series(p)).to_numpy()
        # per variable, the row of its smallest p-value, when that q is small enough
        order = np.lexsort((p, var))
        first_of_var = order[np.r_[True, var[order][1:] != var[order][:-1]]]
        leaving = first_of_var[q[first_of_var] < _REFERENCE_Q]
        if leaving.size == 0:
            break
        included[leaving] = False
    return included


def _rest(site: np.ndarray, var: np.ndarray, included: np.ndarray) -> np.ndarray:
    """Per row (site and variable), the digit counts of the variable's other included sites."""
    totals = np.zeros((var.max() + 1, 10))
    np.add.at(totals, var, site * included[:, None])
    return totals[var] - site * included[:, None]


def digit_preference(analysis: AnalysisTables, *, variables: tuple[str, ...] | None = None,
                     min_readings: int = 50, study_id: str | None = None,
                     cut_date: date | None = None) -> pl.DataFrame:
    """Terminal-digit preference per site and variable: chi-square of the site's digits vs the other sites'.

    The terminal digit is the last digit at the variable's recorded precision (the units digit of
    integer-valued results, the first decimal of one-decimal results, ...; see
    :func:`recorded_decimals`). For each site and variable the 2 x 10 table of digit counts (site,
    reference sites) gives Pearson's chi-square with (digits seen - 1) degrees of freedom. The
    reference is every other site except those that clearly prefer a digit themselves (removed one at
    a time while the most extreme has q < 0.01), so one strong site does not implicate its
    neighbours; with too few readings left, every other site. The digit
    preference score is DPS = 100 sqrt(chi2 / (n * 9)), n the site's readings: with uniform digits
    elsewhere and many readings this is the classic DPS (below 8 excellent, 12 good, 20 acceptable).

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; uses the numeric results of ``vs`` (VSSTRESN) and ``lb``
        (LBSTRESN).
    variables : sequence of str, optional
        Names ``DOMAIN:CODE`` such as ``"VS:SYSBP"`` or ``"LB:ALT"``; default every vs and lb variable.
    min_readings : int, default 50
        Sites with fewer readings of a variable (or fewer elsewhere) are not tested for it.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site and variable, test ``digit_preference``:
        ``statistic`` the DPS, ``p_value`` of the chi-square, ``q_value`` BH across all rows,
        ``effect`` the share of the site's most over-represented digit minus its share elsewhere.
        Row-free without ``vs`` and ``lb``.

    See Also
    --------
    ae_under_reporting, low_variability, run_csm

    Examples
    --------
    >>> from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=5, subjects=200, countries=2, seed=2, anomalies=(
    ...     AnomalySpec(type="digit_preference", magnitude=0.8, sites=("1002",), start=0.0),))
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> analysis = derive_tables(tables, as_of=cfg.end)
    >>> out = digit_preference(analysis, variables=("VS:SYSBP",))
    >>> out.sort("statistic", descending=True)["description"][0]  # doctest: +ELLIPSIS
    'Systolic BP ends in 0 in ...% of readings at site 1002 vs ...% elsewhere (digit preference score ...)'
    """
    caller = "digit_preference"
    check_analysis(analysis, caller)
    variables = check_variables(variables, caller)
    check_integer(min_readings, "min_readings", caller, low=1)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    values = measurements(analysis, variables)
    if values is None:
        return empty_findings()
    scale = pl.lit(10.0).pow(pl.col("decimals"))
    counts = (values.join(recorded_decimals(values).filter(pl.col("decimals").is_not_null()), on="variable")
              .with_columns(digit=((pl.col("value").abs() * scale).round() % 10).cast(pl.Int64))
              .group_by("variable", "decimals", "site_id", "digit").agg(n=pl.len())
              .sort("variable", "site_id")
              .with_columns(row=pl.struct("variable", "site_id").rle_id().cast(pl.Int64),
                            var=pl.col("variable").rle_id().cast(pl.Int64))
              .collect())
    if counts.height == 0:
        return empty_findings()
    rows = counts.unique("row", keep="first").sort("row")
    site = np.zeros((rows.height, 10))
    site[counts["row"].to_numpy(), counts["digit"].to_numpy()] = counts["n"].to_numpy()
    var = rows["var"].to_numpy()
    n_site = site.sum(axis=1)
    clean = _reference_sites(site, var)
    rest = _rest(site, var, clean)
    sparse = rest.sum(axis=1) < min_readings  # too little left: compare with every other site after all
    rest[sparse] = _rest(site, var, np.ones(len(var), bool))[sparse]
    n_rest = rest.sum(axis=1)
    chi2, df = _chi_square(site, rest)
    share_site, share_rest = site / n_site[:, None], rest / np.maximum(n_rest, 1)[:, None]
    preferred = np.argmax(share_site - share_rest, axis=1)
    pick = np.arange(len(preferred))
    found = rows.select("site_id", "variable", "decimals").with_columns(
        statistic=100 * np.sqrt(chi2 / (n_site * 9)),
        p_value=np.where(df >= 1, chi2_dist.sf(chi2, np.maximum(df, 1)), np.nan),
        effect=share_site[pick, preferred] - share_rest[pick, preferred],
        digit=preferred, site_share=share_site[pick, preferred], rest_share=share_rest[pick, preferred],
        readings=n_site.astype(np.int64), ok=(n_site >= min_readings) & (n_rest >= min_readings) & (df >= 1),
    ).filter("ok")
    plural = pl.when(pl.col("decimals") > 1).then(pl.lit("s")).otherwise(pl.lit(""))
    precision = (pl.when(pl.col("decimals") == 0).then(pl.lit(""))
                 .otherwise(pl.format(" (recorded to {} decimal{})", pl.col("decimals"), plural)))
    labels = found["variable"].unique()
    name = pl.col("variable").replace_strict(labels, [label(v) for v in labels], return_dtype=pl.String)
    found = found.with_columns(description=pl.format(
        "{}{} ends in {} in {}% of readings at site {} vs {}% elsewhere (digit preference score {}; "
        "{} readings)",
        name, precision, pl.col("digit"), percent(pl.col("site_share")), pl.col("site_id"),
        percent(pl.col("rest_share")), pl.col("statistic").round(1), pl.col("readings")))
    return finish(found, test="digit_preference", study_id=study_id, cut_date=cut_date)
