"""The csm finding contract, checked on every test function, plus skipping, stacking and validation."""

from __future__ import annotations

import re
from datetime import date
from functools import partial

import polars as pl
import pytest

import rbqm.csm
from rbqm.csm import (
    CSM_COLUMNS, TESTS, ae_under_reporting, digit_preference, low_variability, run_csm, skipped_tests,
)
from rbqm.derive import derive_tables
from rbqm.errors import RbqmError

from .conftest import hand_study

FUNCTIONS = {
    "ae_under_reporting": partial(ae_under_reporting, r=200),
    "sae_under_reporting": partial(ae_under_reporting, r=200, serious=True),
    "digit_preference": digit_preference,
    "low_variability": low_variability,
    **{name: getattr(rbqm.csm, name)
       for name in ("mean_shift", "variance", "distribution", "missingness", "rounding", "proportions",
                    "mahalanobis", "duplicates", "visit_dates", "visit_regularity", "date_order", "event_counts")},
}


def test_public_surface():
    for name in rbqm.csm.__all__:
        assert hasattr(rbqm.csm, name), name
    assert set(FUNCTIONS) == set(TESTS)


@pytest.mark.parametrize("test", sorted(FUNCTIONS))
def test_contract(small, test):
    out = FUNCTIONS[test](small)
    assert out.schema == pl.Schema(CSM_COLUMNS)
    assert out.height > 0
    assert set(out["test"]) == {test}
    assert out["study_id"].unique().to_list() == ["RBQM-SYN-01"]          # dm's STUDYID by default
    assert out["cut_date"].unique().to_list() == [small.as_of]
    assert out.drop("study_id", "cut_date", "test").null_count().sum_horizontal().item() == 0
    assert out["p_value"].is_between(0, 1).all() and (out["q_value"] >= out["p_value"]).all()
    assert out.select(pl.struct("site_id", "variable").is_unique().all()).item()
    assert out.equals(out.sort(["variable", "site_id"]))
    for site, text in out.select("site_id", "description").iter_rows():
        assert f"site {site}" in text.lower(), text
        # the numbers, not only the site
        assert re.search(r"\d+(\.\d+)?( |%)", text.replace(f"site {site}", "")), text


@pytest.mark.parametrize("test", sorted(FUNCTIONS))
def test_stamps_override_the_defaults(small, test):
    out = FUNCTIONS[test](small, study_id="X-1", cut_date=date(2030, 1, 1))
    assert set(out["study_id"]) == {"X-1"} and set(out["cut_date"]) == {date(2030, 1, 1)}


@pytest.mark.parametrize("test", sorted(FUNCTIONS))
def test_missing_inputs_give_a_row_free_result(test):
    dm_only = derive_tables({"dm": pl.DataFrame({
        "STUDYID": "S", "USUBJID": ["S-1"], "SITEID": ["1"], "COUNTRY": ["FRA"], "RFSTDTC": ["2024-01-02"],
        "ARMCD": ["A"]})}, as_of=date(2024, 6, 1))
    out = FUNCTIONS[test](dm_only)
    assert out.height == 0 and out.schema == pl.Schema(CSM_COLUMNS)
    assert test in skipped_tests(dm_only)


def test_run_csm_stacks_every_test_and_skips_what_lacks_input(small):
    out = run_csm(small, study_id="S1", cut_date=date(2025, 3, 1), r=200)
    assert out.schema == pl.Schema(CSM_COLUMNS)
    assert set(out["test"]) == set(TESTS)
    assert set(out["study_id"]) == {"S1"} and set(out["cut_date"]) == {date(2025, 3, 1)}
    assert skipped_tests(small) == {}
    ae_only = hand_study({"A-1": ("A", ["2024-01-01", "2024-01-08"], ["2024-01-03"]),
                          "B-1": ("B", ["2024-01-01", "2024-01-08"], [])})
    assert set(skipped_tests(ae_only)) == {test for test, (tables, _) in TESTS.items()
                                           if set(tables) <= {"vs", "lb"}}
    assert set(run_csm(ae_only, study_id="S", cut_date=date(2025, 1, 1), r=50)["test"]) == {
        "ae_under_reporting", "sae_under_reporting"}


@pytest.mark.parametrize(("call", "message"), [
    (lambda a: ae_under_reporting(a, r=0), "The 'r' parameter of ae_under_reporting must be an integer >= 1"),
    (lambda a: ae_under_reporting(a, seed=1.5), "The 'seed' parameter"),
    (lambda a: digit_preference(a, variables=("SYSBP",)), "'DOMAIN:CODE'"),
    (lambda a: digit_preference(a, variables="VS:SYSBP"), "The 'variables' parameter of digit_preference"),
    (lambda a: low_variability(a, steady_share=0.7), "The 'steady_share' parameter of low_variability"),
    (lambda a: low_variability(a, min_values=1), "The 'min_values' parameter"),
    (lambda a: run_csm({"dm": a["subjects"]}, study_id="S", cut_date=date(2025, 1, 1)),
     "The 'analysis' parameter of run_csm must be the AnalysisTables"),
])
def test_bad_parameters_raise(small, call, message):
    with pytest.raises(RbqmError, match=re.escape(message)):
        call(small)


def test_variables_restrict_the_measurements(small):
    out = digit_preference(small, variables=("VS:SYSBP", "LB:ALT"))
    assert set(out["variable"]) == {"VS:SYSBP", "LB:ALT"}
    assert set(low_variability(small, variables=("VS:SYSBP", "VS:DIABP", "VS:HR"))["variable"]) == {"VS"}
