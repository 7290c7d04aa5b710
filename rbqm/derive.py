"""Analysis-ready tables: a study's tables at an as-of date, with the derived quantities
that key risk indicators, tolerance limits and monitoring tests count.

Every derived table carries USUBJID, SITEID, COUNTRY and REGION; records dated after
the as-of date are left out. The derived columns are listed in ``DERIVED_COLUMNS``
(so definitions can be checked against them) and documented in docs/kri-library.md.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from rbqm.schema import TABLE_NAMES, polars_schema

__all__ = ["DERIVED_COLUMNS", "RECORD_DATE", "as_of_date", "derive_tables", "to_date"]

# The date that places a record in time: records after the as-of date are left out.
RECORD_DATE: dict[str, str] = {
    "ae": "AESTDTC", "ds": "DSSTDTC", "dv": "DVSTDTC", "ie": "IEDTC", "lb": "LBDTC", "vs": "VSDTC",
    "sv": "SVSTDTC", "ex": "EXSTDTC", "queries": "QRYOPENDTC", "pages": "VISITDTC",
}

DERIVED_COLUMNS: dict[str, dict[str, str]] = {
    "subjects": {
        "screened": "gave informed consent on or before the as-of date",
        "enrolled": "randomised (reference start date on or before the as-of date, arm not SCRNFAIL/NOTASSGN)",
        "screen_failure": "arm code SCRNFAIL",
        "days_on_study": "enrolled: days from reference start to the earlier of reference end and the as-of date, inclusive",
        "died": "death date on or before the as-of date",
        "days_to_death": "days from reference start to death",
        "ineligible": "enrolled with at least one eligibility criterion not met (ie)",
    },
    "pages": {
        "entered": "the page was entered by the as-of date",
        "days_to_entry": "days from the visit to entry, or to the as-of date while not entered",
    },
    "queries": {
        "open_at_cut": "not closed by the as-of date",
        "days_open": "days from opening to closing, or to the as-of date while open",
        "days_to_answer": "days from opening to the site's answer (empty if unanswered)",
    },
    "datapoints": {"changed": "changed at least once after entry (NCHANGES > 0)"},
    "lb": {"grade": "toxicity grade as an integer (empty if not graded)"},
    "ae": {"grade": "toxicity grade as an integer"},
}


def to_date(column: str) -> pl.Expr:
    """The date part of an ISO 8601 string column (``2024-03-07T10:30`` -> 2024-03-07); partial dates give null."""
    return pl.col(column).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)


def as_of_date(tables: dict[str, pl.DataFrame | pl.LazyFrame]) -> date | None:
    """The latest date found in the study's record dates and DM reference dates (the default data cut)."""
    candidates = []
    for name, column in {**RECORD_DATE, "dm": "RFICDTC"}.items():
        frame = tables.get(name)
        if frame is not None and column in frame.collect_schema().names():
            candidates.append(frame.lazy().select(to_date(column).max().alias("d")))
    if not candidates:
        return None
    return pl.concat(candidates).select(pl.col("d").max()).collect().item()


def _complete(name: str, frame: pl.LazyFrame) -> pl.LazyFrame:
    """Add the documented optional columns a table lacks, as typed nulls (so derivations need no special cases)."""
    if name not in TABLE_NAMES:
        return frame
    have = frame.collect_schema().names()
    return frame.with_columns(pl.lit(None, dtype).alias(col) for col, dtype in polars_schema(name).items()
                              if col not in have)


def _days(end: pl.Expr, start: pl.Expr) -> pl.Expr:
    return (end - start).dt.total_days()


def _subjects(dm: pl.LazyFrame, ie: pl.LazyFrame | None, cut: pl.Expr) -> pl.LazyFrame:
    start, end, death = to_date("RFSTDTC"), to_date("RFENDTC"), to_date("DTHDTC")
    enrolled = start.is_not_null() & (start <= cut) & ~pl.col("ARMCD").is_in(["SCRNFAIL", "NOTASSGN"])
    last = pl.min_horizontal(pl.coalesce(pl.when(end <= cut).then(end), cut), cut)
    subjects = dm.filter(to_date("RFICDTC") <= cut).with_columns(
        screened=pl.lit(True),
        enrolled=enrolled,
        screen_failure=pl.col("ARMCD") == "SCRNFAIL",
        days_on_study=pl.when(enrolled).then(_days(last, start) + 1),
        died=death.is_not_null() & (death <= cut),
        days_to_death=pl.when(death <= cut).then(_days(death, start)),
    )
    if ie is None:
        return subjects.with_columns(ineligible=pl.lit(None, pl.Boolean))
    violators = ie.filter(to_date("IEDTC").is_null() | (to_date("IEDTC") <= cut)).select("USUBJID").unique()
    return subjects.join(violators.with_columns(_ie=pl.lit(True)), on="USUBJID", how="left").with_columns(
        ineligible=pl.col("enrolled") & pl.col("_ie").fill_null(False)).drop("_ie")


def _site_columns(dm: pl.LazyFrame, sites: pl.LazyFrame | None) -> pl.LazyFrame:
    keys = dm.select("USUBJID", "SITEID", "COUNTRY")
    if sites is None or "REGION" not in sites.collect_schema().names():
        return keys.with_columns(REGION=pl.lit(None, pl.String))
    return keys.join(sites.select("SITEID", "REGION"), on="SITEID", how="left")


def derive_tables(tables: dict[str, pl.DataFrame | pl.LazyFrame], *, as_of: date | None = None,
                  ) -> dict[str, pl.LazyFrame]:
    """Analysis-ready tables of a study at ``as_of`` (default: the latest date in the data).

    Returns ``subjects`` (one row per screened subject), ``sites`` (one row per site, from
    the sites table or else from dm) and every other table present, each with SITEID,
    COUNTRY and REGION attached and the derived columns of ``DERIVED_COLUMNS``.
    """
    lazy = {name: _complete(name, frame.lazy()) for name, frame in tables.items()}
    cut_date = as_of or as_of_date(lazy) or date.today()
    cut = pl.lit(cut_date)
    dm = lazy["dm"]
    keys = _site_columns(dm, lazy.get("sites"))
    out: dict[str, pl.LazyFrame] = {
        "subjects": _subjects(dm, lazy.get("ie"), cut).join(keys.select("USUBJID", "REGION"), on="USUBJID", how="left"),
    }
    site_list = dm.select("SITEID", "COUNTRY")
    if "sites" in lazy:
        site_list = pl.concat([lazy["sites"].select("SITEID", "COUNTRY"), site_list])
    out["sites"] = site_list.unique("SITEID", keep="first").join(
        keys.select("SITEID", "REGION").unique("SITEID"), on="SITEID", how="left")
    for name, frame in lazy.items():
        if name in {"dm", "sites"}:
            continue
        if name in RECORD_DATE and RECORD_DATE[name] in frame.collect_schema().names():
            record_date = to_date(RECORD_DATE[name])
            frame = frame.filter(record_date.is_null() | (record_date <= cut))
        frame = frame.join(keys, on="USUBJID", how="inner") if "USUBJID" in frame.collect_schema().names() else frame
        out[name] = frame.with_columns(**_derived(name, cut))
    return out


def _derived(name: str, cut: pl.Expr) -> dict[str, pl.Expr]:
    if name == "pages":
        entry = to_date("ENTRYDTC")
        entered = entry.is_not_null() & (entry <= cut)
        return {"entered": entered,
                "days_to_entry": _days(pl.when(entered).then(entry).otherwise(cut), to_date("VISITDTC"))}
    if name == "queries":
        closed, answered, opened = to_date("QRYCLOSEDTC"), to_date("QRYANSDTC"), to_date("QRYOPENDTC")
        is_closed = closed.is_not_null() & (closed <= cut)
        return {"open_at_cut": ~is_closed,
                "days_open": _days(pl.when(is_closed).then(closed).otherwise(cut), opened),
                "days_to_answer": pl.when(answered <= cut).then(_days(answered, opened))}
    if name == "datapoints":
        return {"changed": pl.col("NCHANGES") > 0}
    if name == "lb":
        return {"grade": pl.col("LBTOXGR").cast(pl.Int64, strict=False)}
    if name == "ae":
        return {"grade": pl.col("AETOXGR").cast(pl.Int64, strict=False)}
    return {}
