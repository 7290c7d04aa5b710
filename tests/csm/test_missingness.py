"""Missingness: planned and missing results counted by hand, Fisher / chi-square against scipy, and
detection of a site that leaves results empty on a synthetic study."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rbqm.csm import missingness
from rbqm.csm._contract import two_by_two
from rbqm.csm._missingness import planned_results
from rbqm.derive import AnalysisTables

from .battery_studies import measurement_study, p_below


def _hand_readings() -> pl.DataFrame:
    """Sites A and B, 3 subjects each, visits 1 and 2; HR and SYSBP at both visits, TEMP at visit 1.

    A-0: HR empty at visit 1; no SYSBP record at visit 2. B-2: a stray TEMP at visit 2 (not planned
    there: 1 of 6 subject-visits has it). Everything else is recorded.
    """
    rows = []
    for site in "AB":
        for k in range(3):
            subject = f"{site}-{k}"
            for visit, codes in ((1.0, ("HR", "SYSBP", "TEMP")), (2.0, ("HR", "SYSBP"))):
                for code in codes:
                    if (subject, visit, code) == ("A-0", 2.0, "SYSBP"):
                        continue
                    empty = (subject, visit, code) == ("A-0", 1.0, "HR")
                    rows.append({"SITEID": site, "USUBJID": subject, "VISITNUM": visit, "VSTESTCD": code,
                                 "VSSTRESN": None if empty else 100.0})
    rows.append({"SITEID": "B", "USUBJID": "B-2", "VISITNUM": 2.0, "VSTESTCD": "TEMP", "VSSTRESN": None})
    return pl.DataFrame(rows, schema_overrides={"VSSTRESN": pl.Float64})


def test_planned_and_missing_results_by_hand():
    counts = planned_results(measurement_study(_hand_readings()), None).collect()
    got = {(v, s): (p, m) for v, s, p, m in counts.sort("variable", "site_id").iter_rows()}
    assert got == {
        ("VS:HR", "A"): (6, 1), ("VS:HR", "B"): (6, 0),          # 3 subjects x 2 visits
        ("VS:SYSBP", "A"): (6, 1), ("VS:SYSBP", "B"): (6, 0),    # A-0's absent record counts as missing
        ("VS:TEMP", "A"): (3, 0), ("VS:TEMP", "B"): (3, 0),      # planned at visit 1 only
    }


def _site_study(share_a: float, share_rest: float, *, seed: int) -> tuple[pl.DataFrame, dict]:
    """HR at one visit for 100 subjects at A and 100 at each of B, C; a share of results empty."""
    rng = np.random.default_rng(seed)
    rows = []
    for site, share in (("A", share_a), ("B", share_rest), ("C", share_rest)):
        empty = rng.uniform(size=100) < share
        rows += [{"SITEID": site, "USUBJID": f"{site}-{k}", "VISITNUM": 1.0, "VSTESTCD": "HR",
                  "VSSTRESN": None if empty[k] else 70.0} for k in range(100)]
    frame = pl.DataFrame(rows, schema_overrides={"VSSTRESN": pl.Float64})
    return frame, dict(frame.group_by("SITEID").agg(pl.col("VSSTRESN").null_count()).iter_rows())


def test_p_value_effect_and_description():
    readings, missing = _site_study(0.15, 0.03, seed=1)
    out = missingness(measurement_study(readings))
    a = out.filter(pl.col("site_id") == "A").row(0, named=True)
    rest = missing["B"] + missing["C"]
    table = [[missing["A"], 100 - missing["A"]], [rest, 200 - rest]]
    _, p, _, expected = stats.chi2_contingency(table, correction=False)
    assert expected.min() >= 5                                        # a large table: chi-square
    assert a["p_value"] == pytest.approx(p, rel=1e-9)
    assert a["statistic"] == pytest.approx(missing["A"] / 100)
    assert a["effect"] == pytest.approx(missing["A"] / 100 - rest / 200)
    assert a["description"] == (f"Heart rate is missing for {missing['A']}% of 100 planned results at site A vs "
                                f"{round(100 * (rest / 200))}% elsewhere ({missing['A']} missing)")
    assert out.sort("p_value")["site_id"][0] == "A" and a["p_value"] < 0.01


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 60), st.integers(1, 400), st.data())
def test_two_by_two_is_fisher_for_small_tables_and_chi_square_otherwise(size, rest, data):
    events = data.draw(st.integers(0, size))
    rest_events = data.draw(st.integers(0, rest))
    got = two_by_two(np.array([events]), np.array([size]), np.array([events + rest_events]),
                     np.array([size + rest]))[0]
    table = [[events, size - events], [rest_events, rest - rest_events]]
    if events + rest_events in (0, size + rest):
        assert got == 1.0                                              # nothing to compare
    elif stats.contingency.expected_freq(table).min() < 5:
        assert got == pytest.approx(stats.fisher_exact(table).pvalue, rel=1e-6)
    else:
        assert got == pytest.approx(stats.chi2_contingency(table, correction=False)[1], rel=1e-6)


def test_minimums_and_variables_with_nothing_missing():
    readings, _ = _site_study(0.1, 0.1, seed=2)
    out = missingness(measurement_study(readings), min_planned=150)
    assert out.height == 0                                # each site plans 100 results < 150
    complete = readings.with_columns(pl.col("VSSTRESN").fill_null(70.0))
    assert missingness(measurement_study(complete)).height == 0   # nothing missing anywhere: not tested


def test_detects_a_site_that_leaves_results_empty(clean):
    lb = clean.with_sites("lb").collect().sort("USUBJID", "LBTESTCD", "VISITNUM")  # a fixed order for the mask
    rng = np.random.default_rng(3)
    blank = pl.Series(rng.uniform(size=lb.height) < 0.08)                # 8% of the site's lab results
    emptied = lb.with_columns(LBSTRESN=pl.when((pl.col("SITEID") == "1007") & blank).then(None)
                              .otherwise(pl.col("LBSTRESN")))
    study = AnalysisTables({**clean.tables, "lb": emptied.lazy()}, clean.sources, clean.as_of)
    out = missingness(study)
    hits = out.filter((pl.col("site_id") == "1007") & pl.col("variable").str.starts_with("LB:"))
    assert hits.height == 12 and (hits["q_value"] < 0.01).all() and (hits["effect"] > 0.03).all()
    assert set(out.sort("p_value").head(12)["site_id"]) == {"1007"}        # the 12 strongest findings


def test_clean_study_is_not_inflated(clean):
    out = missingness(clean)
    assert out.height > 600
    assert p_below(out, 0.01) < 0.03 and p_below(out, 0.05) < 0.08
