"""Variance (Brown-Forsythe on subject-level absolute deviations): deviations by hand, Welch's t against
scipy, location robustness, and detection of fabricated subjects on a synthetic study."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rbqm.csm import variance
from rbqm.csm._spread import subject_deviations
from rbqm.errors import RbqmError

from .battery_studies import SHIFTED, measurement_study, p_below, random_readings, shifted_study


def test_subject_deviations_by_hand():
    values = pl.LazyFrame({
        "variable": ["X"] * 7 + ["Y"] * 3,
        "site_id": ["A"] * 4 + ["B"] * 3 + ["C"] * 3,
        "USUBJID": ["a1", "a1", "a2", "a2", "b1", "b1", "b1", "c1", "c1", "c2"],
        "value": [0.0, 2.0, 4.0, 6.0, 10.0, 10.0, 13.0, 1.0, 100.0, 10.0],
    })
    got = {u: d for u, d in subject_deviations(values).collect().select("USUBJID", "d").iter_rows()}
    # X has a 0, so raw values: A's median 3 -> a1 |0-3|,|2-3| -> 2; a2 -> 2; B's median 10 -> b1 (0+0+3)/3
    # Y is positive, so logs: C's median log 10 -> c1 (log 10 + log 10) / 2, c2 0
    assert got == pytest.approx({"a1": 2.0, "a2": 2.0, "b1": 1.0, "c1": np.log(10), "c2": 0.0})


def _deviations(readings: pl.DataFrame) -> pl.DataFrame:
    """Per subject: mean |log value - its site's median log value| (double-programmed)."""
    logged = readings.drop_nulls("VSSTRESN").with_columns(y=pl.col("VSSTRESN").log())
    return (logged.with_columns(dev=(pl.col("y") - pl.col("y").median().over("SITEID")).abs())
            .group_by("SITEID", "USUBJID").agg(d=pl.col("dev").mean()))


def test_welch_t_on_square_rooted_deviations_matches_scipy():
    readings = random_readings({"A": (12, 70), "B": (15, 72), "C": (9, 71)}, seed=4)
    steady = random_readings({"D": (10, 70)}, seed=5, within=1.0)                   # too regular
    readings = pl.concat([readings, steady])
    out = variance(measurement_study(readings))
    d = _deviations(readings)
    for site in "ABCD":
        row = out.filter(pl.col("site_id") == site).row(0, named=True)
        x = d.filter(pl.col("SITEID") == site)["d"].to_numpy()
        y = d.filter(pl.col("SITEID") != site)["d"].to_numpy()
        expected = stats.ttest_ind(np.sqrt(x), np.sqrt(y), equal_var=False)
        assert row["statistic"] == pytest.approx(expected.statistic, rel=1e-9)
        assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
        assert row["effect"] == pytest.approx(np.log(x.mean() / y.mean()), rel=1e-9)
    top = out.sort("p_value").row(0, named=True)
    assert top["site_id"] == "D" and top["effect"] < -0.2
    ratio = np.exp(top["effect"])
    assert top["description"] == (f"Heart rate results spread {round(100 * (1 - ratio))}% less around the site "
                                  "median at site D than elsewhere (10 subjects)")


def test_a_shifted_site_does_not_look_more_variable():
    """Each site is centred on its own median, on the log scale: a site whose results are all doubled
    (a calibration factor) spreads as much as the others."""
    readings = random_readings({"A": (12, 70), "B": (15, 72), "C": (9, 71)}, seed=6)
    doubled = random_readings({"D": (10, 140)}, seed=7, between=16.0, within=10.0)
    out = variance(measurement_study(pl.concat([readings, doubled])))
    assert out.filter(pl.col("site_id") == "D")["p_value"].item() > 0.05


def test_minimums_and_constant_variables():
    readings = random_readings({"A": (8, 70), "B": (8, 72), "C": (4, 71)}, seed=7)
    constant = readings.with_columns(VSTESTCD=pl.lit("TEMP"), VSSTRESN=pl.lit(36.6))
    out = variance(measurement_study(pl.concat([readings, constant])))
    assert set(out["variable"]) == {"VS:HR"} and sorted(out["site_id"]) == ["A", "B"]


def test_detects_fabricated_subjects_as_too_regular(injected, clean):
    out = variance(injected)
    too_low = out.filter(pl.col("effect") < 0).sort("p_value")
    top = too_low.row(0, named=True)
    assert top["site_id"] == "1015" and top["q_value"] < 0.05 and top["statistic"] < -4
    assert " less around the site median at site 1015 " in top["description"]
    assert variance(clean).filter(pl.col("site_id") == "1015")["p_value"].min() > 0.001


def test_a_calibration_shift_is_not_a_variance_finding():
    site, _ = SHIFTED["lab_calibration_shift"]
    out = variance(shifted_study(), variables=("LB:CREAT",))
    assert out.filter(pl.col("site_id") == site)["p_value"].item() > 0.01


def test_clean_study_is_not_inflated(clean):
    out = variance(clean)
    assert out.height > 600
    assert p_below(out, 0.01) < 0.025 and p_below(out, 0.05) < 0.08
    assert (out["q_value"] > 0.05).all()


def test_bad_parameters_raise(small):
    with pytest.raises(RbqmError, match="The 'min_country_sites' parameter of variance must be an integer >= 1"):
        variance(small, min_country_sites=0)
