"""Subjects: enrolment per site, screening, demographics and each subject's course.

Enrolment is a Poisson-gamma process: site rates are gamma-distributed (country
effect times site effect), and given the study total the site counts are
multinomial. Screen failures per site are negative binomial. Each enrolled subject's
study withdrawal, treatment discontinuation and death are exponential times drawn
from the subject's key; the earliest decides how and when the subject leaves.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import stats
from scipy.special import expit

from synthetic.design import SynthConfig, catalogue
from synthetic.injection import Injection
from synthetic.random import KeyedRandom
from synthetic.timeline import WorkCalendar

__all__ = ["make_subjects", "SLOT_BITS"]

SLOT_BITS = 20
_SF_SLOT = 1 << 19
_EXTRA_SF_SLOT = _SF_SLOT + (1 << 18)


def _piecewise_time(e: np.ndarray, hazard: np.ndarray, from_day: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Event time for a unit exponential ``e`` whose hazard is multiplied by ``ratio`` after ``from_day``."""
    t = e / hazard
    late = t > from_day
    return np.where(late, from_day + (t - from_day) / np.where(ratio > 0, ratio, 1.0), t)


def _screen_failures(n_enrolled: np.ndarray, p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Failures before ``n_enrolled`` successes (negative binomial by inversion; 0 where nobody enrolled)."""
    count = stats.nbinom.ppf(u, np.maximum(n_enrolled, 1), 1.0 - p)
    return np.where(n_enrolled > 0, count, 0).astype(np.int64)


def make_subjects(cfg: SynthConfig, sites: pl.DataFrame, inj: Injection, rng: KeyedRandom,
                  cal: WorkCalendar, n_enrolled: np.ndarray) -> pl.DataFrame:
    """One row per screened subject with demographics, key dates (study days) and disposition.

    Columns: sid (row number), key, site_idx, country_idx, SITEID, COUNTRY, INVNAM,
    USUBJID, enrolled, ARMCD, AGE, SEX, consent_day, rand_day, sf_day, trt_end_day,
    trt_reason, fu_day, study_end_day, study_reason, death_day, elig_violation,
    fabricated, donor_sid.
    """
    design = catalogue()["study"]
    n_sites = sites.height
    site = np.arange(n_sites)
    activation = sites["activation_day"].to_numpy()
    close = int(design["enrolment_close"] * cfg.end_day)
    lo, hi = design["screening_days"]

    # screen failures: the site's base count, plus the extra of a high-screen-failure anomaly
    p_sf = expit(sites["sf_logit"].to_numpy())
    n_sf = _screen_failures(n_enrolled, p_sf, rng.uniform("sf.count", site))
    injected, mag, start = inj.site("high_screen_failure", site)
    after_share = np.clip((close - np.maximum(start, activation)) / np.maximum(close - activation, 1), 0, 1)
    n_after = np.round(n_enrolled * after_share).astype(np.int64)
    u_extra = rng.uniform("anomaly.sf.count", site)
    extra = np.where(injected, np.maximum(_screen_failures(n_after, np.maximum(mag, p_sf), u_extra)
                                          - _screen_failures(n_after, p_sf, u_extra), 0), 0)

    def rows(counts: np.ndarray, first_slot: int) -> tuple[np.ndarray, np.ndarray]:
        site_of = np.repeat(site, counts)
        slot = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + first_slot
        return site_of, slot

    parts = [rows(n_enrolled, 0), rows(n_sf, _SF_SLOT), rows(extra, _EXTRA_SF_SLOT)]
    site_of = np.concatenate([p[0] for p in parts])
    slot = np.concatenate([p[1] for p in parts])
    enrolled = np.concatenate([np.ones(n_enrolled.sum(), bool), np.zeros(n_sf.sum() + extra.sum(), bool)])
    is_extra = slot >= _EXTRA_SF_SLOT
    key = (site_of.astype(np.int64) << SLOT_BITS) | slot
    country = sites["country_idx"].to_numpy()[site_of]

    first = np.where(is_extra, np.maximum(start[site_of], activation[site_of]), activation[site_of])
    last = np.where(enrolled, close - hi, close)
    consent = first + np.floor(rng.uniform("subject.consent", key) * np.maximum(last - first, 1)).astype(np.int64)
    consent = cal.next_working_day(country, consent)
    screening = lo + np.floor(rng.uniform("subject.screening", key) * (hi - lo + 1)).astype(np.int64)
    rand_day = np.where(enrolled, cal.next_working_day(country, consent + screening), -1)
    sf_day = np.where(enrolled, -1, cal.next_working_day(country, consent + np.maximum(screening - 2, 1)))

    arms = design["arms"]
    arm_codes = np.array(list(arms))
    arm = arm_codes[rng.choice("subject.arm", np.array([a["share"] for a in arms.values()]), key)]
    age = np.clip(np.round(57 + 11 * rng.normal("subject.age", key)), 18, 85).astype(np.int64)
    sex = np.where(rng.uniform("subject.sex", key) < 0.48, "F", "M")

    # disposition: the earliest of withdrawal, treatment discontinuation, death, completion
    hz = design["hazards"]
    mult = sites["hazard_mult"].to_numpy()[site_of]
    here, ratio, a_start = inj.site("high_discontinuation", site_of)
    from_day = np.maximum(a_start - rand_day, 0).astype(np.float64)
    ratio = np.where(here, ratio, 1.0)
    t_wd = _piecewise_time(rng.exponential("disp.withdrawal", key), hz["study_withdrawal"] / 365 * mult, from_day, ratio)
    t_td = _piecewise_time(rng.exponential("disp.treatment", key), hz["treatment_discontinuation"] / 365 * mult,
                           from_day, ratio)
    t_death = rng.exponential("disp.death", key) / (hz["death"] / 365 * np.exp(0.03 * (age - 57)))
    treatment_days = design["treatment_days"] - 1
    t_trt = np.floor(np.minimum.reduce([t_td, t_wd, t_death, np.full(len(key), float(treatment_days))]))
    cause = np.argmin(np.stack([np.full(len(key), treatment_days + 0.5), t_td, t_wd, t_death]), axis=0)
    disp = catalogue()["disposition"]
    trt_reasons = np.array([r for r, _ in disp["treatment_reasons"]])
    wd_reasons = np.array([r for r, _ in disp["withdrawal_reasons"]])
    trt_reason_pick = trt_reasons[rng.choice("disp.trt_reason", np.array([p for _, p in disp["treatment_reasons"]]), key)]
    wd_reason_pick = wd_reasons[rng.choice("disp.wd_reason", np.array([p for _, p in disp["withdrawal_reasons"]]), key)]
    trt_reason = np.select([cause == 0, cause == 1, cause == 2], ["COMPLETED", trt_reason_pick, wd_reason_pick], "DEATH")

    fu_offset = catalogue()["study"]["follow_up_days"] + np.round(7 / 2.5 * rng.normal("visit.fu", key))
    fu_day = cal.next_working_day(country, rand_day + (t_trt + fu_offset).astype(np.int64))
    wd_day = rand_day + np.floor(t_wd).astype(np.int64)
    death_abs = rand_day + np.floor(t_death).astype(np.int64)
    study_end = np.minimum.reduce([fu_day, wd_day, death_abs])
    study_reason = np.select(
        [death_abs <= np.minimum(fu_day, wd_day), wd_day < fu_day, cause == 0],
        ["DEATH", wd_reason_pick, "COMPLETED"], trt_reason,
    )
    died = enrolled & (study_reason == "DEATH")

    # eligibility violations among the enrolled: the site's base rate plus any anomaly
    p_elig = design["eligibility_violation"] * sites["elig_mult"].to_numpy()[site_of]
    active, m = inj.active("excess_eligibility_violations", site_of, rand_day)
    elig = enrolled & ((rng.uniform("subject.eligibility", key) < p_elig)
                       | (active & (rng.uniform("anomaly.eligibility", key) < m)))
    active, m = inj.active("fabricated_subjects", site_of, rand_day)
    fabricated = enrolled & active & (rng.uniform("anomaly.fabricated", key) < m)

    none = np.int64(-1)
    frame = pl.DataFrame({
        "key": key, "site_idx": site_of, "country_idx": country, "enrolled": enrolled,
        "ARMCD": np.where(enrolled, arm, "SCRNFAIL"), "AGE": age, "SEX": sex,
        "consent_day": consent, "rand_day": rand_day, "sf_day": sf_day,
        "trt_end_day": np.where(enrolled, rand_day + t_trt.astype(np.int64), none),
        "trt_reason": np.where(enrolled, trt_reason, None),
        "fu_day": np.where(enrolled, fu_day, none),
        "study_end_day": np.where(enrolled, study_end, sf_day),
        "study_reason": np.where(enrolled, study_reason, "SCREEN FAILURE"),
        "death_day": np.where(died, death_abs, none),
        "elig_violation": elig, "fabricated": fabricated,
    }).with_columns(
        pl.col("rand_day", "sf_day", "trt_end_day", "fu_day", "death_day").replace(-1, None),
    ).join(sites.select("site_idx", "SITEID", "COUNTRY", "INVNAM"), on="site_idx", how="left")
    frame = frame.sort("site_idx", "consent_day", "key").with_row_index("sid").with_columns(
        pl.col("sid").cast(pl.Int64),
        USUBJID=pl.format("{}-{}-{}", pl.lit(cfg.study_id), pl.col("SITEID"),
                          (pl.int_range(1, pl.len() + 1).over("site_idx")).cast(pl.String).str.zfill(4)),
    )
    return _choose_donors(frame, rng)


def _choose_donors(subjects: pl.DataFrame, rng: KeyedRandom) -> pl.DataFrame:
    """Give each fabricated subject a real subject of the same site to copy from (none: not fabricated)."""
    real = subjects.filter(pl.col("enrolled") & ~pl.col("fabricated"))  # in sid order, so grouped by site
    real_site, real_sid = real["site_idx"].to_numpy(), real["sid"].to_numpy()
    site = subjects["site_idx"].to_numpy()
    first = np.searchsorted(real_site, site, side="left")
    count = np.searchsorted(real_site, site, side="right") - first
    pick = first + np.floor(rng.uniform("anomaly.donor", subjects["key"].to_numpy()) * count).astype(np.int64)
    has_donor = subjects["fabricated"].to_numpy() & (count > 0)
    donor = np.where(has_donor, real_sid[np.minimum(pick, max(len(real_sid) - 1, 0))] if len(real_sid) else -1, -1)
    return subjects.with_columns(
        fabricated=pl.Series(has_donor), donor_sid=pl.Series(donor).replace(-1, None))
