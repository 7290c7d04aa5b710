"""What was known at a data cut: the generated trial's records filtered to a day and
converted to the study folder format (rbqm/tables.yaml).

Internally dates are study days (day 0 = study start) and every record carries the
day it became known (entered in the EDC, reported or identified). A cut keeps the
records known by its day, empties end dates that lie after it, and derives what
depends on time: arm assignment, query status, change counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from rbqm.schema import polars_schema, table
from synthetic.visits import schedule

__all__ = ["TrialRecords", "tables_at"]


@dataclass(frozen=True)
class TrialRecords:
    """The whole generated trial in internal form (study days, known days, subject ids)."""

    study_id: str
    start: date
    sites: pl.DataFrame
    """One row per site: the ``sites`` columns plus the site's behaviour parameters (lower case)."""
    subjects: pl.DataFrame
    visits: pl.DataFrame
    pages: pl.DataFrame
    datapoints: pl.DataFrame
    queries: pl.DataFrame
    ae: pl.DataFrame
    dv: pl.DataFrame
    ie: pl.DataFrame
    ds: pl.DataFrame
    ex: pl.DataFrame
    lb: pl.DataFrame
    vs: pl.DataFrame
    truth: pl.DataFrame


def _by(day: str, cut: int) -> pl.Expr:
    return pl.col(day).is_not_null() & (pl.col(day) <= cut)


# Row order of each table: its key, with subjects in sid order (the order of USUBJID).
_ORDER = {"dv": ["sid", "DVSTDTC", "DVTERM"], "ex": ["sid", "EXSTDTC"], "dm": ["sid"], "tv": ["VISITNUM"]}


def _contract(frame: pl.LazyFrame, name: str, records: TrialRecords, cut: int) -> pl.LazyFrame:
    """Attach USUBJID, turn study days into ISO dates (empty after the cut), order and type the columns."""
    spec = table(name)
    order = _ORDER.get(name) or [("sid" if c == "USUBJID" else c) for c in spec.key]
    frame = frame.sort(order, nulls_last=True)
    epoch = (records.start - date(1970, 1, 1)).days
    if "USUBJID" in spec.column_names and "USUBJID" not in frame.collect_schema().names():
        frame = frame.join(records.subjects.lazy().select("sid", "USUBJID"), on="sid", how="left",
                           maintain_order="left")
    dates = [
        pl.when(_by(c.name, cut)).then((pl.col(c.name) + epoch).cast(pl.Int32).cast(pl.Date).dt.to_string("%Y-%m-%d"))
        .alias(c.name)
        for c in spec.columns if c.type == "datetime"
    ]
    schema = polars_schema(name)
    present = [c for c in spec.column_names if c in frame.collect_schema().names()]
    return frame.with_columns(dates).select(pl.col(c).cast(schema[c]) for c in present)


def _dm(records: TrialRecords, cut: int) -> pl.LazyFrame:
    s = records.subjects.lazy().filter(pl.col("consent_day") <= cut)
    randomised = _by("rand_day", cut)
    return s.select(
        "sid", "USUBJID", "SITEID", "COUNTRY", "INVNAM", "AGE", "SEX",
        STUDYID=pl.lit(records.study_id),
        RFICDTC="consent_day",
        RFSTDTC="rand_day",
        RFENDTC="study_end_day",
        RFXSTDTC="rand_day",
        RFXENDTC="trt_end_day",
        DTHFL=pl.when(_by("death_day", cut)).then(pl.lit("Y")),
        DTHDTC="death_day",
        ARMCD=pl.when(randomised).then("ARMCD")
        .when(~pl.col("enrolled") & _by("sf_day", cut)).then(pl.lit("SCRNFAIL"))
        .otherwise(pl.lit("NOTASSGN")),
    )


def _queries(records: TrialRecords, cut: int) -> pl.LazyFrame:
    return records.queries.lazy().filter(pl.col("QRYOPENDTC") <= cut).with_columns(
        QRYSTATUS=pl.when(_by("QRYCLOSEDTC", cut)).then(pl.lit("CLOSED"))
        .when(_by("QRYANSDTC", cut)).then(pl.lit("ANSWERED"))
        .otherwise(pl.lit("OPEN")),
    )


def _datapoints(records: TrialRecords, cut: int) -> pl.LazyFrame:
    changes = [_by(c, cut).cast(pl.Int64) for c in ("change1", "change2", "change3")]
    return records.datapoints.lazy().filter(pl.col("entry") <= cut).with_columns(
        pl.col("FORM", "FIELD").cast(pl.String), NCHANGES=pl.sum_horizontal(changes))


def tables_at(records: TrialRecords, cut: int) -> dict[str, pl.LazyFrame]:
    """Every table of the study folder format as it stood at study day ``cut``."""
    known = lambda frame: frame.lazy().filter(pl.col("known") <= cut)  # noqa: E731
    internal = {
        "dm": _dm(records, cut),
        "ae": known(records.ae),
        "ds": records.ds.lazy().filter(_by("DSSTDTC", cut)),
        "dv": known(records.dv),
        "ie": known(records.ie),
        "lb": known(records.lb),
        "vs": known(records.vs),
        "sv": known(records.visits),
        "ex": known(records.ex),
        "queries": _queries(records, cut),
        "pages": records.pages.lazy().filter(pl.col("VISITDTC") <= cut).rename({"entry": "ENTRYDTC"}),
        "datapoints": _datapoints(records, cut),
        "sites": records.sites.lazy().rename({"activation_day": "ACTIVATIONDTC"}),
        "tv": schedule().lazy().select("VISITNUM", "VISIT", VISITDY="planned", TVWINLO="window", TVWINHI="window"),
    }
    return {name: _contract(frame, name, records, cut) for name, frame in internal.items()}
