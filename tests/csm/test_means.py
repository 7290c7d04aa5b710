"""Mean shift: Welch's t from group sums against scipy, the country comparison group, minimums, and
detection of a lab calibration shift on a synthetic study."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rbqm.csm import mean_shift
from rbqm.csm._means import two_sided_t, welch_versus_rest
from rbqm.errors import RbqmError

from .battery_studies import SHIFTED, measurement_study, p_below, random_readings, shifted_study


def _subject_means(readings: pl.DataFrame) -> pl.DataFrame:
    return readings.drop_nulls("VSSTRESN").group_by("SITEID", "USUBJID").agg(m=pl.col("VSSTRESN").mean())


def _expected(means: pl.DataFrame, site: str, rest: pl.Expr) -> tuple[float, float, float]:
    """Welch's t, p and the standardised difference on log subject means, by scipy."""
    x = np.log(means.filter(pl.col("SITEID") == site)["m"].to_numpy())
    y = np.log(means.filter(rest)["m"].to_numpy())
    result = stats.ttest_ind(x, y, equal_var=False)
    return result.statistic, result.pvalue, (x.mean() - y.mean()) / y.std(ddof=1)


def test_welch_t_on_log_subject_means_matches_scipy():
    readings = random_readings({"A": (12, 70), "B": (15, 72), "C": (9, 71), "D": (10, 85)}, seed=1)
    out = mean_shift(measurement_study(readings))
    means = _subject_means(readings)
    for site in "ABCD":
        row = out.filter(pl.col("site_id") == site).row(0, named=True)
        t, p, effect = _expected(means, site, pl.col("SITEID") != site)
        assert row["statistic"] == pytest.approx(t, rel=1e-9)
        assert row["p_value"] == pytest.approx(p, rel=1e-9)
        assert row["effect"] == pytest.approx(effect, rel=1e-9)
    d = out.filter(pl.col("site_id") == "D").row(0, named=True)
    site_mean = means.filter(pl.col("SITEID") == "D")["m"].mean()
    rest_mean = means.filter(pl.col("SITEID") != "D")["m"].mean()
    decimals = int(np.clip(1 - np.floor(np.log10(means["m"].std())), 0, 4))   # 2 significant digits of the SD
    assert decimals == 1
    assert d["description"] == (f"Heart rate averages {round(site_mean, 1)} at site D vs {round(rest_mean, 1)} "
                                f"elsewhere ({round(d['effect'], 1)} SD higher; subject means of 10 subjects)")
    assert out.sort("p_value")["site_id"][0] == "D" and d["q_value"] == pytest.approx(min(1, 4 * d["p_value"]))


def test_a_site_is_compared_with_its_country_when_the_country_has_enough_sites():
    # six French sites at 70, one German site at 90: French sites are judged against France only
    sites = {f"F{i}": (12, 70.0) for i in range(6)} | {"G": (12, 90.0)}
    readings = random_readings(sites, seed=2)
    out = mean_shift(measurement_study(readings, countries={"G": "DEU"}))
    means = _subject_means(readings)
    f0 = out.filter(pl.col("site_id") == "F0").row(0, named=True)
    t, p, _ = _expected(means, "F0", pl.col("SITEID").str.starts_with("F") & (pl.col("SITEID") != "F0"))
    assert f0["statistic"] == pytest.approx(t, rel=1e-9) and f0["p_value"] == pytest.approx(p, rel=1e-9)
    assert " at other sites in FRA (" in f0["description"]
    g = out.filter(pl.col("site_id") == "G").row(0, named=True)
    t, p, _ = _expected(means, "G", pl.col("SITEID") != "G")          # Germany alone: the whole study
    assert g["statistic"] == pytest.approx(t, rel=1e-9) and " elsewhere (" in g["description"]
    assert g["p_value"] < 1e-4
    # a country needs 5 other sites: with min_country_sites=6 every site is compared with the study
    study = mean_shift(measurement_study(readings, countries={"G": "DEU"}), min_country_sites=6)
    assert not study["description"].str.contains("other sites in").any()


def test_minimums_constants_and_nulls():
    readings = random_readings({"A": (8, 70), "B": (8, 72), "C": (4, 90)}, seed=3)
    constant = readings.with_columns(VSTESTCD=pl.lit("TEMP"), VSSTRESN=pl.lit(36.6))
    empty = readings.head(6).with_columns(VSSTRESN=pl.lit(None, pl.Float64))   # nulls are not results
    out = mean_shift(measurement_study(pl.concat([readings.slice(6), constant, empty])))
    assert set(out["variable"]) == {"VS:HR"}                                  # constant TEMP: not tested
    assert sorted(out["site_id"]) == ["A", "B"]                               # C has 4 subjects < 5
    a = out.filter(pl.col("site_id") == "A").row(0, named=True)
    assert "subject means of 7 subjects" in a["description"]               # A-0's readings were all null
    assert sorted(mean_shift(measurement_study(readings), min_subjects=4)["site_id"]) == ["A", "B", "C"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=2, max_size=15), st.lists(st.floats(-50, 50), min_size=2, max_size=15))
def test_welch_from_sums_equals_scipy_from_data(x, y):
    x, y = np.array(x), np.array(y)
    if x.std() < 1e-3 or y.std() < 1e-3:
        return
    frame = pl.LazyFrame({"n": [float(len(x))], "s1": [x.sum()], "s2": [(x**2).sum()],
                          "rest_n": [float(len(y))], "rest_s1": [y.sum()], "rest_s2": [(y**2).sum()]})
    got = welch_versus_rest(frame).collect()
    expected = stats.ttest_ind(x, y, equal_var=False)
    assert got["t"][0] == pytest.approx(expected.statistic, rel=1e-6, abs=1e-9)
    assert two_sided_t(got)[0] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)


def test_detects_a_creatinine_calibration_shift(clean):
    site, _ = SHIFTED["lab_calibration_shift"]
    out = mean_shift(shifted_study())
    hit = out.filter((pl.col("site_id") == site) & (pl.col("variable") == "LB:CREAT")).row(0, named=True)
    assert hit["q_value"] < 0.01 and hit["effect"] > 0.5
    assert out.sort("p_value").row(0, named=True)["description"] == hit["description"]
    assert hit["description"].startswith("Creatinine averages ") and " SD higher" in hit["description"]
    same = (pl.col("site_id") == site) & (pl.col("variable") == "LB:CREAT")
    assert mean_shift(clean).filter(same)["p_value"].item() > 0.01


def test_clean_study_is_not_inflated(clean):
    out = mean_shift(clean)
    assert out.height > 600
    assert p_below(out, 0.01) < 0.025 and p_below(out, 0.05) < 0.08
    assert (out["q_value"] > 0.05).all()


def test_bad_parameters_raise(small):
    with pytest.raises(RbqmError, match="The 'min_subjects' parameter of mean_shift must be an integer >= 2"):
        mean_shift(small, min_subjects=1)
    with pytest.raises(RbqmError, match="'DOMAIN:CODE'"):
        mean_shift(small, variables=("CREAT",))
