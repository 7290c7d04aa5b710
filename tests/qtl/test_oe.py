"""observed_minus_expected: the reference check (rbqm-reference section 4), statuses, properties."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from rbqm.errors import RbqmError
from rbqm.qtl import OE_STATUSES, observed_minus_expected

COLUMNS = ["subject", "o_minus_e", "warn_lower", "warn_upper", "action_lower", "action_upper", "status"]


def test_reference_limits_at_subject_62():
    chart = observed_minus_expected(np.zeros(80), p0=0.10, n_max=400)
    row = chart.row(61, named=True)
    assert row["subject"] == 62
    assert row["warn_lower"] == pytest.approx(-5.2, abs=1e-9)
    assert row["warn_upper"] == pytest.approx(5.8, abs=1e-9)
    assert chart["action_lower"].unique().to_list() == [pytest.approx(-20.0)]
    assert chart["action_upper"].unique().to_list() == [pytest.approx(20.0)]


def test_columns_and_values_by_hand():
    events = [1, 0, 0, 1, 1]
    chart = observed_minus_expected(pl.Series(events), p0=0.2, n_max=50, permitted=(0.1, 0.3), q=(0.05, 0.95))
    assert chart.columns == COLUMNS
    assert chart.schema["subject"] == pl.Int64 and chart.schema["status"] == pl.String
    assert chart["subject"].to_list() == [1, 2, 3, 4, 5]
    assert chart["o_minus_e"].to_list() == pytest.approx([0.8, 0.6, 0.4, 1.2, 2.0])
    i = np.arange(1, 6)
    assert chart["warn_upper"].to_list() == pytest.approx(binom.ppf(0.95, i, 0.2) - 0.2 * i)
    assert chart["warn_lower"].to_list() == pytest.approx(binom.ppf(0.05, i, 0.2) - 0.2 * i)
    assert chart["action_lower"].to_list() == pytest.approx([-5.0] * 5)
    assert chart["action_upper"].to_list() == pytest.approx([5.0] * 5)


def test_status_by_limits():
    # p0 = 0.05: the 99% limit for one subject is ppf(0.99; 1, 0.05) - 0.05 = 1 - 0.05 = 0.95, so an event at
    # subject 1 (O-E = 0.95) is on the limit: within. At subject 2 the limit is 1 - 0.1 = 0.9
    # (P(X <= 1) = 0.9975) and O-E = 1.9: warning. The action limit is 20 (0.15 - 0.05) = 2, exceeded at
    # subject 3 (O-E = 2.85).
    chart = observed_minus_expected([1, 1, 1, 1], p0=0.05, n_max=20, permitted=(0.0, 0.15))
    assert chart["warn_upper"].to_list()[:2] == pytest.approx([0.95, 0.9])
    assert chart["status"].to_list() == ["within", "warning", "action", "action"]
    low = observed_minus_expected(np.zeros(200), p0=0.1, n_max=300, permitted=(0.05, 0.2))
    assert low.filter(pl.col("o_minus_e") < pl.col("action_lower"))["status"].unique().to_list() == ["action"]
    assert set(low["status"]) <= set(OE_STATUSES)


def test_booleans_and_arrays_give_the_same_chart():
    outcomes = [True, False, False, True]
    as_array = observed_minus_expected(np.array([1, 0, 0, 1]), 0.1, 10)
    assert observed_minus_expected(outcomes, 0.1, 10).equals(as_array)


@settings(max_examples=60, deadline=None)
@given(p0=st.floats(0.02, 0.98), n=st.integers(1, 400), seed=st.integers(0, 2**31 - 1))
def test_warning_limits_bracket_zero(p0, n, seed):
    """Under p0 the expected O-E is 0 and it lies within the 1%-99% limits. (For p0 below 0.01 the 99th
    centile of the first subjects' events is 0, so the upper limit is then -i p0 < 0: the property needs
    (1 - p0) < 0.99 and p0 < 0.99.)"""
    events = np.random.default_rng(seed).binomial(1, p0, n)
    chart = observed_minus_expected(events, p0=p0, n_max=max(n, 10), permitted=(0.0, 1.0))
    assert (chart["warn_lower"] <= 1e-9).all() and (chart["warn_upper"] >= -1e-9).all()
    assert (chart["warn_lower"] <= chart["warn_upper"]).all()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"events": [0, 2]}, "must hold only 0 and 1"),
    ({"events": []}, "non-empty 1-D"),
    ({"events": pl.Series([1, None])}, "must not hold nulls"),
    ({"p0": 1.0}, "'p0' parameter"),
    ({"n_max": 0}, "'n_max' parameter"),
    ({"permitted": (0.15, 0.05)}, "'permitted' parameter"),
    ({"permitted": (0.2, 0.3)}, "must bracket p0"),
    ({"q": (0.0, 0.99)}, "'q' parameter"),
])
def test_bad_input_names_the_parameter(kwargs, message):
    args = {"events": [0, 1, 0], "p0": 0.1, "n_max": 100} | kwargs
    with pytest.raises(RbqmError, match=message):
        observed_minus_expected(**args)
