"""flag and flag_p_value: half-open bands at the exact boundaries, null guard, minimum to score, errors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbqm.errors import RbqmError
from rbqm.stats import flag, flag_p_value

TWO_SIDED = {"thresholds": (-3, -2, 2, 3), "flags": (-2, -1, 0, 1, 2)}


def scored(scores, numerators=None, denominators=None) -> pl.DataFrame:
    size = len(scores)
    return pl.DataFrame({
        "group_id": [f"g{i}" for i in range(size)],
        "numerator": numerators if numerators is not None else [5] * size,
        "denominator": denominators if denominators is not None else [50] * size,
        "score": pl.Series(scores, dtype=pl.Float64),
    })


def test_two_sided_bands_at_the_exact_boundaries():
    scores = [-3.0001, -3.0, -2.5, -2.0, 0.0, 1.9999, 2.0, 2.9999, 3.0, 10.0]
    out = flag(scored(scores), **TWO_SIDED)
    assert out["flag"].to_list() == [-2, -1, -1, 0, 0, 0, 1, 1, 2, 2]
    assert out["flag"].dtype == pl.Int8


def test_one_sided_bands():
    out = flag(scored([-5.0, 1.99, 2.0, 2.5, 3.0, 7.0]), thresholds=(2, 3), flags=(0, 1, 2))
    assert out["flag"].to_list() == [0, 0, 1, 1, 2, 2]


def test_identity_style_low_is_bad():
    # kri0013: metric < 0.85 red, < 0.90 amber.
    out = flag(scored([0.84, 0.85, 0.89, 0.90, 1.0]), thresholds=(0.85, 0.90), flags=(2, 1, 0))
    assert out["flag"].to_list() == [2, 1, 1, 0, 0]


def test_null_and_nan_scores_get_null_flags():
    out = flag(scored([None, float("nan"), -10.0]), **TWO_SIDED)
    assert out["flag"].to_list() == [None, None, -2]


@pytest.mark.parametrize(
    ("min_on", "numerators", "denominators", "scorable"),
    [
        ("denominator", [0, 0, 0], [29, 30, 31], [False, True, True]),
        ("numerator", [9, 10, 11], [50, 50, 50], [False, True, True]),
        ("difference", [48, 47, 40], [50, 50, 50], [False, True, True]),  # D - N = 2, 3, 10 with min 3
    ],
)
def test_minimum_to_score(min_on, numerators, denominators, scorable):
    minimum = {"denominator": 30, "numerator": 10, "difference": 3}[min_on]
    df = scored([5.0, 5.0, 5.0], numerators, denominators)
    out = flag(df, **TWO_SIDED, min_count=minimum, min_on=min_on)
    assert out["flag"].to_list() == [2 if ok else None for ok in scorable]
    # Too few to score: score and flag empty, never 0.
    assert out["score"].to_list() == [5.0 if ok else None for ok in scorable]


def test_missing_counts_are_below_the_minimum():
    out = flag(scored([1.0, 1.0], [1, 1], [None, 40]), **TWO_SIDED, min_count=30)
    assert out["flag"].to_list() == [None, 0]


def test_lazy_stays_lazy_and_input_is_untouched():
    df = scored([2.5, -2.5])
    before = df.clone()
    out = flag(df.lazy(), **TWO_SIDED, min_count=1)
    assert isinstance(out, pl.LazyFrame)
    assert out.collect()["flag"].to_list() == [1, -1]
    assert df.equals(before)


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=50),
    st.lists(st.floats(-8, 8, allow_nan=False), min_size=1, max_size=6, unique=True),
)
def test_flags_are_monotone_in_the_score(scores, edges):
    thresholds = sorted(edges)
    flags = list(range(len(thresholds) + 1))
    out = flag(scored(scores), thresholds=thresholds, flags=flags).sort("score")
    assert (np.diff(out["flag"].to_numpy()) >= 0).all()
    expected = np.searchsorted(np.asarray(thresholds), out["score"].to_numpy(), side="right")
    assert out["flag"].to_list() == expected.tolist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thresholds": (2, 3), "flags": (0, 1)},
         r"The 'flags' parameter of flag must be a sequence of len\(thresholds\) \+ 1 = 3 integers"),
        ({"thresholds": (3, 2), "flags": (0, 1, 2)},
         "The 'thresholds' parameter of flag must be a non-empty"),
        ({"thresholds": (2, 2), "flags": (0, 1, 2)}, "strictly increasing order; got \\(2, 2\\) instead"),
        ({"thresholds": (2, 3), "flags": (0, 1.5, 2)}, "The 'flags' parameter of flag"),
        ({"thresholds": (2, 3), "flags": (0, 1, 2), "min_on": "subjects"},
         r"The 'min_on' parameter of flag must be one of \{'numerator', 'denominator', 'difference'\}; "
         r"got 'subjects' instead\."),
        ({"thresholds": (2, 3), "flags": (0, 1, 2), "min_count": -1}, "The 'min_count' parameter of flag"),
    ],
)
def test_parameter_errors(kwargs, message):
    with pytest.raises(RbqmError, match=message):
        flag(scored([1.0]), **kwargs)


def test_missing_columns():
    missing = r"flag: the input frame is missing the required column\(s\) \['score'\]"
    with pytest.raises(RbqmError, match=missing):
        flag(pl.DataFrame({"x": [1.0]}), **TWO_SIDED)
    with pytest.raises(RbqmError, match=r"missing the required column\(s\) \['numerator'\]"):
        df = pl.DataFrame({"score": [1.0], "denominator": [3]})
        flag(df, **TWO_SIDED, min_count=1, min_on="difference")


def test_flag_p_value():
    df = pl.DataFrame({
        "numerator": [5, 5, 5, 5, 5, 1],
        "denominator": [9, 9, 9, 9, 9, 2],
        "p_value": [0.0099, 0.01, 0.049, 0.05, None, 0.001],
        "direction": pl.Series([1, -1, -1, 1, 1, 1], dtype=pl.Int8),
        "score": [0.0099, 0.01, 0.049, 0.05, None, 0.001],
    })
    out = flag_p_value(df, min_count=3)
    assert out["flag"].to_list() == [2, -1, -1, 0, None, None]
    assert out["score"][5] is None and out["flag"].dtype == pl.Int8
    assert flag_p_value(df, amber=0.1, red=0.05)["flag"].to_list() == [2, -2, -2, 1, None, 2]


@pytest.mark.parametrize(("amber", "red"), [(0.01, 0.05), (0.05, 0.0), (1.5, 0.01)])
def test_flag_p_value_levels(amber, red):
    df = pl.DataFrame({"p_value": [0.5], "direction": [1]})
    with pytest.raises(RbqmError, match="parameter of flag_p_value must be a number in"):
        flag_p_value(df, amber=amber, red=red)
