"""The visit schedule as it happened: windows, missed and out-of-window visits, visit dates."""

from __future__ import annotations

import numpy as np
import polars as pl

from synthetic.design import catalogue
from synthetic.injection import Injection
from synthetic.random import KeyedRandom
from synthetic.timeline import WorkCalendar

__all__ = ["make_visits", "schedule"]


def schedule() -> pl.DataFrame:
    """The protocol's visits: VISITNUM, VISIT, planned day, window, lab and dosing flags."""
    rows = catalogue()["visits"]
    return pl.DataFrame({
        "VISITNUM": [v["num"] for v in rows],
        "VISIT": [v["name"] for v in rows],
        "planned": [v["day"] if isinstance(v["day"], int) else None for v in rows],
        "window": [v["window"] for v in rows],
        "lab": [v["lab"] for v in rows],
        "dosing": [v["dosing"] for v in rows],
    })


def make_visits(subjects: pl.DataFrame, sites: pl.DataFrame, inj: Injection, rng: KeyedRandom,
                cal: WorkCalendar) -> pl.DataFrame:
    """One row per visit that took place (study days), screening included.

    Columns: sid, site_idx, country_idx, VISITNUM, VISIT, day, out_of_window, lab, dosing.
    Every enrolled subject's potential visits are drawn from their own keys and then
    kept if the subject was still on study (and, for dosing visits, on treatment), so
    a subject's visits do not depend on any other subject.
    """
    design = catalogue()["study"]
    sched = schedule()
    post = sched.filter(pl.col("VISITNUM") > 1)
    enr = subjects.filter("enrolled")
    n, v = enr.height, post.height
    key = np.repeat(enr["key"].to_numpy(), v)
    vnum = np.tile(post["VISITNUM"].to_numpy(), n)
    vkey = key * 32 + vnum
    site = np.repeat(enr["site_idx"].to_numpy(), v)
    country = np.repeat(enr["country_idx"].to_numpy(), v)
    rand = np.repeat(enr["rand_day"].to_numpy(), v)
    window = np.tile(post["window"].to_numpy(), n)
    planned_t = np.tile(post["planned"].fill_null(0).to_numpy() - 1, n)
    is_fu = np.tile(post["planned"].is_null().to_numpy(), n)
    fu_day = np.repeat(enr["fu_day"].to_numpy(), v)
    trt_t = np.repeat((enr["trt_end_day"] - enr["rand_day"]).to_numpy(), v)

    visit_mult = sites["visit_mult"].to_numpy()[site]
    noise = np.round(rng.normal("visit.noise", vkey) * window / 2.5).astype(np.int64)
    oow = (vnum >= 5) & ~is_fu & (rng.uniform("visit.oow", vkey) < design["out_of_window"] * visit_mult)
    extra = window + 1 + np.floor(rng.uniform("visit.oow_size", vkey) * 7).astype(np.int64)
    shift = np.where(rng.uniform("visit.oow_sign", vkey) < 0.5, -extra, extra)
    day = rand + planned_t + np.where(oow, shift, noise)
    weekend_ok = rng.uniform("visit.weekend", vkey) < design["weekend_visits"]
    day = np.where(weekend_ok, day, cal.next_working_day(country, day))
    day = np.where(vnum == 2, rand, np.where(is_fu, fu_day, day))
    active, m = inj.active("implausible_visit_dates", site, day)
    odd = active & (vnum >= 3) & (rng.uniform("anomaly.visit_date", vkey) < m)
    day = np.where(odd, cal.next_weekend_day(day, rng.uniform("anomaly.visit_sunday", vkey) < 0.5), day)

    missed = (vnum != 2) & ~is_fu & (rng.uniform("visit.missed", vkey) < design["missed_visit"] * visit_mult)
    end = np.repeat(enr["study_end_day"].to_numpy(), v)
    happened = ~missed & (day <= end) & np.where(is_fu, True, planned_t <= trt_t)
    planned_day = np.where(is_fu, fu_day, rand + planned_t)
    after = pl.DataFrame({
        "sid": np.repeat(enr["sid"].to_numpy(), v), "site_idx": site, "country_idx": country,
        "VISITNUM": vnum, "day": day, "out_of_window": np.abs(day - planned_day) > window,
    }).filter(pl.Series(happened))
    screening = subjects.select("sid", "site_idx", "country_idx", pl.lit(1, pl.Int64).alias("VISITNUM"),
                                pl.col("consent_day").alias("day"), pl.lit(False).alias("out_of_window"))
    return (
        pl.concat([screening, after])
        .join(sched.select("VISITNUM", "VISIT", "lab", "dosing"), on="VISITNUM", how="left")
        .sort("sid", "VISITNUM")
    )
