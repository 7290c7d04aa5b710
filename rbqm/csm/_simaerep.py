"""AE under-reporting by simulation against similar subjects (simaerep, Koneswarakantha 2020).

Reference section 6. Every enrolled subject with a dated visit contributes a row of cumulative AE
counts by visit; each site's observed AEs per visit is compared with ``r`` replicates in which each
of its subjects is replaced by a subject drawn from the whole study among those with at least as
many visits, taken at the same visit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
from scipy.stats import chi2

from rbqm.csm._contract import check_analysis, check_integer, empty_findings, finish, study_stamp
from rbqm.derive import AnalysisTables, to_date
from rbqm.stats import benjamini_hochberg

__all__ = ["ae_under_reporting", "SiteProbabilities", "SubjectVisits", "event_probabilities",
           "simulate_sites", "site_variation", "subject_visits"]

#: Largest (subjects x replicates) block drawn at once: bounds memory whatever the study size.
_BLOCK = 1 << 21
_MIN_SITES_FOR_VARIATION = 10
_TAU_GRID = np.linspace(0.0, 3.0, 601)
_CHI2_1_MEDIAN = float(chi2.median(1))


@dataclass(frozen=True)
class SubjectVisits:
    """The simulation's input: subjects ordered by site, then USUBJID.

    ``site_id`` per site (in order), ``site`` the site index of each subject, ``visits`` each subject's
    number of visits (>= 1) and ``cumulative[i, k - 1]`` subject i's AEs counted by its visit k
    (only k <= visits[i] is meaningful; the rest is 0).
    """

    site_id: list[str]
    site: np.ndarray
    visits: np.ndarray
    cumulative: np.ndarray


def subject_visits(analysis: AnalysisTables, *, serious: bool = False) -> SubjectVisits:
    """Cumulative AE counts per enrolled subject and visit (visits ordered by date, then VISITNUM).

    An AE is counted at the subject's first visit on or after its onset date (AESTDTC, partial dates
    imputed to the start of the period); AEs without an onset date or after the subject's last visit
    are not counted.
    """
    subjects = analysis["subjects"]
    if "enrolled" in subjects.collect_schema().names():
        subjects = subjects.filter(pl.col("enrolled").fill_null(False))
    visits = (
        analysis["sv"].select("USUBJID", "VISITNUM", visit_date=to_date("SVSTDTC"))
        .filter(pl.col("visit_date").is_not_null())
        .join(subjects.select("USUBJID", site_id=pl.col("SITEID").cast(pl.String)), on="USUBJID")
        .filter(pl.col("site_id").is_not_null())
        .sort(["USUBJID", "visit_date", "VISITNUM"])
        .with_columns(visit=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("USUBJID"))
    )
    ae = analysis["ae"]
    if serious:
        ae = ae.filter(pl.col("AESER").str.to_uppercase() == "Y")
    onsets = (ae.select("USUBJID", onset=to_date("AESTDTC"))
              .filter(pl.col("onset").is_not_null()).sort("onset"))
    placed = onsets.join_asof(visits.select("USUBJID", "visit_date", "visit").sort("visit_date"),
                              left_on="onset", right_on="visit_date", by="USUBJID", strategy="forward",
                              check_sortedness=False)
    per_visit = (placed.filter(pl.col("visit").is_not_null())
                 .group_by("USUBJID", "visit").agg(events=pl.len()))
    grid = (visits.join(per_visit, on=["USUBJID", "visit"], how="left")
            .with_columns(pl.col("events").fill_null(0).cast(pl.Int64))
            .sort(["site_id", "USUBJID", "visit"])
            .with_columns(cumulative=pl.col("events").cum_sum().over("USUBJID"),
                          subject=pl.col("USUBJID").rle_id().cast(pl.Int64))
            .select("site_id", "subject", "visit", "cumulative")
            .collect())
    if grid.height == 0:
        none = np.zeros(0, np.int64)
        return SubjectVisits([], none, none, np.zeros((0, 0), np.int64))
    per_subject = (grid.group_by("subject").agg(pl.col("site_id").first(), visits=pl.col("visit").max())
                   .sort("subject")
                   .with_columns(site=pl.col("site_id").rle_id().cast(pl.Int64)))
    visits_per = per_subject["visits"].to_numpy()
    cumulative = np.zeros((per_subject.height, int(visits_per.max())), np.int64)
    cumulative[grid["subject"].to_numpy(), grid["visit"].to_numpy() - 1] = grid["cumulative"].to_numpy()
    site_ids = per_subject["site_id"].unique(maintain_order=True).to_list()
    return SubjectVisits(site_ids, per_subject["site"].to_numpy(), visits_per, cumulative)


def simulate_sites(data: SubjectVisits, *, r: int, seed: int) -> np.ndarray:
    """Replicate AE totals per site under the null: an array (sites, r) of integers.

    The pool is every subject, ordered by decreasing number of visits (ties in input order), so the
    subjects with at least k visits are its first ``n_k``. Subject i of a site is replaced by pool
    entry ``floor(u * n_{v_i})`` at visit v_i, with ``u`` the uniforms of
    ``numpy.random.default_rng(seed).random((subjects, r))`` (row i for subject i; drawn in blocks of
    whole sites, which leaves the stream unchanged).
    """
    visits, cumulative, site = data.visits, data.cumulative, data.site
    order = np.argsort(-visits, kind="stable")
    pool = cumulative[order]
    # at_least[k]: subjects with at least k visits, k = 0..max
    at_least = np.cumsum(np.bincount(visits, minlength=cumulative.shape[1] + 1)[::-1])[::-1]
    high = at_least[visits]
    starts = np.flatnonzero(np.r_[True, site[1:] != site[:-1]])
    ends = np.r_[starts[1:], len(site)]
    rng = np.random.default_rng(seed)
    totals = np.empty((len(starts), r), np.int64)
    first = 0
    while first < len(starts):  # blocks of whole sites
        last = first + 1
        while last < len(starts) and (ends[last] - starts[first]) * r <= _BLOCK:
            last += 1
        lo, hi = starts[first], ends[last - 1]
        u = rng.random((hi - lo, r))
        pick = np.minimum((u * high[lo:hi, None]).astype(np.int64), high[lo:hi, None] - 1)
        drawn = pool[pick, (visits[lo:hi] - 1)[:, None]]
        totals[first:last] = np.add.reduceat(drawn, starts[first:last] - lo, axis=0)
        first = last
    return totals


def site_variation(observed: np.ndarray, totals: np.ndarray) -> float:
    """Natural between-site variation of AE reporting beyond what the simulation explains: tau, the SD
    of a site's log rate ratio, estimated robustly from all sites (0 with fewer than 10 usable sites).

    With y = log((O + 0.5) / (E + 0.5)) per site (O observed, E the mean of its replicates) and
    v = Var(replicates) / (E + 0.5)^2, tau is the smallest value on a 0.005 grid in [0, 3] for which
    the median over sites of y^2 / (v + tau^2) is at most the median of a chi-square with 1 degree of
    freedom (a median-based Paule-Mandel estimate, so a few deviant sites barely move it).
    """
    expected, variance = totals.mean(axis=1), totals.var(axis=1)
    usable = variance > 0
    if usable.sum() < _MIN_SITES_FOR_VARIATION:
        return 0.0
    y = np.log((observed[usable] + 0.5) / (expected[usable] + 0.5))
    v = variance[usable] / (expected[usable] + 0.5) ** 2
    criterion = np.median(y[None, :] ** 2 / (v[None, :] + _TAU_GRID[:, None] ** 2), axis=1)
    fits = np.flatnonzero(criterion <= _CHI2_1_MEDIAN)
    return float(_TAU_GRID[fits[0]] if fits.size else _TAU_GRID[-1])


@dataclass(frozen=True)
class SiteProbabilities:
    """Per site: p-values and BH q-values of each direction, and event_prob in [-1, 1]."""

    p_under: np.ndarray
    p_over: np.ndarray
    q_under: np.ndarray
    q_over: np.ndarray
    event_prob: np.ndarray


def event_probabilities(observed: np.ndarray, totals: np.ndarray, *, tau: float = 0.0,
                        seed: int = 1) -> SiteProbabilities:
    """Compare each site's observed AE total with its replicate totals (one row per site).

    ``p_under`` is the share of replicates at most the observed total (so P(under) = 1 - p_under is
    the share above it), ``p_over`` the share at least the observed total. With ``tau > 0`` each
    replicate total is multiplied by exp(tau Z), Z standard normal from
    ``numpy.random.default_rng((seed, 1)).standard_normal(totals.shape)``: a site's own reporting
    rate may differ from the study's by the natural between-site variation. Benjamini-Hochberg
    adjusts each direction across sites; event_prob = -(1 - q_under) when that exceeds 1 - q_over,
    1 - q_over when that is larger, else 0.
    """
    sims = totals
    if tau > 0:
        sims = totals * np.exp(tau * np.random.default_rng((seed, 1)).standard_normal(totals.shape))
    p_under = (sims <= observed[:, None]).mean(axis=1)
    p_over = (sims >= observed[:, None]).mean(axis=1)
    q_under = benjamini_hochberg(pl.Series(p_under, dtype=pl.Float64)).to_numpy()
    q_over = benjamini_hochberg(pl.Series(p_over, dtype=pl.Float64)).to_numpy()
    under, over = 1 - q_under, 1 - q_over
    event_prob = np.where(under > over, -under, np.where(over > under, over, 0.0))
    return SiteProbabilities(p_under, p_over, q_under, q_over, event_prob)


def _describe(what: str, tau: float) -> pl.Expr:
    def num(x: pl.Expr) -> pl.Expr:
        return pl.when(x >= 0.1).then(x.round(2).cast(pl.String)).otherwise(x.round(3).cast(pl.String))

    direction = pl.when(pl.col("effect") < 0).then(pl.lit("under")).otherwise(pl.lit("over"))
    allowing = f", allowing {round(100 * (np.exp(tau) - 1))}% natural variation between sites" if tau else ""
    return pl.format("Site {} reported {} " + what + " per visit vs {} expected from subjects with as many "
                     "visits across the study (P({}-reporting) = {}" + allowing + "; {} subjects, {} visits)",
                     pl.col("site_id"), num(pl.col("statistic")), num(pl.col("expected")), direction,
                     pl.col("effect").abs().round(3), pl.col("subjects"), pl.col("visits"))


def ae_under_reporting(analysis: AnalysisTables, *, r: int = 1000, seed: int = 1, serious: bool = False,
                       overdispersion: bool = True, study_id: str | None = None,
                       cut_date: date | None = None) -> pl.DataFrame:
    """AE (or serious AE) under- and over-reporting per site by simulation (simaerep).

    Per site, the observed rate is the sum of its subjects' cumulative AEs at their last visit over
    the sum of their visit counts. Each of ``r`` replicates replaces every subject of the site by a
    subject drawn (with replacement) from the whole study among those with at least as many visits,
    counted at the same visit (:func:`simulate_sites`). P(under) is the share of replicates with
    more AEs than the site, P(over) the share with fewer; Benjamini-Hochberg adjusts each
    direction's p-values across the study's sites, giving event_prob in [-1, 1]
    (:func:`event_probabilities`).

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; needs ``ae`` and ``sv``. Only enrolled subjects with a
        dated visit count; visits are ordered by date, then VISITNUM (:func:`subject_visits`).
    r : int, default 1000
        Replicates (p-value resolution 1/r).
    seed : int, default 1
        Seed of ``numpy.random.default_rng``; see :func:`simulate_sites` for the draw order.
    serious : bool, default False
        Count only serious AEs (AESER = Y); the test is then ``sae_under_reporting``.
    overdispersion : bool, default True
        Allow for natural between-site variation of reporting (:func:`site_variation`, estimated
        from all sites, needs 10) in the null. False gives the published simaerep, which treats
        every site's subjects as exchangeable with the study's and so flags large sites whose
        patients simply have fewer or more AEs.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per site with a subject: test ``ae_under_reporting`` (variable
        ``AE``) or ``sae_under_reporting`` (variable ``AE:SERIOUS``); ``statistic`` the observed AEs
        per visit; ``p_value`` two-sided, 2 min(p_under, p_over) capped at 1, and ``q_value`` its BH
        adjustment across sites (as for every CSM test); ``effect`` the event_prob (negative =
        under-reporting; simaerep's own per-direction BH). Row-free without ``ae`` or ``sv``.

    See Also
    --------
    digit_preference, low_variability, run_csm

    Examples
    --------
    >>> from synthetic import SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=5, subjects=150, countries=2, seed=2)
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> analysis = derive_tables(tables, as_of=cfg.end)
    >>> out = ae_under_reporting(analysis, r=200)
    >>> out.height, out["effect"].is_between(-1, 1).all()
    (5, True)
    >>> out["description"][0]  # doctest: +ELLIPSIS
    'Site 1001 reported ... AEs per visit vs ... expected from subjects with as many visits across...'
    """
    caller = "ae_under_reporting"
    check_analysis(analysis, caller)
    check_integer(r, "r", caller, low=1)
    check_integer(seed, "seed", caller, low=0)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    if "ae" not in analysis or "sv" not in analysis:
        return empty_findings()
    data = subject_visits(analysis, serious=bool(serious))
    if not data.site_id:
        return empty_findings()
    totals = simulate_sites(data, r=r, seed=seed)
    n_sites = len(data.site_id)
    last = data.cumulative[np.arange(len(data.visits)), data.visits - 1]
    observed = np.bincount(data.site, weights=last, minlength=n_sites)
    visits = np.bincount(data.site, weights=data.visits, minlength=n_sites)
    tau = site_variation(observed, totals) if overdispersion else 0.0
    probs = event_probabilities(observed, totals, tau=tau, seed=seed)
    found = pl.DataFrame({
        "site_id": data.site_id,
        "variable": "AE:SERIOUS" if serious else "AE",
        "statistic": observed / visits,
        "p_value": np.minimum(1.0, 2 * np.minimum(probs.p_under, probs.p_over)),
        "effect": probs.event_prob,
        "expected": totals.mean(axis=1) / visits,
        "subjects": np.bincount(data.site, minlength=n_sites),
        "visits": visits.astype(np.int64),
    })
    found = found.with_columns(description=_describe("serious AEs" if serious else "AEs", tau))
    return finish(found, test="sae_under_reporting" if serious else "ae_under_reporting",
                  study_id=study_id, cut_date=cut_date)
