"""Adverse events, protocol deviations, eligibility, disposition and exposure.

Adverse events follow a Poisson process whose rate is highest early on treatment
and decays to a plateau, multiplied by a gamma frailty per subject (over-dispersion)
and a site effect. Deviations are Poisson events per subject-day with a site effect,
plus the out-of-window visits and eligibility violations they document. Every
subject's potential events are drawn over the whole protocol period from the
subject's key and then cut at the subject's end of study.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from synthetic.design import catalogue
from synthetic.injection import Injection
from synthetic.random import KeyedRandom

__all__ = ["make_adverse_events", "make_deviations", "make_eligibility", "make_disposition", "make_exposure"]

_HORIZON = 400          # days of potential follow-up per subject
_MAX_EVENTS = 250       # per subject and kind (the cap is never reached at realistic rates)


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row index and within-row event number for ``counts[i]`` events of row i."""
    row = np.repeat(np.arange(len(counts)), counts)
    j = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return row, j


def _enrolled(subjects: pl.DataFrame) -> dict[str, np.ndarray]:
    enr = subjects.filter("enrolled")
    return {c: enr[c].to_numpy() for c in ("sid", "key", "site_idx", "ARMCD", "rand_day", "study_end_day")} | {
        "death_day": enr["death_day"].fill_null(-1).to_numpy()}


def make_adverse_events(subjects: pl.DataFrame, sites: pl.DataFrame, inj: Injection, rng: KeyedRandom) -> pl.DataFrame:
    """Reported adverse events: ``ae`` columns (dates as study days) plus sid and known (day entered)."""
    cfg = catalogue()["adverse_events"]
    s = _enrolled(subjects)
    key, site = s["key"], s["site_idx"]
    tau, excess = cfg["early_days"], cfg["early_excess"]
    cumulative = lambda t: t + excess * tau * (1 - np.exp(-t / tau))  # noqa: E731 - integrated rate shape
    shape = cfg["frailty_shape"]
    frailty = rng.gamma("ae.frailty", shape, key) / shape
    arm_ratio = np.where(s["ARMCD"] == "A", cfg["active_ratio"], 1.0)
    intensity = cfg["rate"] * frailty * sites["ae_mult"].to_numpy()[site] * arm_ratio
    counts = np.minimum(rng.poisson("ae.count", intensity * cumulative(_HORIZON), key), _MAX_EVENTS)
    row, j = _expand(counts)
    ekey = key[row] * 256 + j
    grid = np.linspace(0, _HORIZON, 4 * _HORIZON + 1)
    onset_t = np.floor(np.interp(rng.uniform("ae.onset", ekey) * cumulative(_HORIZON), cumulative(grid), grid))
    onset = s["rand_day"][row] + onset_t.astype(np.int64)
    keep = onset <= s["study_end_day"][row]
    row, ekey, onset = row[keep], ekey[keep], onset[keep]

    terms = cfg["terms"]
    term = rng.choice("ae.term", np.array([t[1] for t in terms], dtype=float), ekey)
    serious = rng.uniform("ae.serious", ekey) < np.array([t[2] for t in terms])[term]
    grade_ns = rng.choice("ae.grade", np.array(cfg["grades_nonserious"]), ekey) + 1
    grade_s = rng.choice("ae.grade", np.array(cfg["grades_serious"]), ekey) + 1
    grade = np.where(serious, grade_s, grade_ns)
    duration = cfg["duration"]["median_days"] * np.exp(cfg["duration"]["sigma"] * rng.normal("ae.duration", ekey))
    end = onset + np.round(duration * np.where(serious, 2.0, 1.0)).astype(np.int64)
    decod = np.array([t[0] for t in terms])[term]

    # a fatal event for every death
    dead = np.flatnonzero(s["death_day"] >= 0)
    fatal_terms = np.array(cfg["fatal_terms"])
    fkey = key[dead] * 256 + 255
    f_onset = s["death_day"][dead] - np.floor(rng.uniform("ae.fatal_onset", fkey) * 4).astype(np.int64)
    row = np.concatenate([row, dead])
    ekey = np.concatenate([ekey, fkey])
    onset = np.concatenate([onset, np.maximum(f_onset, s["rand_day"][dead])])
    end = np.concatenate([end, s["death_day"][dead]])
    decod = np.concatenate([decod, fatal_terms[rng.choice("ae.fatal_term", np.ones(len(fatal_terms)), fkey)]])
    serious = np.concatenate([serious, np.ones(len(dead), bool)])
    grade = np.concatenate([grade, np.full(len(dead), 5)])
    site_of = site[row]

    active, m = inj.active("ae_under_reporting", site_of, onset)
    reported = ~(active & (grade < 5) & (rng.uniform("anomaly.ae_drop", ekey) < m))
    active, m = inj.active("sae_under_reporting", site_of, onset)
    downgraded = active & serious & (grade < 5) & (rng.uniform("anomaly.sae", ekey) < m)
    lag = rng.exponential("ae.report_lag", ekey) * cfg["report_lag_days"] + sites["entry_median"].to_numpy()[site_of]

    severity = np.array(["MILD", "MODERATE", "SEVERE", "SEVERE", "SEVERE"])[grade - 1]
    return pl.DataFrame({
        "sid": s["sid"][row], "ekey": ekey, "AEDECOD": decod, "AESTDTC": onset, "AEENDTC": end,
        "AESER": np.where(serious & ~downgraded, "Y", "N"), "AETOXGR": grade.astype(str), "AESEV": severity,
        "known": onset + np.round(lag).astype(np.int64),
    }).filter(pl.Series(reported)).sort("sid", "AESTDTC", "ekey").with_columns(
        AESEQ=pl.int_range(1, pl.len() + 1).over("sid").cast(pl.Int64),
    ).drop("ekey")


def make_deviations(subjects: pl.DataFrame, visits: pl.DataFrame, sites: pl.DataFrame, inj: Injection,
                    rng: KeyedRandom) -> pl.DataFrame:
    """Protocol deviations: ``dv`` columns (DVSTDTC as a study day) plus sid and known (day identified)."""
    cfg = catalogue()["deviations"]
    s = _enrolled(subjects)
    key, site = s["key"], s["site_idx"]
    mult = sites["dv_mult"].to_numpy()[site]
    parts = []
    # event keys: subject key * 1024 + offset, so every deviation of a subject has its own key
    for offset, (kind, important) in enumerate((("important", True), ("minor", False))):
        rate = cfg["rates"][kind] * mult
        counts = np.minimum(rng.poisson(f"dv.{kind}.count", rate * _HORIZON, key), _MAX_EVENTS)
        row, j = _expand(counts)
        ekey = key[row] * 1024 + 256 * offset + j
        day = s["rand_day"][row] + np.floor(rng.uniform(f"dv.{kind}.day", ekey) * _HORIZON).astype(np.int64)
        terms = cfg[kind]
        pick = rng.choice(f"dv.{kind}.term", np.ones(len(terms)), ekey)
        parts.append((row, ekey, day, np.array([t[0] for t in terms])[pick], np.array([t[1] for t in terms])[pick],
                      np.full(len(row), important)))
    # excess important deviations at anomalous sites, after the anomaly's start
    here, m, start = inj.site("excess_important_deviations", site)
    from_t = np.clip(start - s["rand_day"], 0, _HORIZON)
    rate = np.where(here, cfg["rates"]["important"] * mult * np.maximum(m - 1, 0), 0.0)
    counts = np.minimum(rng.poisson("anomaly.dv.count", rate * (_HORIZON - from_t), key), _MAX_EVENTS)
    row, j = _expand(counts)
    ekey = key[row] * 1024 + 512 + j
    day = s["rand_day"][row] + from_t[row] + np.floor(
        rng.uniform("anomaly.dv.day", ekey) * (_HORIZON - from_t[row])).astype(np.int64)
    terms = cfg["important"]
    pick = rng.choice("anomaly.dv.term", np.ones(len(terms)), ekey)
    parts.append((row, ekey, day, np.array([t[0] for t in terms])[pick], np.array([t[1] for t in terms])[pick],
                  np.ones(len(row), bool)))

    events = pl.DataFrame({
        "sid": np.concatenate([s["sid"][p[0]] for p in parts]),
        "ekey": np.concatenate([p[1] for p in parts]),
        "DVSTDTC": np.concatenate([p[2] for p in parts]),
        "DVTERM": np.concatenate([p[3] for p in parts]),
        "DVCAT": np.concatenate([p[4] for p in parts]),
        "important": np.concatenate([p[5] for p in parts]),
    }).join(subjects.select("sid", "study_end_day"), on="sid").filter(pl.col("DVSTDTC") <= pl.col("study_end_day"))

    oow_term, oow_cat = cfg["out_of_window"]
    oow = visits.filter("out_of_window").join(subjects.select("sid", "key"), on="sid").select(
        "sid", ekey=pl.col("key") * 1024 + 768 + pl.col("VISITNUM"), DVSTDTC="day",
        DVTERM=pl.lit(oow_term), DVCAT=pl.lit(oow_cat), important=pl.lit(False))
    oow = oow.filter(pl.Series(rng.uniform("dv.oow", oow["ekey"].to_numpy()) < cfg["out_of_window_reported"]))
    el_term, el_cat = cfg["eligibility"]
    elig = subjects.filter("elig_violation").select(
        "sid", ekey=pl.col("key") * 1024 + 1000, DVSTDTC="rand_day",
        DVTERM=pl.lit(el_term), DVCAT=pl.lit(el_cat), important=pl.lit(True))
    out = pl.concat([events.drop("study_end_day"), oow, elig])
    lag = rng.exponential("dv.detect", out["ekey"].to_numpy()) * cfg["detection_lag_days"]
    return out.with_columns(
        DVIMPFL=pl.when("important").then(pl.lit("Y")).otherwise(pl.lit("N")),
        known=pl.col("DVSTDTC") + pl.Series(np.round(lag).astype(np.int64)),
    ).drop("ekey", "important").sort("sid", "DVSTDTC", "DVTERM")


def make_eligibility(subjects: pl.DataFrame, rng: KeyedRandom) -> pl.DataFrame:
    """Criteria not met: one or two per screen failure, one per enrolled violator (``ie`` columns + sid, known)."""
    criteria = catalogue()["eligibility_criteria"]
    codes = np.array([c[0] for c in criteria])
    cats = np.array([c[1] for c in criteria])
    weights = np.array([c[2] for c in criteria], dtype=float)
    sf = subjects.filter(~pl.col("enrolled"))
    viol = subjects.filter("elig_violation")
    key = np.concatenate([sf["key"].to_numpy(), viol["key"].to_numpy()])
    first = rng.choice("ie.first", weights, key)
    second = (first + 1 + np.floor(rng.uniform("ie.second", key) * (len(codes) - 1)).astype(np.int64)) % len(codes)
    two = np.concatenate([rng.uniform("ie.two", sf["key"].to_numpy()) < 0.3, np.zeros(viol.height, bool)])
    assessed = np.concatenate([sf["sf_day"].to_numpy(), viol["consent_day"].to_numpy()])
    known = np.concatenate([sf["sf_day"].to_numpy(), viol["rand_day"].to_numpy() + np.round(
        60 * rng.exponential("ie.found", viol["key"].to_numpy())).astype(np.int64)])
    sid = np.concatenate([sf["sid"].to_numpy(), viol["sid"].to_numpy()])
    pick = np.concatenate([first, second[two]])
    rows = np.concatenate([np.arange(len(key)), np.flatnonzero(two)])
    return pl.DataFrame({
        "sid": sid[rows], "IETESTCD": codes[pick], "IECAT": cats[pick], "IEDTC": assessed[rows], "known": known[rows],
    }).sort("sid", "IETESTCD")


def make_disposition(subjects: pl.DataFrame) -> pl.DataFrame:
    """Milestones and disposition events (``ds`` columns, DSSTDTC as a study day, plus sid)."""
    s = subjects
    milestone, event = pl.lit("PROTOCOL MILESTONE"), pl.lit("DISPOSITION EVENT")
    parts = [
        s.select("sid", DSCAT=milestone, DSSCAT=pl.lit("STUDY PARTICIPATION"),
                 DSDECOD=pl.lit("INFORMED CONSENT OBTAINED"), DSSTDTC="consent_day"),
        s.filter("enrolled").select("sid", DSCAT=milestone, DSSCAT=pl.lit("STUDY PARTICIPATION"),
                                    DSDECOD=pl.lit("RANDOMIZED"), DSSTDTC="rand_day"),
        s.filter(~pl.col("enrolled")).select("sid", DSCAT=event, DSSCAT=pl.lit("SCREENING"),
                                             DSDECOD=pl.lit("SCREEN FAILURE"), DSSTDTC="sf_day"),
        s.filter("enrolled").select("sid", DSCAT=event, DSSCAT=pl.lit("STUDY TREATMENT"),
                                    DSDECOD="trt_reason", DSSTDTC="trt_end_day"),
        s.filter("enrolled").select("sid", DSCAT=event, DSSCAT=pl.lit("STUDY PARTICIPATION"),
                                    DSDECOD="study_reason", DSSTDTC="study_end_day"),
    ]
    return pl.concat(parts).with_columns(known=pl.col("DSSTDTC")).sort("sid", "DSSTDTC", "DSCAT", "DSSCAT")


def make_exposure(subjects: pl.DataFrame, visits: pl.DataFrame) -> pl.DataFrame:
    """Dosing intervals from each dosing visit to the day before the next one, or the last dose."""
    arms = catalogue()["study"]["arms"]
    arm = pl.DataFrame({"ARMCD": list(arms), "EXTRT": [a["treatment"] for a in arms.values()],
                        "EXDOSE": [float(a["dose"]) for a in arms.values()]})
    return (
        visits.filter("dosing").select("sid", "VISITNUM", EXSTDTC="day")
        .join(subjects.select("sid", "ARMCD", "trt_end_day"), on="sid")
        .sort("sid", "VISITNUM")
        .with_columns(
            EXENDTC=pl.min_horizontal(pl.col("EXSTDTC").shift(-1).over("sid") - 1, pl.col("trt_end_day")),
            EXDOSU=pl.lit(catalogue()["study"]["dose_unit"]),
        )
        .with_columns(EXENDTC=pl.max_horizontal("EXENDTC", "EXSTDTC"))
        .join(arm, on="ARMCD", how="left")
        .select("sid", "VISITNUM", "EXTRT", "EXDOSE", "EXDOSU", "EXSTDTC", "EXENDTC")
    )
