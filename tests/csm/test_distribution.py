"""Distribution (two-sample Kolmogorov-Smirnov, site vs rest): distances from one ranking against
scipy.stats.ks_2samp, p-values, and detection of a lab calibration shift on a synthetic study."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rbqm.csm import distribution
from rbqm.csm._distribution import ks_distances

from .battery_studies import SHIFTED, measurement_study, p_below, random_readings, shifted_study

# values on a coarse grid, so that ties within and between sites are common
_SITES = st.lists(st.lists(st.integers(0, 12).map(lambda v: v / 2), min_size=1, max_size=12), min_size=2,
                  max_size=5)


@settings(max_examples=60, deadline=None)
@given(_SITES)
def test_distance_and_gap_match_ks_2samp(samples):
    frame = pl.LazyFrame({"variable": "X", "site_id": [str(i) for i, s in enumerate(samples) for _ in s],
                          "m": [v for s in samples for v in s]})
    out = ks_distances(frame).collect()
    assert out.height == len(samples)
    for row in out.iter_rows(named=True):
        site = np.array(samples[int(row["site_id"])])
        rest = np.concatenate([s for i, s in enumerate(samples) if i != int(row["site_id"])])
        assert row["D"] == pytest.approx(stats.ks_2samp(site, rest).statistic, abs=1e-12)
        at = row["at"]
        share = (lambda a: np.mean(a < at)) if row["below"] else (lambda a: np.mean(a <= at))  # noqa: B023
        assert row["site_share"] == pytest.approx(share(site)) and row["rest_share"] == pytest.approx(share(rest))
        assert abs(row["site_share"] - row["rest_share"]) == pytest.approx(row["D"])
        assert (row["n"], row["rest_n"]) == (len(site), len(rest))


def test_p_values_are_scipy_asymptotic_ones_on_subject_means():
    readings = random_readings({"A": (12, 70), "B": (15, 72), "C": (30, 71), "D": (10, 80)}, seed=8)
    out = distribution(measurement_study(readings))
    means = readings.group_by("SITEID", "USUBJID").agg(m=pl.col("VSSTRESN").mean())
    for site in "ABCD":
        row = out.filter(pl.col("site_id") == site).row(0, named=True)
        x = means.filter(pl.col("SITEID") == site)["m"].to_numpy()
        y = means.filter(pl.col("SITEID") != site)["m"].to_numpy()
        asymp = stats.ks_2samp(x, y, method="asymp")
        assert row["statistic"] == pytest.approx(asymp.statistic, abs=1e-12)
        assert row["p_value"] == pytest.approx(asymp.pvalue, rel=1e-9)
        # for these sizes the exact p-value is close (Smirnov's is slightly conservative)
        assert row["p_value"] == pytest.approx(stats.ks_2samp(x, y, method="exact").pvalue, rel=0.5, abs=0.02)
    d = out.filter(pl.col("site_id") == "D").row(0, named=True)
    assert d["effect"] > 0.4 and d["effect"] == pytest.approx(d["statistic"])     # D's values are higher
    assert d["description"].startswith("Heart rate: ")
    assert d["description"].endswith(f"elsewhere (Kolmogorov-Smirnov distance {round(d['statistic'], 2)}; "
                                     "10 subjects)")
    assert "% of subjects at site D average " in d["description"]


def test_minimums_and_constant_variables():
    readings = random_readings({"A": (8, 70), "B": (8, 72), "C": (4, 71)}, seed=9)
    constant = readings.with_columns(VSTESTCD=pl.lit("TEMP"), VSSTRESN=pl.lit(36.6))
    out = distribution(measurement_study(pl.concat([readings, constant])))
    assert set(out["variable"]) == {"VS:HR"} and sorted(out["site_id"]) == ["A", "B"]


def test_detects_a_creatinine_calibration_shift():
    site, _ = SHIFTED["lab_calibration_shift"]
    out = distribution(shifted_study())
    top = out.sort("p_value").row(0, named=True)
    assert (top["site_id"], top["variable"]) == (site, "LB:CREAT")
    assert top["q_value"] < 0.01 and top["effect"] > 0.3


def test_clean_study_is_not_inflated(clean):
    out = distribution(clean)
    assert out.height > 600
    assert p_below(out, 0.01) < 0.025 and p_below(out, 0.05) < 0.08
    assert (out["q_value"] > 0.05).all()
