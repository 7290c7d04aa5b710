"""The finding contract every central statistical monitoring test returns, and shared plumbing.

One row per (site, test, variable) that was tested; see ``CSM_COLUMNS`` and docs/csm.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import polars as pl
from scipy.special import ndtr
from scipy.stats import chi2, hypergeom

from rbqm.csm._reference import versus_rest
from rbqm.derive import AnalysisTables
from rbqm.errors import RbqmError
from rbqm.stats import bh_expr
from rbqm.stats._fisher import fisher_two_sided

__all__ = ["CSM_COLUMNS", "DOMAINS", "LABELS", "between_site_sd", "check_analysis", "check_integer",
           "check_variables", "empty_findings", "excess_versus_rest", "finish", "label", "measurements", "median_versus_rest",
           "percent", "reference_medians", "scores_versus_rest", "shown", "study_stamp", "two_by_two"]

#: The columns of the ``csm`` table, in order, with their dtypes.
CSM_COLUMNS: dict[str, pl.DataType] = {
    "study_id": pl.String(), "cut_date": pl.Date(), "site_id": pl.String(), "test": pl.String(),
    "variable": pl.String(), "statistic": pl.Float64(), "p_value": pl.Float64(), "q_value": pl.Float64(),
    "effect": pl.Float64(), "description": pl.String(),
}

_TAU_GRID = np.linspace(0.0, 3.0, 601)
_CHI2_1_MEDIAN = float(chi2.median(1))

#: Measurement domains: prefix of a variable name -> (table, test code column, numeric result column).
DOMAINS: dict[str, tuple[str, str, str]] = {
    "VS": ("vs", "VSTESTCD", "VSSTRESN"),
    "LB": ("lb", "LBTESTCD", "LBSTRESN"),
}

#: Plain names for the variables a monitor reads in descriptions (others keep their code).
LABELS: dict[str, str] = {
    "VS:SYSBP": "Systolic BP", "VS:DIABP": "Diastolic BP", "VS:HR": "Heart rate", "VS:TEMP": "Temperature",
    "VS:WEIGHT": "Weight", "VS:HEIGHT": "Height", "VS:RESP": "Respiratory rate", "VS:PULSE": "Pulse",
    "LB:HGB": "Haemoglobin", "LB:CREAT": "Creatinine", "LB:GLUC": "Glucose", "LB:BILI": "Bilirubin",
    "LB:SODIUM": "Sodium", "LB:K": "Potassium", "LB:PLAT": "Platelets", "LB:WBC": "White cells",
    "LB:NEUT": "Neutrophils",
}


def label(variable: str) -> str:
    """The plain name of ``DOMAIN:CODE`` (the code itself when no name is known)."""
    return LABELS.get(variable, variable.split(":", 1)[-1])


def percent(share: pl.Expr) -> pl.Expr:
    """A share as a whole percentage, for descriptions."""
    return (100 * share).round(0).cast(pl.Int64)


#: Cochran's rule: a 2 x 2 table with an expected count below this gets Fisher's exact test.
MIN_EXPECTED = 5.0


def two_by_two(events: np.ndarray, size: np.ndarray, total_events: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Two-sided p-values of each site's share (``events`` of ``size``) against the rest of the study
    (``total_events`` of ``total`` including the site), vectorised over rows: Fisher's exact test
    (``rbqm.stats.fisher``) when an expected count of the 2 x 2 table is below 5, else Pearson's
    chi-square with 1 degree of freedom (exact tails of large tables are slow and not needed)."""
    events, size, total_events, total = (np.asarray(a, dtype=np.float64) for a in (events, size, total_events,
                                                                                 total))
    rest, rest_events = total - size, total_events - events
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.stack([size * total_events, size * (total - total_events), rest * total_events,
                             rest * (total - total_events)]) / total
        observed = np.stack([events, size - events, rest_events, rest - rest_events])
        statistic = np.where(expected > 0, (observed - expected) ** 2 / expected, 0.0).sum(axis=0)
    p = chi2.sf(statistic, 1)
    small = expected.min(axis=0) < MIN_EXPECTED
    if small.any():
        p[small] = fisher_two_sided(*(a[small].astype(np.int64) for a in (events, size, total_events, total)))
    return np.where((total_events > 0) & (total_events < total) & (rest > 0), p, 1.0)


def shown(value: pl.Expr, *, scale: pl.Expr) -> pl.Expr:
    """``value`` as text for descriptions, to the decimals (0-4) that give ``scale`` (a typical spread
    of the variable) two significant digits: 138 for blood pressure, 4.31 for potassium."""
    decimals = (1 - scale.abs().log10().floor()).fill_nan(0).clip(0, 4).fill_null(0)
    return pl.coalesce(
        pl.when(decimals == d).then((value.round(0).cast(pl.Int64) if d == 0 else value.round(d)).cast(pl.String))
        for d in range(5))


def empty_findings() -> pl.DataFrame:
    """A row-free ``csm`` table (a test whose inputs are missing)."""
    return pl.DataFrame(schema=CSM_COLUMNS)


def study_stamp(analysis: AnalysisTables, study_id: str | None, cut_date: date | None) -> tuple[str, date]:
    """``study_id`` (default: the STUDYID of dm, or "") and ``cut_date`` (default: the as-of date)."""
    if study_id is None:
        subjects = analysis["subjects"]
        study_id = ""
        if "STUDYID" in subjects.collect_schema().names():
            study_id = subjects.select(pl.col("STUDYID").drop_nulls().first()).collect().item() or ""
    return study_id, cut_date or analysis.as_of


def finish(found: pl.DataFrame, *, test: str, study_id: str, cut_date: date) -> pl.DataFrame:
    """Stamp, add BH q-values across the test's rows and return exactly ``CSM_COLUMNS``, sorted."""
    stamps = {"study_id": pl.lit(study_id), "cut_date": pl.lit(cut_date), "test": pl.lit(test)}
    return (found.with_columns(q_value=bh_expr("p_value"), **stamps)
            .select(list(CSM_COLUMNS)).cast(CSM_COLUMNS)
            .sort(["variable", "site_id"]))


def check_analysis(analysis: Any, caller: str) -> None:
    """Raise unless ``analysis`` is the analysis tables of ``rbqm.derive.derive_tables``."""
    if not isinstance(analysis, AnalysisTables):
        raise RbqmError(f"The 'analysis' parameter of {caller} must be the AnalysisTables of "
                        f"rbqm.derive.derive_tables; got {type(analysis).__name__} instead.")


def check_integer(value: Any, name: str, caller: str, *, low: int) -> None:
    """Raise unless ``value`` is an integer >= ``low`` (scikit-learn style message)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise RbqmError(f"The {name!r} parameter of {caller} must be an integer >= {low}; "
                        f"got {value!r} instead.")


def _is_variable(name: Any) -> bool:
    domain, _, code = name.partition(":") if isinstance(name, str) else ("", "", "")
    return domain in DOMAINS and bool(code)


def check_variables(variables: Any, caller: str) -> tuple[str, ...] | None:
    """``None`` (every vs and lb variable) or a tuple of ``DOMAIN:CODE`` names with a known domain."""
    if variables is None:
        return None
    if isinstance(variables, str) or not isinstance(variables, Sequence) or not variables or not all(
            _is_variable(v) for v in variables):
        raise RbqmError(f"The 'variables' parameter of {caller} must be None or a non-empty sequence of "
                        f"names 'DOMAIN:CODE' with DOMAIN one of {sorted(DOMAINS)} (e.g. 'VS:SYSBP'); "
                        f"got {variables!r} instead.")
    return tuple(variables)


def measurements(analysis: AnalysisTables, variables: tuple[str, ...] | None = None) -> pl.LazyFrame | None:
    """The finite numeric results of vs and lb, one row per result, as every CSM test on a measured
    variable reads them.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``.
    variables : tuple of str, optional
        Keep only these variables (``VS:SYSBP``, ``LB:CREAT``); default every variable of vs and lb.

    Returns
    -------
    polars.LazyFrame or None
        ``site_id`` (the subject's site, as a string), ``USUBJID``, ``variable`` (the domain and test
        code, ``VS:SYSBP``), ``VISITNUM`` (float) and ``value`` (VSSTRESN or LBSTRESN; empty, NaN and
        infinite results and subjects without a site are left out). None when the study has neither
        table (or none of the requested variables' tables).

    Examples
    --------
    >>> from datetime import date
    >>> from rbqm.derive import derive_tables
    >>> dm = pl.DataFrame({"STUDYID": "S", "USUBJID": ["S-1", "S-2"], "SITEID": ["1", "2"], "COUNTRY": "FRA",
    ...                    "RFSTDTC": "2024-01-02", "ARMCD": "A"})
    >>> vs = pl.DataFrame({"USUBJID": ["S-1", "S-1", "S-2"], "VSTESTCD": ["SYSBP", "HR", "SYSBP"],
    ...                    "VSSTRESN": [120.0, 72.0, None], "VISITNUM": [1.0, 1.0, 1.0],
    ...                    "VSDTC": "2024-01-02"})
    >>> tables = derive_tables({"dm": dm, "vs": vs}, as_of=date(2024, 6, 1))
    >>> measurements(tables).sort("variable").collect().rows()
    [('1', 'S-1', 'VS:HR', 1.0, 72.0), ('1', 'S-1', 'VS:SYSBP', 1.0, 120.0)]
    >>> measurements(tables, ("LB:CREAT",)) is None
    True
    """
    parts = []
    for domain, (table, code, value) in DOMAINS.items():
        wanted = variables is None or any(v.startswith(domain + ":") for v in variables)
        if table not in analysis or not wanted:
            continue
        parts.append(analysis.with_sites(table).select(
            site_id=pl.col("SITEID").cast(pl.String), USUBJID=pl.col("USUBJID"),
            variable=pl.concat_str(pl.lit(domain + ":"), pl.col(code)),
            VISITNUM=pl.col("VISITNUM").cast(pl.Float64), value=pl.col(value).cast(pl.Float64),
        ).filter(pl.col("value").is_finite() & pl.col("site_id").is_not_null()))  # is_finite: null -> null
    if not parts:
        return None
    out = pl.concat(parts)
    return out.filter(pl.col("variable").is_in(variables)) if variables is not None else out


def between_site_sd(difference: np.ndarray, variance: np.ndarray, *, scale: np.ndarray | None = None,
                    min_sites: int = 10) -> float:
    """Natural variation between sites beyond sampling error: tau, the SD of a site's true departure.

    ``difference`` is each site's estimated departure from the rest of the study and ``variance``
    its sampling variance; the variation between sites adds tau^2 x ``scale`` (default 1; more when
    the comparison group is a few sites, whose own departures do not average out). tau is the
    smallest value on a 0.005 grid in [0, 3] at which the median over sites of difference^2 /
    (variance + tau^2 scale) is at most the median of a chi-square with 1 degree of freedom (a
    median-based Paule-Mandel estimate: a few deviant sites barely move it); 0 with fewer than
    ``min_sites`` sites.
    """
    scale = np.ones_like(variance) if scale is None else scale
    usable = np.isfinite(difference) & np.isfinite(variance) & (variance > 0)
    if usable.sum() < min_sites:
        return 0.0
    d2, v, k = difference[usable] ** 2, variance[usable], scale[usable]
    criterion = np.median(d2[None, :] / (v[None, :] + _TAU_GRID[:, None] ** 2 * k[None, :]), axis=1)
    fits = np.flatnonzero(criterion <= _CHI2_1_MEDIAN)
    return float(_TAU_GRID[fits[0]] if fits.size else _TAU_GRID[-1])


def scores_versus_rest(scores: pl.DataFrame, column: str, *, min_units: int,
                       countries: pl.DataFrame | None = None) -> pl.DataFrame:
    """Each site's mean of a per-unit score against the mean over its comparison group's units,
    allowing for natural variation between sites.

    ``scores`` has one row per unit (a subject): ``site_id`` and a non-null ``column``, a score on a
    standard normal scale (e.g. the normal score of a percentile). The comparison group is every
    other site, or, with ``countries`` (site_id, country), the other sites of the site's country when
    it has enough of them (:func:`rbqm.csm._reference.versus_rest`: sites cluster by country). For
    each site with at least ``min_units`` units (and as many in its group): the difference
    d = mean - group mean, its sampling variance v = s^2 (1/n + 1/m) (s^2 the variance of all
    scores, n the site's units, m the group's), the natural variation between sites
    tau = :func:`between_site_sd` over these sites, and z = d / sqrt(v + tau^2 (1 + w)), where
    w = sum(m_j^2) / m^2 over the group's sites is the share of tau^2 left in the group's mean (about
    1 / sites). With tau = 0 this is the two-sample z-test of normal scores (van der Waerden); tau
    keeps sites that merely differ as much as sites naturally do from being flagged in a large study.

    Returns
    -------
    polars.DataFrame
        One row per tested site: site_id, n, rest (m), mean, rest_mean, reference (the country, or
        null for the whole study), tau, z (negative: lower scores at the site), p_lower = Phi(z) and
        p_greater = Phi(-z).
    """
    spread = scores[column].var() if scores.height > 1 else 0.0
    per = scores.group_by("site_id").agg(n=pl.len().cast(pl.Int64), sum=pl.col(column).sum(),
                                         n2=(pl.len() ** 2).cast(pl.Float64))
    per = (per.join(countries, on="site_id", how="left") if countries is not None
           else per.with_columns(country=pl.lit(None, pl.String)))
    per = (versus_rest(per.lazy().with_columns(variable=pl.lit("")), count="n", sums=["sum", "n2"]).collect()
           .rename({"rest_n": "rest"})
           .filter((pl.col("n") >= min_units) & (pl.col("rest") >= min_units))
           .with_columns(mean=pl.col("sum") / pl.col("n"), rest_mean=pl.col("rest_sum") / pl.col("rest"))
           .sort("site_id"))
    difference = (per["mean"] - per["rest_mean"]).to_numpy()
    variance = (spread or 0.0) * (1 / per["n"].to_numpy() + 1 / per["rest"].to_numpy())
    scale = 1 + (per["rest_n2"] / per["rest"] ** 2).to_numpy()
    tau = between_site_sd(difference, variance, scale=scale)
    total_variance = variance + tau**2 * scale
    positive = total_variance > 0
    z = np.where(positive, difference / np.sqrt(np.where(positive, total_variance, 1.0)), 0.0)
    return per.select("site_id", "n", "rest", "mean", "rest_mean", "reference").with_columns(
        tau=pl.lit(tau), z=pl.Series(z), p_lower=pl.Series(ndtr(z)), p_greater=pl.Series(ndtr(-z)))


def median_versus_rest(scores: pl.DataFrame, column: str, *, group: str | None = None) -> pl.DataFrame:
    """Each site's median of ``column`` and the median of every other site's values, exactly.

    ``scores`` has one row per unit: ``site_id`` and a non-null ``column``; with ``group`` (a column
    constant within a site, e.g. its country) the rest is the other sites of the same group. The
    rest's k-th smallest value is found for all sites at once by bisection over the sorted values of
    the site's group (its own values are skipped by counting them with one ``searchsorted``), so no
    site's rest is ever built.

    Returns
    -------
    polars.DataFrame
        One row per site: site_id, median and rest_median (null when the rest is empty).
    """
    ordered = (scores.select("site_id", value=pl.col(column).cast(pl.Float64),
                             group=pl.col(group).cast(pl.String).fill_null("") if group else pl.lit(""))
               .sort("group", "value", "site_id"))
    values = ordered["value"].to_numpy()
    total = len(values)
    site_ids, site = np.unique(ordered["site_id"].to_numpy(), return_inverse=True)
    # each site's group: the stretch [start, end) of the sorted values
    stretch = ordered.with_row_index().select(start=pl.col("index").min().over("group"),
                                              end=pl.col("index").max().over("group") + 1)
    start, end = np.zeros(len(site_ids), np.int64), np.zeros(len(site_ids), np.int64)
    start[site], end[site] = stretch["start"].to_numpy(), stretch["end"].to_numpy()
    # positions of each site's values, grouped by site: keys site * (N + 1) + position
    keys = np.sort(site * (total + 1) + np.arange(total))
    own = np.bincount(site, minlength=len(site_ids))
    first = np.r_[0, np.cumsum(own)[:-1]]
    rest = end - start - own
    index = np.arange(len(site_ids))

    def rest_order_statistic(k: np.ndarray) -> np.ndarray:
        """Position in ``values`` of each site's rest's k-th smallest value (0-based)."""
        low, high = start.copy(), np.maximum(end - 1, start)
        while np.any(low < high):  # smallest j with (j + 1 - start) - (own values at <= j) > k
            mid = (low + high) // 2
            own_upto = np.searchsorted(keys, index * (total + 1) + mid, side="right") - first
            enough = mid + 1 - start - own_upto > k
            active = low < high  # a site whose rest is empty never has enough: it must stop at high
            high, low = np.where(active & enough, mid, high), np.where(active & ~enough, mid + 1, low)
        return low

    safe = np.maximum(rest, 1)
    below, above = rest_order_statistic((safe - 1) // 2), rest_order_statistic(safe // 2)
    rest_median = np.where(rest > 0, (values[below] + values[above]) / 2, np.nan)
    medians = ordered.group_by("site_id").agg(median=pl.col("value").median())
    return (pl.DataFrame({"site_id": site_ids.astype(str), "rest_median": rest_median})
            .join(medians, on="site_id").select("site_id", "median", rest_median=pl.col("rest_median")
                                                .fill_nan(None)))


def reference_medians(scores: pl.DataFrame, column: str, found: pl.DataFrame,
                      countries: pl.DataFrame) -> pl.DataFrame:
    """``found`` (from :func:`scores_versus_rest`) with each site's median of ``column`` and that of
    its comparison group: the other sites of its country where ``reference`` is set, else every
    other site (:func:`median_versus_rest`)."""
    study = median_versus_rest(scores, column)
    in_country = median_versus_rest(scores.join(countries, on="site_id", how="left"), column, group="country")
    return (found.join(study, on="site_id")
            .join(in_country.select("site_id", country_median="rest_median"), on="site_id")
            .with_columns(rest_median=pl.when(pl.col("reference").is_not_null()).then("country_median")
                          .otherwise("rest_median"))
            .drop("country_median"))


def excess_versus_rest(counts: pl.DataFrame, *, minimum: int) -> pl.DataFrame:
    """One-sided Fisher exact test of an excess of marked records at each site.

    ``counts`` has one row per (variable, site): ``x`` marked records of ``n``. Adds the rest of the
    study's ``rest_n`` and ``rest_x`` (per variable), ``p_value`` = P(X >= x) for X hypergeometric
    (``scipy.stats.fisher_exact`` with ``alternative="greater"``), ``share``, ``rest_share``,
    ``effect`` = share - rest_share and ``statistic`` = x; keeps the rows whose site and rest both
    have at least ``minimum`` records.
    """
    counts = counts.with_columns(rest_n=pl.col("n").sum().over("variable") - pl.col("n"),
                                 rest_x=pl.col("x").sum().over("variable") - pl.col("x")).filter(
        (pl.col("n") >= minimum) & (pl.col("rest_n") >= minimum))
    x, n = counts["x"].to_numpy(), counts["n"].to_numpy()
    total_x, total_n = x + counts["rest_x"].to_numpy(), n + counts["rest_n"].to_numpy()
    return counts.with_columns(
        p_value=pl.Series(hypergeom.sf(x - 1, total_n, total_x, n), dtype=pl.Float64),
        share=pl.col("x") / pl.col("n"), rest_share=pl.col("rest_x") / pl.col("rest_n"),
    ).with_columns(effect=pl.col("share") - pl.col("rest_share"), statistic=pl.col("x").cast(pl.Float64))
