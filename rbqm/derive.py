"""Analysis-ready tables: a study's tables at an as-of date, with the derived quantities
that key risk indicators, tolerance limits and monitoring tests count.

Every derived table carries USUBJID, SITEID, COUNTRY and REGION; records dated after
the as-of date are left out. The derived columns are listed in ``DERIVED_COLUMNS``
(so definitions can be checked against them) and documented in docs/kri-library.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import polars as pl

from rbqm.schema import TABLE_NAMES, polars_schema

__all__ = ["ANALYSIS_SOURCES", "AnalysisTables", "DERIVED_COLUMNS", "RECORD_DATE", "analysis_columns", "as_of_date", "derive_tables",
           "to_date"]

# The date that places a record in time: records after the as-of date are left out.
RECORD_DATE: dict[str, str] = {
    "ae": "AESTDTC", "ds": "DSSTDTC", "dv": "DVSTDTC", "ie": "IEDTC", "lb": "LBDTC", "vs": "VSDTC",
    "sv": "SVSTDTC", "ex": "EXSTDTC", "queries": "QRYOPENDTC", "pages": "VISITDTC",
}

DERIVED_COLUMNS: dict[str, dict[str, str]] = {
    "subjects": {
        "screened": "gave informed consent (or, without RFICDTC, started) on or before the as-of date",
        "enrolled": "randomised (reference start date on or before the as-of date, arm not SCRNFAIL/NOTASSGN)",
        "screen_failure": "arm code SCRNFAIL (any case)",
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
    "visits": {
        "planned_day": "the visit's planned study day (tv VISITDY)",
        "done": "the visit took place (a record in sv)",
        "expected": "due: a later visit of the subject took place, so this one should have too",
        "study_day": "study day of the visit (day 1 = reference start)",
        "out_of_window": "done outside its window (tv TVWINLO/TVWINHI days around VISITDY); empty without a window",
    },
    "datapoints": {"changed": "changed at least once after entry (NCHANGES > 0)"},
    "lb": {"grade": "toxicity grade as an integer (empty if not graded)"},
    "ae": {"grade": "toxicity grade as an integer"},
}


# analysis table -> the study tables it is built from (the rest are the study tables themselves)
ANALYSIS_SOURCES: dict[str, tuple[str, ...]] = {
    "subjects": ("dm",), "visits": ("sv", "tv"),
    **{name: (name,) for name in TABLE_NAMES if name not in {"dm", "tv"}},
}
_SITE_COLUMNS = {"USUBJID", "SITEID", "COUNTRY", "REGION"}


def analysis_columns(name: str) -> set[str]:
    """The columns an analysis table offers to definitions."""
    if name == "visits":
        return _SITE_COLUMNS | {"VISITNUM", "VISIT"} | set(DERIVED_COLUMNS["visits"])
    source = ANALYSIS_SOURCES[name][0]
    site_columns = _SITE_COLUMNS if name in {"subjects", "sites"} else set()
    return set(polars_schema(source)) | site_columns | set(DERIVED_COLUMNS.get(name, {}))


def to_date(column: str, *, impute: Literal["first", "last"] = "first") -> pl.Expr:
    """The date of an ISO 8601 string column, with SDTM partial dates imputed.

    ``2024-03-07T10:30`` gives 2024-03-07. A partial date gets its missing parts from the start of the
    period (``impute="first"``: ``2024-03`` -> 2024-03-01, ``2024`` -> 2024-01-01; used for start and
    event dates) or its end (``"last"``: 2024-03-31, 2024-12-31; used for end dates, so durations are
    never shortened). Anything else gives null.

    Examples
    --------
    >>> frame = pl.DataFrame({"d": ["2024-03-07T10:30", "2024-02", "2024", "2024-13-01", None]})
    >>> frame.select(to_date("d", impute="last")).to_series().to_list()  # doctest: +NORMALIZE_WHITESPACE
    [datetime.date(2024, 3, 7), datetime.date(2024, 2, 29), datetime.date(2024, 12, 31), None, None]
    """
    text = pl.col(column).str.slice(0, 10)
    length = text.str.len_chars()
    year_fill, month_fill = ("-12-31", "-01") if impute == "last" else ("-01-01", "-01")
    fill = pl.when(length == 4).then(pl.lit(year_fill)).when(length == 7).then(pl.lit(month_fill)).otherwise(pl.lit(""))
    parsed = pl.concat_str([text, fill]).str.to_date("%Y-%m-%d", strict=False)  # one parse per value
    return pl.when(length == 7).then(parsed.dt.month_end()).otherwise(parsed) if impute == "last" else parsed


def as_of_date(tables: Mapping[str, pl.DataFrame | pl.LazyFrame]) -> date | None:
    """The latest date found in the study's record dates and DM reference dates (the default data cut).

    ISO 8601 strings sort in time order, so each column's largest string is its latest date.
    """
    columns = {**RECORD_DATE, "dm": "RFICDTC"}
    latest = []
    for name, column in columns.items():
        frame = tables.get(name)
        if frame is not None and column in frame.collect_schema().names():
            latest.append(frame.lazy().select(pl.col(column).max().str.slice(0, 10).alias("d")))
    for column in ("RFSTDTC", "RFENDTC", "DTHDTC"):
        if column in tables["dm"].collect_schema().names():
            latest.append(tables["dm"].lazy().select(pl.col(column).max().str.slice(0, 10).alias("d")))
    if not latest:
        return None
    return pl.concat(pl.collect_all(latest)).select(
        pl.col("d").str.to_date("%Y-%m-%d", strict=False).max()).item()


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
    start, end, death = to_date("RFSTDTC"), to_date("RFENDTC", impute="last"), to_date("DTHDTC")
    arm = pl.col("ARMCD").str.to_uppercase()  # SDTM controlled terms, in whatever case the sponsor wrote them
    enrolled = start.is_not_null() & (start <= cut) & ~arm.is_in(["SCRNFAIL", "NOTASSGN"]).fill_null(False)
    last = pl.min_horizontal(pl.coalesce(pl.when(end <= cut).then(end), cut), cut)
    consent = pl.coalesce(to_date("RFICDTC"), start)  # some studies leave RFICDTC empty
    subjects = dm.filter(consent.is_null() | (consent <= cut)).with_columns(
        screened=pl.lit(True),
        enrolled=enrolled,
        screen_failure=arm == "SCRNFAIL",
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


@dataclass(frozen=True)
class AnalysisTables(Mapping[str, pl.LazyFrame]):
    """The analysis tables of a study at a data cut (a read-only mapping of name to LazyFrame).

    ``sources`` names the study tables they were built from, so a definition that needs
    a table the study lacks is reported as not computable.
    """

    tables: dict[str, pl.LazyFrame]
    sources: frozenset[str]
    as_of: date

    def __getitem__(self, name: str) -> pl.LazyFrame:
        return self.tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    def with_sites(self, name: str) -> pl.LazyFrame:
        """Table ``name`` with each record's SITEID, COUNTRY and REGION (records of unknown subjects dropped)."""
        frame = self.tables[name]
        if "SITEID" in frame.collect_schema().names():
            return frame
        keys = self.tables["subjects"].select("USUBJID", "SITEID", "COUNTRY", "REGION")
        return frame.join(keys, on="USUBJID", how="inner")


def derive_tables(tables: Mapping[str, pl.DataFrame | pl.LazyFrame], *, as_of: date | None = None,
                  ) -> AnalysisTables:
    """Analysis-ready tables of a study at ``as_of`` (default: the latest date in the data).

    Returns ``subjects`` (one row per screened subject), ``sites`` (one row per site, from
    the sites table or else from dm), ``visits`` (when sv and tv exist) -- these carry
    SITEID, COUNTRY and REGION -- and every other table present, keyed by USUBJID, with
    records after the cut left out and the derived columns of ``DERIVED_COLUMNS``.
    ``AnalysisTables.with_sites(name)`` attaches the site columns to a record table.
    """
    lazy = {name: _complete(name, frame.lazy()) for name, frame in tables.items()}
    cut_date = as_of or as_of_date(lazy) or date.today()
    cut = pl.lit(cut_date)
    dm = lazy["dm"]
    keys = _site_columns(dm, lazy.get("sites"))
    out: dict[str, pl.LazyFrame] = {
        "subjects": _subjects(dm, lazy.get("ie"), cut).join(keys.select("USUBJID", "REGION"), on="USUBJID", how="left"),
    }
    dm_sites = dm.select("SITEID", "COUNTRY").unique("SITEID", keep="first")
    if "sites" in lazy:  # every site of the sites table, plus any that only dm knows
        unlisted = dm_sites.join(lazy["sites"].select("SITEID"), on="SITEID", how="anti")
        out["sites"] = pl.concat([lazy["sites"], unlisted], how="diagonal_relaxed")
    else:
        out["sites"] = dm_sites.with_columns(REGION=pl.lit(None, pl.String))
    if "sv" in lazy and "tv" in lazy:
        out["visits"] = _visits(out["subjects"], lazy["sv"], lazy["tv"], cut)
    for name, frame in lazy.items():
        if name in {"dm", "sites", "tv"}:
            continue
        if name in RECORD_DATE and RECORD_DATE[name] in frame.collect_schema().names():
            # ISO 8601 strings sort in time order: before the day after the cut is on or before the cut
            dated = pl.col(RECORD_DATE[name])
            frame = frame.filter(dated.is_null() | (dated < (cut_date + timedelta(days=1)).isoformat()))
        out[name] = frame.with_columns(**_derived(name, cut))
    return AnalysisTables(out, frozenset(tables), cut_date)


def _visits(subjects: pl.LazyFrame, sv: pl.LazyFrame, tv: pl.LazyFrame, cut: pl.Expr) -> pl.LazyFrame:
    """Every planned visit (tv with a VISITDY) of every enrolled subject: done, expected, in window."""
    enrolled = subjects.filter("enrolled").select("USUBJID", "SITEID", "COUNTRY", "REGION", start=to_date("RFSTDTC"))
    done = (sv.filter(to_date("SVSTDTC") <= cut).select("USUBJID", "VISITNUM", visit_date=to_date("SVSTDTC"))
            .unique(["USUBJID", "VISITNUM"]))
    # one row per visit (TV may repeat visits per arm); without a window, in-window is unknown (null)
    planned = tv.filter(pl.col("VISITDY").is_not_null()).unique("VISITNUM", keep="first").select(
        "VISITNUM", "VISIT", planned_day="VISITDY", low="TVWINLO", high="TVWINHI")
    visits = (enrolled.join(planned, how="cross")
              .join(done, on=["USUBJID", "VISITNUM"], how="left")
              .with_columns(study_day=_days(pl.col("visit_date"), pl.col("start")) + 1, done=pl.col("visit_date").is_not_null()))
    last_day = done.join(enrolled.select("USUBJID", "start"), on="USUBJID").group_by("USUBJID").agg(
        last_day=(_days(pl.col("visit_date"), pl.col("start")) + 1).max())
    return visits.join(last_day, on="USUBJID", how="left").with_columns(
        expected=pl.col("done")
        | (pl.col("planned_day") + pl.col("high").fill_null(0) < pl.col("last_day")).fill_null(False),
        out_of_window=pl.when("done").then(
            (pl.col("study_day") < pl.col("planned_day") - pl.col("low"))
            | (pl.col("study_day") > pl.col("planned_day") + pl.col("high"))),
    ).select("USUBJID", "SITEID", "COUNTRY", "REGION", "VISITNUM", "VISIT", "planned_day", "done", "expected",
             "study_day", "out_of_window")


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
