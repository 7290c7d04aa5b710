"""Duplicated visit records and readings repeating the subject's previous reading: exact counts and
Fisher p-values on hand-made studies, and calibration on a clean synthetic study."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rbqm.csm import duplicates
from rbqm.csm._duplicates import duplicate_records, repeated_readings

from .conftest import hand_study

CODES = ["SYSBP", "DIABP", "HR", "TEMP"]


def _rows(subject: str, visit: int, values) -> list[dict]:
    return [{"USUBJID": subject, "VSTESTCD": c, "VISITNUM": float(visit), "VSDTC": "2024-01-01",
             "VSSTRESN": None if v is None else float(v)} for c, v in zip(CODES, values, strict=True)]


def _study(rows: list[dict], subjects: dict[str, str]):
    return hand_study({u: (site, ["2024-01-01"], []) for u, site in subjects.items()},
                      extra={"vs": pl.DataFrame(rows, schema={"USUBJID": pl.String, "VSTESTCD": pl.String,
                                                              "VISITNUM": pl.Float64, "VSDTC": pl.String,
                                                              "VSSTRESN": pl.Float64})})


def _random_study(*, copy_site: str | None = None, carry_site: str | None = None, sites="ABCDE", per_site=6,
                  visits=5, seed=2):
    """Random vital signs; at ``copy_site`` subject k > 0 copies subject 0's visit records; at
    ``carry_site`` every reading repeats the subject's first one."""
    rng = np.random.default_rng(seed)
    rows, subjects = [], {}
    for site in sites:
        first = {}
        for k in range(per_site):
            subject = f"{site}-{k}"
            subjects[subject] = site
            for v in range(1, visits + 1):
                values = [int(rng.normal(128, 15)), int(rng.normal(79, 10)), int(rng.normal(72, 10)),
                          round(float(rng.normal(36.7, 0.3)), 1)]
                if site == copy_site and k > 0:
                    values = first[(0, v)]
                if site == carry_site and v > 1:
                    values = first[(k, 1)]
                first[(k, v)] = values
                rows += _rows(subject, v, values)
    return _study(rows, subjects)


def _values(study):
    return study.with_sites("vs").select(site_id="SITEID", USUBJID="USUBJID",
                                         variable=pl.lit("VS:") + pl.col("VSTESTCD"), VISITNUM="VISITNUM",
                                         value=pl.col("VSSTRESN")).filter(pl.col("value").is_not_null())


def test_duplicate_records_count_every_copy_within_a_site():
    rows = (_rows("A-1", 1, [120, 80, 70, 36.6]) + _rows("A-2", 1, [120, 80, 70, 36.6])     # copied across
            + _rows("A-1", 2, [121, 80, 70, 36.6])
            + _rows("A-2", 2, [121, 80, 70, 36.6]) + _rows("A-2", 3, [121, 80, 70, 36.6])   # three copies
            + _rows("A-1", 3, [120, 80, None, None])        # two results: too few to count as a record
            + _rows("A-3", 1, [120, 80, None, None])
            + _rows("B-1", 1, [120, 80, 70, 36.6]))         # the same values at another site: not a copy
    counts = duplicate_records(_values(_study(rows, {"A-1": "A", "A-2": "A", "A-3": "A", "B-1": "B"})),
                               min_values=3).collect().sort("site_id")
    assert counts.to_dicts() == [{"site_id": "A", "variable": "VS", "n": 5, "x": 5},
                                 {"site_id": "B", "variable": "VS", "n": 1, "x": 0}]


def test_repeated_readings_compare_with_the_previous_visit():
    rows = (_rows("A-1", 1, [120, 80, 70, 36.6]) + _rows("A-1", 3, [120, 81, 70, 36.7])
            + _rows("A-1", 2, [121, 80, 70, 36.6])       # visits out of order in the file
            + _rows("A-2", 1, [130, 85, None, 36.9]) + _rows("A-2", 2, [130, 85, 75, 36.9]))
    counts = repeated_readings(_values(_study(rows, {"A-1": "A", "A-2": "A"}))).collect()
    got = {r["variable"]: (r["n"], r["x"]) for r in counts.iter_rows(named=True)}
    # A-1 SYSBP 120, 121, 120: 0 of 2; DIABP 80, 80, 81: 1 of 2; HR 70, 70, 70: 2 of 2; TEMP 36.6 36.6 36.7: 1
    # A-2 SYSBP 130, 130: 1; DIABP 85, 85: 1; HR only one reading; TEMP 36.9, 36.9: 1
    assert got == {"VS:SYSBP": (3, 1), "VS:DIABP": (3, 2), "VS:HR": (2, 2), "VS:TEMP": (3, 2)}


def test_copied_records_give_the_one_sided_fisher_p_value():
    out = duplicates(_random_study(copy_site="C"), min_records=10)
    c = out.filter((pl.col("site_id") == "C") & (pl.col("variable") == "VS")).row(0, named=True)
    assert c["statistic"] == 30                     # all 6 subjects x 5 visits share a record with another
    rest = out.filter((pl.col("site_id") != "C") & (pl.col("variable") == "VS"))
    assert rest["statistic"].sum() == 0
    table = [[30, 0], [0, 120]]
    assert c["p_value"] == pytest.approx(stats.fisher_exact(table, alternative="greater").pvalue)
    assert c["effect"] == pytest.approx(1.0)
    assert c["description"] == ("At site C, 30 of 30 vital-sign visit records (100.0%) repeat another record "
                                "of the site value for value vs 0.0% elsewhere")
    assert out.filter(pl.col("variable") == "VS").sort("p_value")["site_id"][0] == "C"
    assert (rest["p_value"] == 1.0).all()


def test_carried_forward_readings_are_flagged_per_variable():
    out = duplicates(_random_study(carry_site="D"), min_records=10)
    sys = out.filter(pl.col("variable") == "VS:SYSBP").sort("p_value")
    d = sys.row(0, named=True)
    assert d["site_id"] == "D" and d["statistic"] == 24     # 6 subjects x 4 follow-up readings
    others = sys.filter(pl.col("site_id") != "D")
    x, n = int(others["statistic"].sum()), 4 * 24
    exact = stats.fisher_exact([[24, 0], [x, n - x]], alternative="greater").pvalue
    assert d["p_value"] == pytest.approx(exact)
    assert d["description"].startswith("At site D, 24 of 24 Systolic BP readings (100%) repeat the subject's "
                                       "previous reading exactly vs ")
    assert d["q_value"] < 1e-6


def test_minimum_records_and_missing_vital_signs():
    study = _random_study(per_site=2, visits=3)            # 6 records, 4 follow-up readings per site
    assert duplicates(study, min_records=7).height == 0
    assert set(duplicates(study, min_records=6)["variable"]) == {"VS"}
    assert duplicates(study, min_records=4).filter(pl.col("variable") != "VS").height == 5 * 4


def test_clean_study_is_not_inflated(clean):
    out = duplicates(clean)
    records = out.filter(pl.col("variable").is_in(["VS", "LB"]))
    assert records.height == 80 and (records["statistic"] == 0).all() and (records["p_value"] == 1).all()
    p = out.filter(~pl.col("variable").is_in(["VS", "LB"]))["p_value"].to_numpy()
    assert len(p) == 40 * 17
    assert (p < 0.01).mean() < 0.03 and (p < 0.05).mean() < 0.08
