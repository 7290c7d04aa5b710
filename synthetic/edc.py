"""EDC operations: pages and their entry lag, data points and their changes, queries.

Every visit that took place expects its visit forms (VISIT and VS always, LB at
laboratory visits, EX at dosing visits). A page is entered after a log-normal lag
with a site effect; each of its data points may draw a query (raised by an edit
check, data management, the monitor or medical review) that the site answers after a
site-specific delay, and may be changed after entry, spontaneously or because of a
query. Change and query dates are kept so a data cut counts only what had happened.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from synthetic.design import catalogue
from synthetic.injection import Injection
from synthetic.random import KeyedRandom

__all__ = ["make_pages", "make_datapoints", "make_queries", "form_fields"]


def form_fields() -> pl.DataFrame:
    """The visit forms and their fields: FORM, FIELD, form_idx, field_idx, query probability, when due."""
    forms = catalogue()["edc"]["forms"]
    lab_codes = [a["code"] for a in catalogue()["labs"]]
    rows = []
    for form_idx, (form, spec) in enumerate(forms.items()):
        fields = lab_codes if spec["fields"] == "labs" else spec["fields"]
        due = "lab" if spec.get("lab_visits") else "dosing" if spec.get("dosing_visits") else "every"
        rows += [{"FORM": form, "FIELD": f, "form_idx": form_idx, "field_idx": i, "query_p": spec["query"], "due": due}
                 for i, f in enumerate(fields)]
    return pl.DataFrame(rows).with_columns(pl.col("FORM", "FIELD").cast(pl.Categorical))


def make_pages(visits: pl.DataFrame, subjects: pl.DataFrame, sites: pl.DataFrame, inj: Injection,
               rng: KeyedRandom) -> pl.DataFrame:
    """One row per expected page: sid, site_idx, FORM, VISITNUM, VISITDTC (day) and entry (day entered)."""
    forms = form_fields().select("FORM", "form_idx", "due").unique().sort("form_idx")
    pages = (
        visits.select("sid", "site_idx", "VISITNUM", "day", "lab", "dosing")
        .join(forms, how="cross")
        .filter((pl.col("due") == "every") | ((pl.col("due") == "lab") & pl.col("lab"))
                | ((pl.col("due") == "dosing") & pl.col("dosing")))
        .join(subjects.select("sid", "key"), on="sid")
    )
    vkey = pages["key"].to_numpy() * 32 + pages["VISITNUM"].to_numpy()
    pkey = vkey * 8 + pages["form_idx"].to_numpy()
    site = pages["site_idx"].to_numpy()
    day = pages["day"].to_numpy()
    lag_cfg = catalogue()["study"]["entry_lag"]
    sigma = lag_cfg["sigma"]
    lag = sites["entry_median"].to_numpy()[site] * np.exp(
        sigma * (0.8 * rng.normal("page.visit_lag", vkey) + 0.6 * rng.normal("page.lag", pkey)))
    active, m = inj.active("late_data_entry", site, day)
    lag = np.where(active, lag * m, lag)
    return pages.select(
        "sid", "site_idx", "FORM", "form_idx", pl.col("VISITNUM").cast(pl.Float64), "key",
        VISITDTC="day", entry=pl.col("day") + pl.Series(np.round(lag).astype(np.int64)),
    )


def _answer_lag(rng: KeyedRandom, stream: str, keys: np.ndarray, site: np.ndarray, open_day: np.ndarray,
                sites: pl.DataFrame, inj: Injection) -> np.ndarray:
    answer = catalogue()["edc"]["answer"]
    lag = sites["answer_median"].to_numpy()[site] * np.exp(answer["sigma"] * rng.normal(stream, keys))
    active, m = inj.active("query_backlog", site, open_day)
    return np.round(np.where(active, lag * m, lag)).astype(np.int64)


def make_datapoints(pages: pl.DataFrame, sites: pl.DataFrame, inj: Injection,
                    rng: KeyedRandom) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every data point of every page with its change dates, and the queries raised on them.

    Returns ``(datapoints, queries)``. Data points: sid, FORM, FIELD, VISITNUM, entry,
    change1, change2, change3 (study days of changes after entry; null if none).
    Queries: sid, FORM, FIELD, VISITNUM, QRYOPENDTC, QRYANSDTC, QRYCLOSEDTC, QRYSOURCE.
    """
    edc = catalogue()["edc"]
    fields = form_fields().select("form_idx", "FIELD", pl.col("field_idx").cast(pl.Int8), pl.col("query_p").cast(pl.Float32))
    dp = pages.select("sid", "site_idx", "FORM", "form_idx", "VISITNUM", "key", "entry").join(fields, on="form_idx")
    dkey = ((dp["key"].to_numpy() * 32 + dp["VISITNUM"].to_numpy().astype(np.int64)) * 8
            + dp["form_idx"].to_numpy()) * 32 + dp["field_idx"].to_numpy()
    site = dp["site_idx"].to_numpy()
    entry = dp["entry"].to_numpy()
    query = rng.uniform("dp.query", dkey) < dp["query_p"].to_numpy() * sites["query_mult"].to_numpy()[site]

    # queries: drawn only for the data points that have one
    qkey, qsite, qentry = dkey[query], site[query], entry[query]
    sources = edc["sources"]
    source = rng.choice("dp.source", np.array([s[1] for s in sources]), qkey)
    delay = np.array([s[2] for s in sources], dtype=float)[source]
    opened = qentry + np.round(rng.exponential("dp.open", qkey) * delay).astype(np.int64)
    answered = opened + _answer_lag(rng, "dp.answer", qkey, qsite, opened, sites, inj)
    closed = answered + np.round(rng.exponential("dp.close", qkey) * edc["close_days"]).astype(np.int64)
    queries = dp.filter(pl.Series(query)).select("sid", "FORM", "FIELD", "VISITNUM").with_columns(
        qkey=pl.Series(qkey),
        QRYOPENDTC=pl.Series(opened), QRYANSDTC=pl.Series(answered), QRYCLOSEDTC=pl.Series(closed),
        QRYSOURCE=pl.Series(np.array([s[0] for s in sources])[source]),
    )
    changed_by_query = np.zeros(len(dkey), bool)
    changed_by_query[np.flatnonzero(query)] = rng.uniform("dp.query_change", qkey) < edc["change_after_query"]
    answer_day = np.zeros(len(dkey), np.int64)
    answer_day[query] = answered

    spont = edc["spontaneous_change"]
    p = spont["rate"] * sites["change_mult"].to_numpy()[site]
    change2 = rng.uniform("dp.change1", dkey) < p
    change3 = change2 & (rng.uniform("dp.change2", dkey) < 0.25)
    day2 = entry + 1 + np.round(rng.exponential("dp.change1_day", dkey) * spont["mean_days"]).astype(np.int64)
    day3 = day2 + 1 + np.round(rng.exponential("dp.change2_day", dkey) * spont["mean_days"]).astype(np.int64)
    day = pl.Int32
    datapoints = dp.select(
        "sid", "FORM", "FIELD", "VISITNUM", pl.col("entry").cast(day),
        change1=pl.Series(np.where(changed_by_query, answer_day, -1)).cast(day),
        change2=pl.Series(np.where(change2, day2, -1)).cast(day),
        change3=pl.Series(np.where(change3, day3, -1)).cast(day),
    ).with_columns(pl.col("change1", "change2", "change3").replace(-1, None))
    return datapoints, queries


def make_queries(visit_queries: pl.DataFrame, adverse_events: pl.DataFrame, subjects: pl.DataFrame,
                 sites: pl.DataFrame, inj: Injection, rng: KeyedRandom) -> pl.DataFrame:
    """Queries on visit data points and on adverse events, numbered per site (QRYID stable across cuts)."""
    edc = catalogue()["edc"]
    ae = adverse_events.join(subjects.select("sid", "key", "site_idx"), on="sid")
    akey = ae["key"].to_numpy() * 256 + ae["AESEQ"].to_numpy()
    ae = ae.filter(pl.Series(rng.uniform("ae.query", akey) < edc["ae_query"]))
    akey = ae["key"].to_numpy() * 256 + ae["AESEQ"].to_numpy()
    site = ae["site_idx"].to_numpy()
    fields = np.array(edc["ae_fields"])
    opened = ae["known"].to_numpy() + np.round(rng.exponential("ae.query_open", akey) * 10).astype(np.int64)
    answered = opened + _answer_lag(rng, "ae.query_answer", akey, site, opened, sites, inj)
    closed = answered + np.round(rng.exponential("ae.query_close", akey) * edc["close_days"]).astype(np.int64)
    ae_q = pl.DataFrame({
        "sid": ae["sid"], "qkey": akey, "FORM": "AE", "FIELD": fields[rng.choice("ae.query_field", np.ones(len(fields)), akey)],
        "VISITNUM": pl.Series([None] * ae.height, dtype=pl.Float64),
        "QRYOPENDTC": opened, "QRYANSDTC": answered, "QRYCLOSEDTC": closed,
        "QRYSOURCE": np.where(rng.uniform("ae.query_source", akey) < 0.7, "DATA MANAGEMENT", "MEDICAL"),
    })
    return (
        pl.concat([visit_queries.with_columns(pl.col("FORM", "FIELD").cast(pl.String)), ae_q], how="diagonal")
        .join(subjects.select("sid", "SITEID"), on="sid")
        .sort("SITEID", "QRYOPENDTC", "qkey")
        .with_columns(QRYID=pl.format("Q{}-{}", "SITEID",
                                      pl.int_range(1, pl.len() + 1).over("SITEID").cast(pl.String).str.zfill(5)))
        .drop("SITEID", "qkey")
    )
