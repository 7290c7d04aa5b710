"""Digit preference: the chi-square against scipy, recorded precision, and detection on synthetic studies."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rbqm.csm import digit_preference
from rbqm.csm._digits import recorded_decimals

from .conftest import hand_study


def _vitals_study(values: dict[str, list[float]], code: str = "SYSBP"):
    """Sites -> readings of one vital sign, 10 readings per subject."""
    subjects, rows = {}, []
    for site, readings in values.items():
        for k, value in enumerate(readings):
            subject = f"{site}-{k // 10}"
            subjects[subject] = (site, ["2024-01-01"], [])
            rows.append({"USUBJID": subject, "VSTESTCD": code, "VSSTRESN": value,
                         "VISITNUM": float(k % 10 + 1), "VSDTC": "2024-01-01"})
    return hand_study(subjects, extra={"vs": pl.DataFrame(rows)})


def test_chi_square_dps_and_effect_match_the_definitions():
    rng = np.random.default_rng(1)
    values = {site: list(120.0 + rng.integers(0, 10, 200)) for site in ("A", "B", "C")}
    values["D"] = [130.0] * 45 + list(120.0 + rng.integers(0, 10, 15))   # 75% end in 0
    out = digit_preference(_vitals_study(values), min_readings=50)
    d = out.filter(pl.col("site_id") == "D").row(0, named=True)
    site = np.bincount(np.array(values["D"], dtype=int) % 10, minlength=10)
    rest = np.bincount(np.concatenate([np.array(values[s], dtype=int) for s in "ABC"]) % 10, minlength=10)
    chi2, p, _, _ = stats.chi2_contingency(np.vstack([site, rest]), correction=False)
    assert d["p_value"] == pytest.approx(p, rel=1e-9)
    assert d["statistic"] == pytest.approx(100 * np.sqrt(chi2 / (60 * 9)))
    assert d["effect"] == pytest.approx(site[0] / 60 - rest[0] / 600)
    assert d["description"] == (
        f"Systolic BP ends in 0 in {round(100 * site[0] / 60)}% of readings at site D vs "
        f"{round(100 * rest[0] / 600)}% elsewhere (digit preference score {round(d['statistic'], 1)}; "
        "60 readings)")
    assert d["q_value"] == pytest.approx(min(1.0, p * 4))             # smallest of 4 p-values
    assert out.sort("p_value")["site_id"][0] == "D"


def test_one_strong_site_does_not_make_its_neighbours_look_different():
    """The other sites' rest leaves out a site the first pass finds clearly preferring a digit: compared
    with a rest that holds its zeros, every uniform site would show a lack of zeros."""
    rng = np.random.default_rng(4)
    values = {f"S{i}": list(120.0 + rng.integers(0, 10, 600)) for i in range(9)}
    values["Z"] = [130.0] * 480 + list(121.0 + rng.integers(0, 9, 120))   # 80% end in 0
    out = digit_preference(_vitals_study(values), min_readings=50)
    assert out.filter(pl.col("q_value") < 0.05)["site_id"].to_list() == ["Z"]
    # a uniform site is compared with the other uniform sites only, which scipy confirms
    site = np.bincount(np.array(values["S0"], dtype=int) % 10, minlength=10)
    rest = np.bincount(np.concatenate([np.array(values[f"S{i}"], dtype=int) for i in range(1, 9)]) % 10,
                       minlength=10)
    _, p, _, _ = stats.chi2_contingency(np.vstack([site, rest]), correction=False)
    assert out.filter(pl.col("site_id") == "S0")["p_value"].item() == pytest.approx(p, rel=1e-9)


def test_sites_below_min_readings_are_not_tested():
    rng = np.random.default_rng(2)
    values = {"A": list(100.0 + rng.integers(0, 10, 80)), "B": list(100.0 + rng.integers(0, 10, 80)),
              "C": list(100.0 + rng.integers(0, 10, 20))}
    assert sorted(digit_preference(_vitals_study(values), min_readings=50)["site_id"]) == ["A", "B"]


def test_recorded_decimals():
    rng = np.random.default_rng(3)
    frame = pl.DataFrame({
        "variable": ["int"] * 100 + ["one"] * 100 + ["two"] * 100 + ["raw"] * 100,
        "value": np.concatenate([rng.integers(50, 150, 100).astype(float),
                                 np.round(rng.normal(36.8, 0.3, 100), 1),
                                 np.round(rng.normal(3, 1, 100), 2), rng.normal(0, 1, 100)]),
    })
    got = dict(recorded_decimals(frame.lazy()).collect().iter_rows())
    assert got == {"int": 0, "one": 1, "two": 2, "raw": None}


def test_decimal_digit_of_one_decimal_variables():
    rng = np.random.default_rng(4)
    values = {s: list(np.round(36.0 + rng.integers(0, 20, 100) / 10, 1)) for s in "AB"}
    values["C"] = [37.5] * 60 + [36.5] * 40                                  # every reading ends in .5
    out = digit_preference(_vitals_study(values, code="TEMP"))
    c = out.filter(pl.col("site_id") == "C").row(0, named=True)
    assert c["description"].startswith(
        "Temperature (recorded to 1 decimal) ends in 5 in 100% of readings at site C")
    assert c["p_value"] < 1e-20


def test_detects_injected_digit_preference(injected, clean):
    out, before = digit_preference(injected), digit_preference(clean)
    for variable in ("VS:SYSBP", "VS:DIABP"):
        by_site = out.filter(pl.col("variable") == variable)
        hit = by_site.filter(pl.col("site_id") == "1010").row(0, named=True)
        assert hit["p_value"] < 1e-6 and hit["q_value"] < 1e-6
        others = by_site.filter(pl.col("site_id") != "1010")["statistic"]
        assert hit["statistic"] > 25 and hit["statistic"] > 2.5 * others.max()   # DPS well above other sites
        assert " ends in 0 " in hit["description"] and "site 1010" in hit["description"]
        same = (pl.col("variable") == variable) & (pl.col("site_id") == "1010")
        assert before.filter(same)["statistic"].item() < 12    # "good" on the DPS scale without it


def test_clean_study_p_values_are_roughly_uniform(clean):
    p = digit_preference(clean)["p_value"].to_numpy()
    assert len(p) > 500
    assert (p < 0.05).mean() < 0.12
