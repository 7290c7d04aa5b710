"""Multivariate inliers and outliers: how far a subject's lab and vital-sign results lie from the
study's robust centre (squared Mahalanobis distance), site against the rest of the study."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
from scipy.special import ndtri
from scipy.stats import chi2

from rbqm.csm._contract import (
    DOMAINS, check_analysis, check_integer, check_variables, empty_findings, finish, measurements,
    reference_medians, scores_versus_rest, study_stamp,
)
from rbqm.csm._reference import reference_phrase, site_countries
from rbqm.derive import AnalysisTables
from rbqm.stats import tie_safe

__all__ = ["mahalanobis", "robust_centre", "subject_distances", "visit_distances"]

#: A variable enters its domain's vector when it is measured at this share of the domain's visits.
_MIN_SHARE = 0.5
#: Complete vectors a domain needs (and at least this many per variable) to fit a centre and scatter.
_MIN_VECTORS_PER_VARIABLE = 10
_KINDS = {"LB": "lab", "VS": "vital-sign"}
#: Rows the concentration steps of the robust centre work on (every k-th row of a larger domain).
_MAX_CONCENTRATION_ROWS = 20_000


def _truncation_factor(share: float, p: int) -> float:
    """Consistency factor of the covariance of the ``share`` of normal rows nearest the centre:
    share / P(chi2_{p+2} <= chi2_p quantile of share) (Croux and Haesbroeck 1999)."""
    return share / chi2.cdf(chi2.ppf(share, p), p + 2)


def robust_centre(x: np.ndarray, *, support: float = 0.75, steps: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Robust location and precision (inverse scatter) of the rows of ``x``: a deterministic minimum
    covariance determinant estimate.

    Start from the ``support`` share of rows nearest the coordinate-wise median (in MAD units), then
    concentration steps (mean and covariance of the subset, then the subset of rows with the smallest
    squared Mahalanobis distances; each step lowers the covariance determinant) until the subset is
    stable or ``steps`` are done; with more than 20,000 rows the steps use every k-th row. All rows
    within the chi-square 97.5% quantile of the resulting distances then give the final mean and
    covariance (the reweighting step of scikit-learn's MinCovDet). Both covariances are scaled by the
    consistency factor of a truncated normal sample, so distances of uncontaminated normal rows
    follow a chi-square with p degrees of freedom even when up to 1 - ``support`` of the rows are
    outliers. No random restarts: one start is enough against a few deviant sites, and it runs in
    seconds on millions of rows.
    """
    n, p = x.shape
    sample = x[:: max(1, n // _MAX_CONCENTRATION_ROWS)]
    keep = max(p + 1, int(np.ceil(support * len(sample))))

    def fitted(rows: np.ndarray, factor: float, target: np.ndarray) -> tuple[np.ndarray, ...]:
        location = rows.mean(axis=0)
        precision = np.linalg.pinv(factor * np.atleast_2d(np.cov(rows, rowvar=False)), hermitian=True)
        centred = target - location
        return location, precision, ((centred @ precision) * centred).sum(axis=1)

    median = np.median(sample, axis=0)
    mad = 1.4826 * np.median(np.abs(sample - median), axis=0)
    scale = np.where(mad > 0, mad, sample.std(axis=0))
    standardised = (sample - median) / np.where(scale > 0, scale, 1.0)
    subset = np.argpartition((standardised**2).sum(axis=1), keep - 1)[:keep]
    for _ in range(steps):
        _, _, d2 = fitted(sample[subset], 1.0, sample)
        nearest = np.argpartition(d2, keep - 1)[:keep]
        if np.array_equal(np.sort(nearest), np.sort(subset)):
            break
        subset = nearest
    location, precision, d2 = fitted(sample[subset], _truncation_factor(keep / len(sample), p), x)
    inside = d2 <= chi2.ppf(0.975, p)
    if inside.sum() <= p:
        return location, precision
    location, precision, _ = fitted(x[inside], _truncation_factor(0.975, p), x[:0])
    return location, precision


def visit_distances(values: pl.LazyFrame) -> pl.DataFrame:
    """One row per complete visit vector: site_id, USUBJID, domain, distance and score.

    A visit vector holds a subject's results of one domain (VS or LB) at one visit, over the domain's
    variables measured at at least half of its visits (log values for a variable whose results are
    all positive); visits missing any of them are left out (complete vectors only, no imputation).
    Per domain, a robust centre and scatter are fitted (:func:`robust_centre`) and each vector gets its
    squared Mahalanobis distance D2. ``distance`` is D2 / p (p variables: about 1 for a typical
    vector); ``score`` the normal score of D2's mid-rank percentile among the domain's vectors, so
    both domains weigh alike whatever their size and D2's skewness.
    """
    domains = sorted(DOMAINS)
    parts = pl.collect_all([values.filter(pl.col("variable").str.starts_with(f"{domain}:"))
                            for domain in domains])
    out = []
    for domain, part in zip(domains, parts, strict=True):  # the two domains, never the visits
        if part.height == 0:
            continue
        wide = part.pivot(on="variable", index=["site_id", "USUBJID", "VISITNUM"], values="value",
                          aggregate_function="first")
        names = [c for c in wide.columns if c not in ("site_id", "USUBJID", "VISITNUM")]
        stats = wide.select(*(pl.struct(share=pl.col(c).is_not_null().mean(), spread=pl.col(c).std(),
                                        positive=(pl.col(c) > 0).all()).alias(c) for c in names)).row(0)
        keep = sorted(c for c, stat in zip(names, stats, strict=True)
                      if stat["share"] >= _MIN_SHARE and (stat["spread"] or 0) > 0)
        wide = wide.select("site_id", "USUBJID", "VISITNUM", *keep).drop_nulls().sort("USUBJID", "VISITNUM")
        if not keep or wide.height < _MIN_VECTORS_PER_VARIABLE * len(keep):
            continue
        positive = np.array([stats[names.index(c)]["positive"] for c in keep])
        x = wide.select(keep).to_numpy()
        x[:, positive] = np.log(x[:, positive])
        location, precision = robust_centre(x)
        centred = x - location
        d2 = ((centred @ precision) * centred).sum(axis=1)
        out.append(wide.select("site_id", "USUBJID").with_columns(
            domain=pl.lit(domain), distance=pl.Series(d2 / len(keep))).with_columns(
            score=(tie_safe(pl.col("distance")).rank("average") - 0.5) / pl.len()))
    if not out:
        return pl.DataFrame(schema={"site_id": pl.String, "USUBJID": pl.String, "domain": pl.String,
                                    "distance": pl.Float64, "score": pl.Float64})
    found = pl.concat(out)
    return found.with_columns(score=pl.Series(ndtri(found["score"].to_numpy())))


def subject_distances(visits: pl.DataFrame, *, min_vectors: int = 2) -> pl.DataFrame:
    """One row per subject with at least ``min_vectors`` visit vectors (:func:`visit_distances`):
    site_id, USUBJID, vectors, distance (mean of D2 / p) and score (mean normal score; negative =
    closer to the centre than typical)."""
    return (visits.group_by("site_id", "USUBJID")
            .agg(vectors=pl.len().cast(pl.Int64), distance=pl.col("distance").mean(),
                 score=pl.col("score").mean())
            .filter(pl.col("vectors") >= min_vectors))


def mahalanobis(analysis: AnalysisTables, *, variables: tuple[str, ...] | None = None, min_subjects: int = 5,
                min_vectors: int = 2, study_id: str | None = None,
                cut_date: date | None = None) -> pl.DataFrame:
    """Sites whose subjects' lab and vital-sign results lie too close to the study's centre (inliers:
    invented data tend to be average and smooth) or too far from it (outliers), all variables at once.

    Each visit's results of a domain form a vector whose squared Mahalanobis distance from a robust
    centre, in units of the robust scatter (minimum covariance determinant over the study), measures
    how unusual the visit is given the correlations between variables (:func:`visit_distances`). A
    subject's score is the mean normal score of its visits' distances (:func:`subject_distances`).
    Vectors of visits rather than of subject means: a subject's mean barely moves when invented
    values keep a real subject's levels but damp its visit-to-visit excursions, which the visit
    vectors show. A site's mean subject score is compared, in both directions, with that of the other
    sites of its country when it has enough of them (populations differ by country), else of every
    other site, allowing for natural variation between sites
    (:func:`rbqm.csm._contract.scores_versus_rest`).

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; uses the numeric results of ``vs`` and ``lb``.
    variables : sequence of str, optional
        Names ``DOMAIN:CODE``; default every vs and lb variable.
    min_subjects : int, default 5
        Scored subjects a site (and its comparison group) needs to be tested.
    min_vectors : int, default 2
        Complete visit vectors a subject needs to be scored.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site, test ``mahalanobis``, variable ``LB+VS`` (or
        the one domain used): ``statistic`` the z of the site's mean subject score
        (negative: inliers), ``p_value`` two-sided, 2 min(p_lower, p_greater) capped at 1,
        ``q_value`` BH across sites, ``effect`` log(site median / rest median) of the subjects' mean
        D2 / p. Row-free without ``vs`` and ``lb``.

    See Also
    --------
    low_variability, duplicates, run_csm

    Examples
    --------
    >>> from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=6, subjects=600, countries=2, seed=3, anomalies=(
    ...     AnomalySpec(type="fabricated_subjects", magnitude=0.9, sites=("1002",), start=0.0),))
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> out = mahalanobis(derive_tables(tables, as_of=cfg.end)).sort("p_value")
    >>> out["site_id"][0], out["description"][0]  # doctest: +ELLIPSIS
    ('1002', "Subjects at site 1002 have lab and vital-sign results closer to the study's centre than...")
    """
    caller = "mahalanobis"
    check_analysis(analysis, caller)
    variables = check_variables(variables, caller)
    check_integer(min_subjects, "min_subjects", caller, low=1)
    check_integer(min_vectors, "min_vectors", caller, low=1)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    values = measurements(analysis, variables)
    if values is None:
        return empty_findings()
    visits = visit_distances(values)
    subjects = subject_distances(visits, min_vectors=min_vectors)
    if subjects.height == 0:
        return empty_findings()
    domains = sorted(visits["domain"].unique())
    countries = site_countries(analysis).collect()
    found = scores_versus_rest(subjects, "score", min_units=min_subjects, countries=countries)
    found = (reference_medians(subjects, "distance", found, countries)
             .with_columns(variable=pl.lit("+".join(domains)), statistic=pl.col("z"),
                           p_value=(2 * pl.min_horizontal("p_lower", "p_greater")).clip(upper_bound=1.0),
                           effect=(pl.col("median") / pl.col("rest_median")).log()))
    closer = pl.col("z") < 0
    found = found.with_columns(description=pl.format(
        "Subjects at site {} have {} results {} the study's centre than {}{}: median squared "
        "distance {} vs {} per variable ({} subjects)",
        pl.col("site_id"), pl.lit(" and ".join(_KINDS[d] for d in domains)),
        pl.when(closer).then(pl.lit("closer to")).otherwise(pl.lit("further from")), reference_phrase(),
        pl.when(closer).then(pl.lit(", as invented data tend to be")).otherwise(pl.lit("")),
        pl.col("median").round(2), pl.col("rest_median").round(2), pl.col("n")))
    return finish(found, test="mahalanobis", study_id=study_id, cut_date=cut_date)
