"""Rounding: resolution and rounding unit per variable, the chi-square against scipy, and detection of
digit preference (blood pressure rounded to 0) on a synthetic study."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rbqm.csm import rounding
from rbqm.csm._rounding import rounding_units

from .battery_studies import measurement_study, p_below


def test_resolution_and_rounding_unit_per_variable():
    rng = np.random.default_rng(1)
    columns = {
        "int": rng.integers(50, 150, 200).astype(float),           # whole numbers -> multiples of 5
        "one": np.round(rng.normal(36.8, 0.3, 200), 1),            # 0.1 -> whole numbers
        "two": np.round(rng.normal(3, 1, 200), 2),                 # 0.01 -> 0.1
        "fives": 5.0 * rng.integers(10, 30, 200),                  # multiples of 5 -> of 10
        "raw": rng.normal(0, 1, 200),                              # no resolution: not tested
        "hundreds": 100.0 * rng.integers(1, 9, 200),               # the coarsest unit: nothing coarser
    }
    frame = pl.LazyFrame({"variable": [k for k, v in columns.items() for _ in v],
                          "value": np.concatenate(list(columns.values()))})
    got = {v: (r, u) for v, r, u in rounding_units(frame).collect().iter_rows()}
    assert got == {"int": (1.0, 5.0), "one": (0.1, 1.0), "two": (0.01, 0.1), "fives": (5.0, 10.0)}


def _readings(values: dict[str, np.ndarray]) -> pl.DataFrame:
    return pl.DataFrame([{"SITEID": site, "USUBJID": f"{site}-{k // 10}", "VISITNUM": float(k % 10 + 1),
                          "VSTESTCD": "SYSBP", "VSSTRESN": float(v)}
                         for site, readings in values.items() for k, v in enumerate(readings)])


def test_p_value_effect_and_description():
    rng = np.random.default_rng(2)
    values = {site: rng.integers(100, 160, 200) for site in "ABC"}
    values["D"] = np.where(rng.uniform(size=80) < 0.5, 130, rng.integers(100, 160, 80))   # half set to 130
    out = rounding(measurement_study(_readings(values)))
    rounded = {site: int((v % 5 == 0).sum()) for site, v in values.items()}
    rest = rounded["A"] + rounded["B"] + rounded["C"]
    d = out.filter(pl.col("site_id") == "D").row(0, named=True)
    _, p, _, expected = stats.chi2_contingency([[rounded["D"], 80 - rounded["D"]], [rest, 600 - rest]],
                                                  correction=False)
    assert expected.min() >= 5 and d["p_value"] == pytest.approx(p, rel=1e-9)
    assert d["statistic"] == pytest.approx(rounded["D"] / 80)
    assert d["effect"] == pytest.approx(rounded["D"] / 80 - rest / 600)
    assert d["description"] == (f"Systolic BP is a multiple of 5 in {round(100 * (rounded['D'] / 80))}% of 80 "
                                f"readings at site D vs {round(100 * (rest / 600))}% elsewhere")
    assert out.sort("p_value")["site_id"][0] == "D" and d["q_value"] < 0.01


def test_decimal_variables_and_minimums():
    rng = np.random.default_rng(3)
    values = {site: np.round(rng.normal(36.8, 0.4, 100), 1) for site in "AB"}
    values["C"] = np.round(rng.normal(36.8, 0.4, 100))                  # whole degrees only
    values["E"] = np.round(rng.normal(36.8, 0.4, 30), 1)                # 30 readings < 50: not tested
    readings = _readings(values).with_columns(VSTESTCD=pl.lit("TEMP"))
    out = rounding(measurement_study(readings))
    assert sorted(out["site_id"]) == ["A", "B", "C"]
    c = out.filter(pl.col("site_id") == "C").row(0, named=True)
    assert c["description"].startswith("Temperature is a whole number in 100% of 100 readings at site C vs ")
    assert c["p_value"] < 1e-20


def test_detects_digit_preference(injected):
    out = rounding(injected)
    top = out.sort("p_value").head(2)
    assert set(top["site_id"]) == {"1010"} and set(top["variable"]) == {"VS:SYSBP", "VS:DIABP"}
    assert (top["q_value"] < 1e-6).all() and (top["effect"] > 0.25).all()


def test_clean_study_is_not_inflated_beyond_the_natural_rounding_of_blood_pressure(clean):
    """The generator lets sites round blood pressure to 0 or 5 a little, by site: a real difference that
    this test is meant to find. The other variables carry no site difference."""
    out = rounding(clean)
    others = out.filter(~pl.col("variable").is_in(["VS:SYSBP", "VS:DIABP"]))
    assert others.height > 550
    assert p_below(others, 0.01) < 0.025 and p_below(others, 0.05) < 0.08
