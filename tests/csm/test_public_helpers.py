"""The CSM package's public building blocks (``rbqm.csm.measurements``, ``subject_scores``,
``subject_regularity``, ``scheduled_visits``, ``visit_calendar``, ``holiday_calendar``,
``impossible_dates``), which other modules use instead of its private ones."""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.special import ndtri

import rbqm.csm
from rbqm.csm import (
    date_order, holiday_calendar, impossible_dates, measurements, scheduled_visits, subject_regularity,
    subject_scores, visit_calendar,
)
from rbqm.derive import derive_tables

from .test_dates import _order_study, _schedule_study, _visit_study

RBQM = Path(rbqm.csm.__file__).resolve().parents[1]


def test_the_helpers_are_public_and_documented():
    for name in ("measurements", "subject_scores", "subject_regularity", "scheduled_visits", "visit_calendar",
                 "holiday_calendar", "impossible_dates"):
        assert name in rbqm.csm.__all__ and getattr(rbqm.csm, name).__doc__


def test_no_module_outside_the_csm_package_imports_its_private_parts():
    """Outside rbqm/csm, the package is used through ``rbqm.csm`` (its ``__all__``), never ``rbqm.csm._x``."""
    offenders = []
    for path in sorted(RBQM.rglob("*.py")):
        if "csm" in path.relative_to(RBQM).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rbqm.csm"):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            offenders += [f"{path.relative_to(RBQM)}:{node.lineno} {name}" for name in names
                          if name.startswith("rbqm.csm.") and "._" in name]
    assert offenders == []


def _tables(**extra: pl.DataFrame):
    dm = pl.DataFrame({"STUDYID": "S", "USUBJID": ["S-1", "S-2"], "SITEID": ["1", "2"], "COUNTRY": "FRA",
                       "RFSTDTC": "2024-01-02", "ARMCD": "A"})
    return derive_tables({"dm": dm, **extra}, as_of=date(2024, 6, 1))


def test_measurements_stack_vs_and_lb_without_empty_or_orphan_results():
    vs = pl.DataFrame({"USUBJID": ["S-1", "S-1", "S-2", "S-9"], "VSTESTCD": ["SYSBP", "SYSBP", "HR", "HR"],
                       "VSSTRESN": [120.0, None, float("inf"), 70.0], "VISITNUM": [1.0, 2.0, 1.0, 1.0],
                       "VSDTC": "2024-01-02"})
    lb = pl.DataFrame({"USUBJID": ["S-2", "S-2"], "LBTESTCD": ["CREAT", "K"],
                       "LBSTRESN": [80.5, float("nan")], "VISITNUM": [3, 3], "LBDTC": "2024-01-02"},
                      schema_overrides={"VISITNUM": pl.Int64})
    tables = _tables(vs=vs, lb=lb)
    got = measurements(tables).sort("variable").collect()
    assert got.schema == pl.Schema({"site_id": pl.String, "USUBJID": pl.String, "variable": pl.String,
                                    "VISITNUM": pl.Float64, "value": pl.Float64})
    assert got.rows() == [("2", "S-2", "LB:CREAT", 3.0, 80.5), ("1", "S-1", "VS:SYSBP", 1.0, 120.0)]
    assert measurements(tables, ("VS:SYSBP",)).collect()["variable"].to_list() == ["VS:SYSBP"]
    assert measurements(_tables(lb=lb), ("VS:SYSBP",)) is None
    assert measurements(_tables()) is None


def test_subject_scores_by_hand():
    """Per variable, SD of log results; mid-rank percentile among the 4 subjects (one stratum); the
    normal scores summed over variables / sqrt(variables); log ratio to the median SD, averaged."""
    rng = np.random.default_rng(3)
    values = rng.uniform(5, 15, size=(4, 3, 3))  # subject x variable x visit, all positive
    frame = pl.DataFrame([{"site_id": "A" if s < 2 else "B", "USUBJID": f"U{s}", "variable": f"LB:X{v}",
                           "VISITNUM": float(k), "value": float(values[s, v, k])}
                          for s in range(4) for v in range(3) for k in range(3)])
    got = subject_scores(frame.lazy(), min_stratum=4).sort("USUBJID")
    sd = np.log(values).std(axis=2, ddof=1)                              # subject x variable
    ranks = sd.argsort(axis=0).argsort(axis=0) + 1
    normal = ndtri((ranks - 0.5) / 4)
    ratio = np.log(np.maximum(sd / np.median(sd, axis=0), 0.05))
    assert got["USUBJID"].to_list() == ["U0", "U1", "U2", "U3"]
    assert got["site_id"].to_list() == ["A", "A", "B", "B"] and (got["variables"] == 3).all()
    assert got["score"].to_numpy() == pytest.approx(normal.sum(axis=1) / np.sqrt(3))
    assert got["log_ratio"].to_numpy() == pytest.approx(ratio.mean(axis=1))
    # a subject with fewer than min_values results of a variable is not scored on it
    assert subject_scores(frame.filter(pl.col("VISITNUM") < 2).lazy(), min_stratum=4).height == 0


def test_subject_regularity_and_holiday_calendar_are_the_date_tests_own():
    from rbqm.csm import _dates

    assert subject_regularity is _dates.subject_regularity and holiday_calendar is _dates.holiday_calendar
    holidays, weekends = holiday_calendar(["FRA"], range(2024, 2025))
    assert ("FRA", date(2024, 5, 1)) in set(holidays.iter_rows())
    assert weekends.rows() == [("FRA", [6, 7], True)]


def _without(study, *tables: str):
    """The study without some of its tables."""
    return replace(study, tables={k: v for k, v in study.tables.items() if k not in tables},
                   sources=study.sources - set(tables))


def test_visit_calendar_marks_weekends_and_holidays_by_country():
    study = _visit_study({
        "A": ("FRA", ["2024-05-01", "2024-05-04", "2024-05-07", "2024-05"]),  # May Day, Saturday, Tuesday
        "B": ("ISR", ["2024-05-03", "2024-05-05"]),                           # Friday (weekend), Sunday
        "C": ("XKX", ["2024-12-25", "2024-12-28"]),                           # no calendar: no holidays
    })
    got = visit_calendar(study).sort("site_id", "VISITNUM").select(
        "site_id", "USUBJID", "VISIT", "date", "weekend", "holiday", "off", "calendar")
    assert got.rows() == [
        ("A", "A-1", "V1", date(2024, 5, 1), False, True, True, True),
        ("A", "A-1", "V2", date(2024, 5, 4), True, False, True, True),
        ("A", "A-1", "V3", date(2024, 5, 7), False, False, False, True),
        ("B", "B-1", "V1", date(2024, 5, 3), True, False, True, True),
        ("B", "B-1", "V2", date(2024, 5, 5), False, False, False, True),
        ("C", "C-1", "V1", date(2024, 12, 25), False, False, False, False),
        ("C", "C-1", "V2", date(2024, 12, 28), True, False, True, False),
    ]
    assert visit_calendar(_without(study, "sv")).height == 0


def test_scheduled_visits_deviate_from_the_median_day_and_add_up_to_subject_regularity():
    study, days = _schedule_study(exact_site=None)
    visits = scheduled_visits(study).collect()
    # day 1 (usual day 1) and the follow-up (too spread) are not scheduled
    assert sorted(visits["VISITNUM"].unique()) == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    matrix = np.array([days[s][1:7] for s in sorted(days)], float)
    expected = matrix - np.median(matrix, axis=0)
    got = visits.sort("USUBJID", "VISITNUM")["deviation"].to_numpy().reshape(len(days), 6)
    assert got == pytest.approx(expected)
    assert (visits["day"] - visits["usual"] == visits["deviation"]).all()
    first = visits.filter(pl.col("USUBJID") == "A-0").sort("VISITNUM").row(0, named=True)
    assert (first["VISIT"], first["date"]) == ("V2", date(2024, 1, 2) + timedelta(days=days["A-0"][1] - 1))
    sd = visits.group_by("USUBJID").agg(pl.col("deviation").std()).sort("USUBJID")
    assert subject_regularity(study, min_stratum=5).sort("USUBJID")["sd_days"].to_numpy() == pytest.approx(
        sd["deviation"].to_numpy())


def test_impossible_dates_name_each_record_date_order_counts():
    study = _order_study()
    got = impossible_dates(study)
    assert got.select("site_id", "USUBJID", "variable", "record", "why").rows() == [
        ("A", "A-1", "SV:AFTER_STUDY_END", "visit V3 on 2024-03-10",
         "after the subject left the study (2024-02-29)"),
        ("C", "C-0", "DM:AFTER_DEATH", "visit V3 on 2024-03-10", "after death on 2024-02-01"),
        ("C", "C-0", "DM:AFTER_DEATH", "visit V2 on 2024-02-10", "after death on 2024-02-01"),
        ("A", "A-0", "AE:END_BEFORE_START", "AE X starting 2024-01-15", "ends 2024-01-14"),
        ("A", "A-1", "AE:END_BEFORE_START", "AE X starting 2024-01-15", "ends 2024-01-14"),
        ("A", "A-2", "AE:END_BEFORE_START", "AE X starting 2024-01-15", "ends 2024-01-14"),
        ("B", "B-1", "EX:BEFORE_RANDOMISATION", "dose of T starting 2024-01-09",
         "before randomisation on 2024-01-10"),
        ("B", "B-0", "SV:BEFORE_CONSENT", "visit V0 on 2024-01-02", "before informed consent on 2024-01-05"),
    ]
    assert got["date"].is_sorted(descending=True)
    counts = got.group_by("variable", "site_id").len()
    statistic = date_order(study, min_records=1).filter(pl.col("statistic") > 0)
    assert dict(counts.select(pl.concat_str("variable", "site_id"), "len").rows()) == dict(
        statistic.select(pl.concat_str("variable", "site_id"), pl.col("statistic").cast(pl.UInt32)).rows())
    assert impossible_dates(_without(study, "sv", "ae", "ex")).height == 0
