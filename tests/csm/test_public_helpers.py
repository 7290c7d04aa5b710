"""The CSM package's public building blocks (``rbqm.csm.measurements``, ``subject_scores``,
``subject_regularity``, ``holiday_calendar``), which other modules use instead of its private ones."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.special import ndtri

import rbqm.csm
from rbqm.csm import holiday_calendar, measurements, subject_regularity, subject_scores
from rbqm.derive import derive_tables

RBQM = Path(rbqm.csm.__file__).resolve().parents[1]


def test_the_helpers_are_public_and_documented():
    for name in ("measurements", "subject_scores", "subject_regularity", "holiday_calendar"):
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
    lb = pl.DataFrame({"USUBJID": ["S-2", "S-2"], "LBTESTCD": ["CREAT", "K"], "LBSTRESN": [80.5, float("nan")],
                       "VISITNUM": [3, 3], "LBDTC": "2024-01-02"}, schema_overrides={"VISITNUM": pl.Int64})
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
