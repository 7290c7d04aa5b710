"""identity: the metric or the count as the score."""

from __future__ import annotations

import polars as pl
import pytest

from rbqm.errors import RbqmError
from rbqm.stats import identity
from tests.stats.conftest import frame


def test_score_is_the_metric():
    out = identity(frame([17, 9, 0], [20, 10, 4]))
    assert out["score"].to_list() == pytest.approx([0.85, 0.9, 0.0])
    assert out["score"].to_list() == out["metric"].to_list()


def test_score_is_the_count():
    out = identity(frame([1, 3, 0], [12, 40, 5]), on="numerator")
    assert out["score"].to_list() == [1.0, 3.0, 0.0]
    assert out["score"].dtype == pl.Float64


@pytest.mark.parametrize("on", ["metric", "numerator"])
def test_no_denominator_no_score(on):
    out = identity(frame([0, 2, 1], [0, None, 3]), on=on)
    assert out["score"].to_list()[:2] == [None, None]
    assert out["metric"].to_list()[:2] == [None, None]


def test_rates_above_one_are_allowed():
    assert identity(frame([12], [10]))["score"].to_list() == [1.2]


def test_on_must_be_valid():
    message = (r"The 'on' parameter of identity must be one of \{'metric', 'numerator'\}; "
               r"got 'count' instead\.")
    with pytest.raises(RbqmError, match=message):
        identity(frame([1], [2]), on="count")
