"""Event counts per subject (adverse events, concomitant medications, medical history, protocol
deviations): a site's count against what the rest of the study's subjects had in as long on study,
allowing for over-dispersion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
from numpy.polynomial.hermite_e import hermegauss
from scipy.stats import nbinom, poisson

from rbqm.csm._contract import (
    between_site_sd, check_analysis, check_integer, empty_findings, finish, study_stamp,
)
from rbqm.derive import AnalysisTables, to_date

__all__ = ["EVENT_TABLES", "SiteEvents", "count_tails", "event_counts", "site_events"]

#: Events table -> (what its records are, the date that places an event in time; None for a table
#: taken once at screening, counted per subject rather than per time on study).
EVENT_TABLES: dict[str, tuple[str, str | None]] = {
    "ae": ("adverse events", "AESTDTC"),
    "cm": ("concomitant medications", "CMSTDTC"),
    "mh": ("medical history entries", None),
    "dv": ("protocol deviations", "DVSTDTC"),
}
_DAYS_PER_YEAR = 365.25
#: Quadrature nodes of the between-site variation in :func:`count_tails`.
_NODES = 40


@dataclass(frozen=True)
class SiteEvents:
    """Per site (in ``site_id`` order): enrolled subjects, observed events, exposure (subject-years, or
    subjects when ``timed`` is false: a per-subject table) and the events expected from the rest of
    the study; ``phi`` the dispersion of subjects' counts within sites. ``per_subject`` breaks the counts
    down: site_id, USUBJID, days (on study; 1 when not ``timed``), records and expected (the rest of the
    study's mean cumulative count at the subject's last day), whose sums per site are ``observed`` and
    ``expected``."""

    site_id: list[str]
    subjects: np.ndarray
    observed: np.ndarray
    exposure: np.ndarray
    expected: np.ndarray
    phi: float
    timed: bool
    per_subject: pl.DataFrame


def _per_site_day(site: np.ndarray, day: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape)
    np.add.at(out, (site, day), 1.0)
    return out


def site_events(analysis: AnalysisTables, table: str) -> SiteEvents:
    """Observed and expected events of ``table`` per site, standardised for time on study.

    Subjects: enrolled, with ``days_on_study`` > 0 (for a per-subject table, or a table without its
    date column, each counts as one day).
    An event counts on its study day (from RFSTDTC; undated or before day 1: day 1; after the
    subject's last day: that day). The rest of the study's mean cumulative count of events by study
    day (events on day t over the rest's subjects still on study on day t, summed up to the day)
    gives each subject's expected count at its time on study, and a site's expected count E is
    their sum. So a site whose subjects joined late is not held to a rate diluted by long follow-up
    when events come early on treatment. ``phi`` is the Pearson statistic of the subjects' counts
    about the study-wide curve scaled to their site's total, over subjects - sites (at least 1).
    """
    column = EVENT_TABLES[table][1]
    if column not in analysis[table].collect_schema().names():
        column = None  # undated events: counted per subject, as for medical history
    on_study = pl.col("enrolled").fill_null(False) & (pl.col("days_on_study") > 0)
    subjects = (analysis["subjects"].filter(on_study)
                .select("USUBJID", site_id=pl.col("SITEID").cast(pl.String), start=to_date("RFSTDTC"),
                        days=pl.col("days_on_study").cast(pl.Int64) if column else pl.lit(1, pl.Int64))
                .filter(pl.col("site_id").is_not_null())
                .sort("site_id", "USUBJID")
                .with_columns(site=pl.col("site_id").rle_id().cast(pl.Int64), subject=pl.int_range(pl.len())))
    day = ((to_date(column) - pl.col("start")).dt.total_days() + 1).fill_null(1) if column else pl.lit(1)
    events = (analysis[table].join(subjects, on="USUBJID")
              .select("site", "subject",
                      day=pl.min_horizontal(day.clip(lower_bound=1), "days").cast(pl.Int64)))
    subjects, events = pl.collect_all([subjects, events])
    if subjects.height == 0:
        empty = pl.DataFrame(schema={"site_id": pl.String, "USUBJID": pl.String, "days": pl.Int64,
                                     "records": pl.Int64, "expected": pl.Float64})
        return SiteEvents([], *(np.zeros(0),) * 4, phi=1.0, timed=column is not None, per_subject=empty)
    site, days = subjects["site"].to_numpy(), subjects["days"].to_numpy()
    shape = (int(site.max()) + 1, int(days.max()) + 2)
    # at_risk[i, t]: site i's subjects still on study on day t; happened[i, t]: its events on day t
    at_risk = np.cumsum(_per_site_day(site, days, shape)[:, ::-1], axis=1)[:, ::-1]
    happened = _per_site_day(events["site"].to_numpy(), events["day"].to_numpy(), shape)
    rest_risk, rest_events = at_risk.sum(axis=0) - at_risk, happened.sum(axis=0) - happened
    all_risk = at_risk.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rest_rate = np.where(rest_risk > 0, rest_events / rest_risk, 0.0)
        expected = (at_risk * rest_rate).sum(axis=1)  # = the sum of its subjects' expected counts below
        curve = np.cumsum(np.where(all_risk > 0, happened.sum(axis=0) / all_risk, 0.0))[days]
    observed = happened.sum(axis=1)
    per_subject = np.bincount(events["subject"].to_numpy(), minlength=len(site))
    site_curve = np.bincount(site, weights=curve, minlength=shape[0])
    fitted = curve * (observed / np.maximum(site_curve, 1e-300))[site]
    used = fitted > 0
    df = used.sum() - np.unique(site[used]).size
    pearson = ((per_subject[used] - fitted[used]) ** 2 / fitted[used]).sum()
    phi = max(1.0, float(pearson / df)) if df > 0 else 1.0
    exposure = np.bincount(site, weights=days, minlength=shape[0]) / (_DAYS_PER_YEAR if column else 1.0)
    by_subject = subjects.select(
        "site_id", "USUBJID", "days", records=pl.Series(per_subject, dtype=pl.Int64),
        expected=pl.Series(np.cumsum(rest_rate, axis=1)[site, days]))
    return SiteEvents(subjects["site_id"].unique(maintain_order=True).to_list(),
                      np.bincount(site, minlength=shape[0]), observed, exposure, expected, phi,
                      timed=column is not None, per_subject=by_subject)


def _negative_binomial_tails(observed: np.ndarray, mean: np.ndarray,
                             ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """P(X <= observed) and P(X >= observed) for X of the given mean and variance = ratio x mean: a
    negative binomial (size mean / (ratio - 1), probability 1 / ratio), or Poisson where ratio = 1."""
    if ratio <= 1 + 1e-9:
        return poisson.cdf(observed, mean), poisson.sf(observed - 1, mean)
    size = mean / (ratio - 1)
    return nbinom.cdf(observed, size, 1 / ratio), nbinom.sf(observed - 1, size, 1 / ratio)


def count_tails(observed: np.ndarray, expected: np.ndarray, *, phi: float,
                tau: float) -> tuple[np.ndarray, np.ndarray]:
    """P(X <= observed) and P(X >= observed) per site when the site's true rate is its expected one
    times exp(tau Z), Z standard normal (natural variation between sites, on the log scale), and its
    count given that rate has variance phi x mean (negative binomial; Poisson when phi = 1).

    The normal mixture is integrated by Gauss-Hermite quadrature with ``_NODES`` nodes, all sites at
    once. A site expecting no events has tails (1, 1 if it has none else 0).
    """
    nodes, weights = hermegauss(_NODES if tau > 0 else 1)
    weights = weights / weights.sum()
    mean = np.maximum(expected, 1e-300)[:, None] * np.exp(tau * nodes)[None, :]
    lower, upper = _negative_binomial_tails(observed[:, None], mean, phi)
    lower, upper = lower @ weights, upper @ weights
    none = expected <= 0
    return np.where(none, 1.0, lower), np.where(none, (observed <= 0).astype(float), upper)


def event_counts(analysis: AnalysisTables, *, min_subjects: int = 3, study_id: str | None = None,
                 cut_date: date | None = None) -> pl.DataFrame:
    """Sites that record more or fewer events per subject than the rest of the study, for each events
    table present (ae, cm, mh, dv): under-reporting, or over-reporting and poor care.

    A site's observed count O (records of its enrolled subjects) is compared with the count E
    expected from the rest of the study's subjects in as long on study (:func:`site_events`; for mh,
    taken at screening, E = subjects x the rest's entries per subject). Counts are over-dispersed
    twice over: subjects differ (phi, within sites) and so do sites (tau, the natural SD of a site's
    relative rate, estimated robustly from all sites by :func:`rbqm.csm._contract.between_site_sd`
    with differences (O - E) / E and variances phi / E; 0 with fewer than 10 sites). Under the null
    O has mean E and variance phi E + tau^2 E^2, taken as the negative binomial of that mean and
    variance, whose two tails give the p-value.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; uses enrolled subjects with time on study (RFSTDTC,
        ``days_on_study``) and every one of ``EVENT_TABLES`` present.
    min_subjects : int, default 3
        Enrolled subjects a site (and the rest of the study) needs to be tested.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site and table, test ``event_counts``, variable the
        table (``AE``, ``CM``, ``MH``, ``DV``): ``statistic`` the site's events per subject-year (per
        subject for MH), ``p_value`` two-sided, 2 min(P(X <= O), P(X >= O)) capped at 1,
        ``q_value`` BH across all rows, ``effect`` log((O + 0.5) / (E + 0.5)) (negative: fewer).
        Row-free without any events table.

    See Also
    --------
    ae_under_reporting, run_csm

    Examples
    --------
    >>> from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=12, subjects=600, countries=2, seed=2, anomalies=(
    ...     AnomalySpec(type="ae_under_reporting", magnitude=0.9, sites=("1003",), start=0.0),))
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> out = event_counts(derive_tables(tables, as_of=cfg.end)).filter(variable="AE").sort("p_value")
    >>> out["description"][0]  # doctest: +ELLIPSIS
    'Site 1003 recorded 35 adverse events vs ... expected from subjects as long on study elsewhere (0.4 vs...'
    """
    caller = "event_counts"
    check_analysis(analysis, caller)
    check_integer(min_subjects, "min_subjects", caller, low=1)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    parts = []
    for table, (kind, _) in EVENT_TABLES.items():  # the (few) events tables, never the sites
        if table not in analysis:
            continue
        counts = site_events(analysis, table)
        total = counts.subjects.sum()
        tested = (counts.subjects >= min_subjects) & (total - counts.subjects >= min_subjects)
        if not tested.any():
            continue
        observed, expected = counts.observed[tested], counts.expected[tested]
        exposure = counts.exposure[tested]
        tau = between_site_sd(np.log((observed + 0.5) / (expected + 0.5)), counts.phi / (expected + 0.5))
        lower, upper = count_tails(observed, expected, phi=counts.phi, tau=tau)
        unit = "subject-year" if counts.timed else "subject"
        basis = "as long on study elsewhere" if counts.timed else "elsewhere"
        parts.append(pl.DataFrame({
            "site_id": np.array(counts.site_id)[tested], "variable": table.upper(),
            "statistic": observed / exposure, "expected_rate": expected / exposure,
            "p_value": np.minimum(1.0, 2 * np.minimum(lower, upper)),
            "effect": np.log((observed + 0.5) / (expected + 0.5)),
            "observed": observed.astype(np.int64), "expected": expected, "subjects": counts.subjects[tested],
        }).with_columns(description=pl.format(
            f"Site {{}} recorded {{}} {kind} vs {{}} expected from subjects {basis} ({{}} vs {{}} per "
            f"{unit}; {{}} subjects)",
            pl.col("site_id"), pl.col("observed"), pl.col("expected").round(1), pl.col("statistic").round(2),
            pl.col("expected_rate").round(2), pl.col("subjects"))))
    if not parts:
        return empty_findings()
    return finish(pl.concat(parts), test="event_counts", study_id=study_id, cut_date=cut_date)
