"""Data inconsistency score (DIS): each site's central-monitoring p-values combined into one score,
calibrated against a site-label permutation null (reference section 5; docs/csm.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Literal

import numpy as np
import polars as pl
from scipy.special import polygamma, psi
from scipy.stats import gamma

from rbqm.csm._contract import check_analysis, check_integer, study_stamp
from rbqm.csm._permute import MIN_COUNTRY_SITES, permute_sites
from rbqm.derive import AnalysisTables
from rbqm.errors import RbqmError

__all__ = ["DIS_COLUMNS", "NULL_DRAWS", "SIMULATED_TESTS", "auto_permutations", "calibrate", "data_inconsistency", "dis_statistic",
           "reference_log_p"]

#: The tests whose p-values come from their own simulations (already calibrated against a null):
#: ``simulations="uniform"`` gives them uniform null p-values instead of rerunning them.
SIMULATED_TESTS = ("ae_under_reporting", "sae_under_reporting")
#: The pooled null statistics ``auto_permutations`` aims for (sites x permutations), and its bounds on B.
NULL_DRAWS, MIN_PERMUTATIONS, MAX_PERMUTATIONS = 2000, 2, 20
#: p-values below this (including 0) count as this: beyond double precision, 1 - p is 1.
P_FLOOR = 1e-16

#: The columns of :func:`data_inconsistency`, with their dtypes.
DIS_COLUMNS: dict[str, pl.DataType] = {
    "site_id": pl.String(), "p_values": pl.Int64(), "used": pl.Int64(), "statistic": pl.Float64(),
    "reference_p": pl.Float64(), "p_value": pl.Float64(), "dis": pl.Float64(), "dis_rank": pl.Int64(),
}

Battery = Callable[[AnalysisTables], pl.DataFrame]


def auto_permutations(sites: int) -> int:
    """B for ``data_inconsistency`` when none is given: enough permutations that the pooled null holds
    about ``NULL_DRAWS`` site statistics (so the smallest p-value is about 1/2000, DIS about 3.3), at
    least ``MIN_PERMUTATIONS`` and at most ``MAX_PERMUTATIONS``. The null is pooled over sites, so a
    large study needs few reruns of the battery: 20 for 100 sites or fewer, 2 for 1,000 or more.

    Examples
    --------
    >>> [auto_permutations(n) for n in (10, 60, 100, 200, 400, 1000, 5000)]
    [20, 20, 20, 10, 5, 2, 2]
    """
    if sites < 1:
        return MAX_PERMUTATIONS
    return int(min(MAX_PERMUTATIONS, max(MIN_PERMUTATIONS, -(-NULL_DRAWS // sites))))


def reference_log_p(neg_log_sum: np.ndarray, n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """log P(T >= t) for T the minus log-sum of the k smallest of n independent uniform p-values.

    By the Renyi representation T = sum_i min(i, k)/i E_i (E_i standard exponential), so
    E[T] = k (1 + H_n - H_k) and Var[T] = k + k^2 (H2_n - H2_k) (H, H2 harmonic numbers of order 1
    and 2). T is matched to a gamma with that mean and variance, which is exact for k = n (Fisher's
    method); for k = 1 the exact Sidak tail 1 - (1 - p_min)^n is used.

    Examples
    --------
    >>> from scipy.stats import combine_pvalues
    >>> p = np.array([0.01, 0.2, 0.5])
    >>> t = -np.log(p).sum()
    >>> bool(np.isclose(np.exp(reference_log_p(np.array([t]), np.array([3]), np.array([3]))[0]),
    ...                 combine_pvalues(p, method="fisher").pvalue))
    True
    >>> float(np.exp(reference_log_p(np.array([-np.log(0.01)]), np.array([5]), np.array([1]))[0]))  # 1-0.99^5
    0.049009...
    """
    t, n, k = (np.asarray(a, dtype=float) for a in (neg_log_sum, n, k))
    mean = k * (1 + psi(n + 1) - psi(k + 1))
    var = k + k**2 * (polygamma(1, k + 1) - polygamma(1, n + 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        approx = gamma.logsf(t, mean**2 / var, scale=var / mean)
        sidak = np.log(-np.expm1(n * np.log1p(-np.exp(-t))))
    return np.where(k == 1, sidak, approx)


def dis_statistic(findings: pl.DataFrame, *, fraction: float = 0.2, min_p_values: int = 5) -> pl.DataFrame:
    """Per site: the geometric mean of the smallest ``fraction`` of its p-values, and its tail
    probability were the p-values independent and uniform.

    Parameters
    ----------
    findings : polars.DataFrame
        A ``csm`` table (at least ``site_id`` and ``p_value``); every row with a p-value in [0, 1]
        counts, whatever its test and variable. p-values below 1e-16 count as 1e-16.
    fraction : float, default 0.2
        The share of a site's p-values combined: the k = max(1, ceil(fraction * n)) smallest of n.
    min_p_values : int, default 5
        Sites with fewer p-values get no statistic (null).

    Returns
    -------
    polars.DataFrame
        One row per site with a p-value, sorted by site: ``site_id``, ``p_values`` (n), ``used`` (k),
        ``statistic`` (the geometric mean, in (0, 1]; small = inconsistent), ``reference_log_p`` (the
        natural log of :func:`reference_log_p`, comparable across sites with different n).

    Examples
    --------
    >>> findings = pl.DataFrame({"site_id": ["A"] * 5 + ["B"] * 2,
    ...                          "p_value": [0.5, 0.01, 0.04, 0.9, 0.3, 0.2, 0.7]})
    >>> out = dis_statistic(findings, fraction=0.4, min_p_values=3)
    >>> out.select("site_id", "p_values", "used", pl.col("statistic").round(4)).rows()
    [('A', 5, 2, 0.02), ('B', 2, None, None)]
    """
    _check_fraction(fraction, "dis_statistic")
    check_integer(min_p_values, "min_p_values", "dis_statistic", low=1)
    site = "site_id"
    # ceil(fraction * n), guarded against 0.2 * 15 = 3.0000000000000004
    used = pl.max_horizontal((fraction * pl.len() - 1e-9).ceil().cast(pl.Int64), pl.lit(1, pl.Int64)).over(site)
    ranked = (findings.lazy()
              .filter(pl.col("p_value").is_between(0, 1) & pl.col(site).is_not_null())
              .select(site, log_p=pl.col("p_value").clip(P_FLOOR, 1.0).log())
              .with_columns(p_values=pl.len().over(site).cast(pl.Int64), used=used,
                            order=pl.col("log_p").rank("ordinal").over(site)))
    per_site = (ranked.filter(pl.col("order") <= pl.col("used"))
                .group_by(site).agg(pl.col("p_values", "used").first(), neg_log_sum=-pl.col("log_p").sum())
                .sort(site).collect())
    enough = per_site["p_values"].to_numpy() >= min_p_values
    log_p = reference_log_p(per_site["neg_log_sum"].to_numpy(), per_site["p_values"].to_numpy(),
                            per_site["used"].to_numpy())
    return per_site.select(
        site, "p_values",
        used=pl.when(pl.Series(enough)).then(pl.col("used")),
        statistic=pl.when(pl.Series(enough)).then((-pl.col("neg_log_sum") / pl.col("used")).exp()),
        reference_log_p=pl.when(pl.Series(enough)).then(pl.Series(log_p)),
    )


def calibrate(observed: pl.DataFrame, null: np.ndarray) -> pl.DataFrame:
    """The permutation p-value, DIS and rank of each site's statistic against pooled null statistics.

    Parameters
    ----------
    observed : polars.DataFrame
        From :func:`dis_statistic` on the study's own findings.
    null : numpy.ndarray
        ``reference_log_p`` of every site in every permutation (nulls left out), pooled.

    Returns
    -------
    polars.DataFrame
        ``DIS_COLUMNS``: ``p_value`` = (1 + null values at least as extreme) / (1 + null values),
        ``dis`` = -log10 p_value, ``dis_rank`` 1 = most inconsistent (ties in p_value broken by the
        reference p-value, then site_id); all null for sites without a statistic.

    Examples
    --------
    >>> observed = pl.DataFrame({"site_id": ["A", "B", "C"], "p_values": [9, 9, 2], "used": [2, 2, None],
    ...                          "statistic": [0.01, 0.2, None], "reference_log_p": [-6.0, -1.0, None]})
    >>> out = calibrate(observed, np.array([-0.5, -2.0, -1.0, -0.1]))
    >>> out.select("site_id", "p_value", "dis_rank").rows()
    [('A', 0.2, 1), ('B', 0.6, 2), ('C', None, None)]
    """
    ordered = np.sort(np.asarray(null, dtype=float))
    log_p = observed["reference_log_p"].to_numpy().astype(float)
    with np.errstate(invalid="ignore"):
        tolerance = 1e-9 * np.maximum(1.0, np.abs(log_p))
        extreme = np.searchsorted(ordered, np.nan_to_num(log_p + tolerance, nan=-np.inf), side="right")
    p = pl.Series((1.0 + extreme) / (1.0 + ordered.size))
    out = (observed.with_columns(reference_p=pl.col("reference_log_p").exp(),
                                 p_value=pl.when(pl.col("reference_log_p").is_not_null()).then(p))
           .with_columns(dis=(1.0 / pl.col("p_value")).log10())  # -log10 p, but never -0.0 when p is 1
           .sort(["p_value", "reference_log_p", "site_id"], nulls_last=True)
           .with_columns(dis_rank=pl.when(pl.col("p_value").is_not_null())
                         .then(pl.int_range(1, pl.len() + 1, dtype=pl.Int64))))
    return out.select(list(DIS_COLUMNS)).cast(DIS_COLUMNS).sort("site_id")


def _check_fraction(fraction: float, caller: str) -> None:
    number = isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
    if not number or not 0 < fraction <= 1:
        raise RbqmError(f"The 'fraction' parameter of {caller} must be a number in (0, 1]; "
                        f"got {fraction!r} instead.")


def _default_battery(study_id: str, cut_date: date, seed: int, simulations: str) -> Battery:
    from rbqm.csm import run_csm  # the package imports this module

    # r=1: the AE tests' null p-values are replaced by uniforms, so their simulations are not needed
    r = {"r": 1} if simulations == "uniform" else {}
    return lambda permuted: run_csm(permuted, study_id=study_id, cut_date=cut_date, seed=seed, **r)


def data_inconsistency(analysis: AnalysisTables, findings: pl.DataFrame, *, permutations: int = 20,
                       seed: int = 1, fraction: float = 0.2, min_p_values: int = 5,
                       within: Literal["country"] | None = "country", min_country_sites: int = MIN_COUNTRY_SITES,
                       simulations: Literal["rerun", "uniform"] = "rerun", battery: Battery | None = None,
                       study_id: str | None = None, cut_date: date | None = None) -> pl.DataFrame:
    """Data inconsistency score per site: its CSM p-values combined, calibrated by permuting site labels.

    The statistic of a site is the geometric mean of the smallest ``fraction`` of its p-values (all
    tests and variables, as the tests report them), turned into ``reference_log_p``, its tail
    probability were the p-values independent and uniform (:func:`dis_statistic`), which puts sites
    with different numbers of p-values on one scale. ``permutations`` times, subjects are shuffled
    between sites (:func:`rbqm.csm.permute_sites`, keeping site sizes, within country by default),
    the battery is rerun and every site's statistic computed; the null statistics of all sites and
    permutations are pooled. A site's p-value is the share of null statistics at least as extreme
    (+1 smoothing), DIS = -log10 p.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``: the tables ``findings`` were computed from.
    findings : polars.DataFrame
        The study's ``csm`` table (``rbqm.csm.run_csm``). Only rows of tests the battery also returns on
        permuted tables count (so ``kri_profile``, computed from KRIs, is left out).
    permutations : int, default 20
        B, the number of battery reruns; the smallest possible p-value is 1 / (1 + B x sites).
    seed : int, default 1
        Seed of the permutations (and of the uniform null p-values); the same seed gives the same result.
    fraction : float, default 0.2
        The share of a site's p-values combined (at least one).
    min_p_values : int, default 5
        Sites with fewer p-values get no DIS (null), and do not enter the null.
    within : {"country", None}, default "country"
        Shuffle subjects within their country (countries with fewer than ``min_country_sites`` sites
        pooled), as the tests compare a site with its country; None shuffles across the study.
    min_country_sites : int, default 6
        See ``within``.
    simulations : {"rerun", "uniform"}, default "rerun"
        ``"rerun"``: the AE simulation tests rerun like every other test. ``"uniform"``: they
        (``SIMULATED_TESTS``) run with r=1 and their null p-values are replaced by independent
        uniform draws (they are already calibrated): a little faster, but blind to the dependence
        of a site's AE and serious-AE p-values and to their discreteness (docs/csm.md).
    battery : callable, optional
        ``battery(permuted_analysis) -> csm table``; default ``rbqm.csm.run_csm`` with its defaults
        (``r=1`` when ``simulations="uniform"``).
    study_id, cut_date
        Passed to the default battery; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        ``DIS_COLUMNS``, one row per site with at least one p-value, sorted by site: ``p_values``
        (n), ``used`` (k), ``statistic`` (geometric mean of the k smallest), ``reference_p``,
        ``p_value`` (permutation), ``dis`` (-log10 p_value) and ``dis_rank`` (1 = most
        inconsistent). Sites with fewer than ``min_p_values`` p-values have nulls but n.

    See Also
    --------
    dis_statistic, calibrate, rbqm.csm.permute_sites

    Examples
    --------
    >>> from synthetic import SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> from rbqm.csm import run_csm
    >>> cfg = SynthConfig(sites=6, subjects=150, countries=2, seed=2)
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> analysis = derive_tables(tables, as_of=cfg.end)
    >>> found = run_csm(analysis, study_id="S1", cut_date=cfg.end, r=200)
    >>> out = data_inconsistency(analysis, found, permutations=3)
    >>> out.height, sorted(out["dis_rank"].to_list())
    (6, [1, 2, 3, 4, 5, 6])
    """
    caller = "data_inconsistency"
    check_analysis(analysis, caller)
    check_integer(permutations, "permutations", caller, low=1)
    check_integer(seed, "seed", caller, low=0)
    _check_fraction(fraction, caller)
    check_integer(min_p_values, "min_p_values", caller, low=1)
    if within not in ("country", None):
        raise RbqmError(f"The 'within' parameter of {caller} must be 'country' or None; got {within!r} instead.")
    if simulations not in ("uniform", "rerun"):
        raise RbqmError(f"The 'simulations' parameter of {caller} must be 'uniform' or 'rerun'; "
                        f"got {simulations!r} instead.")
    if battery is None:
        battery = _default_battery(*study_stamp(analysis, study_id, cut_date), seed, simulations)
    # subjects are small and read by every rerun: materialise them once
    base = AnalysisTables({**analysis.tables, "subjects": analysis["subjects"].collect().lazy()},
                          analysis.sources, analysis.as_of)
    children = np.random.SeedSequence(seed).spawn(permutations)
    null, tests = [], set()
    for child in children:
        permuted_seed, uniform_seed = (int(s) for s in child.generate_state(2))
        found = battery(permute_sites(base, seed=permuted_seed, within=within,
                                      min_country_sites=min_country_sites))
        if simulations == "uniform":
            simulated = found["test"].is_in(SIMULATED_TESTS)
            draws = np.random.default_rng(uniform_seed).random(found.height)
            found = found.with_columns(p_value=pl.when(simulated).then(pl.Series(draws)).otherwise("p_value"))
        tests |= set(found["test"].unique().to_list())
        stats = dis_statistic(found, fraction=fraction, min_p_values=min_p_values)
        null.append(stats["reference_log_p"].drop_nulls().to_numpy())
    observed = dis_statistic(findings.filter(pl.col("test").is_in(sorted(tests))), fraction=fraction,
                             min_p_values=min_p_values)
    return calibrate(observed, np.concatenate(null))

