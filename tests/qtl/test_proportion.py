"""clopper_pearson against scipy's exact interval; one_sided_proportion (gsm.qtl) by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from rbqm.errors import RbqmError
from rbqm.qtl import clopper_pearson, one_sided_proportion


@pytest.mark.parametrize(("events", "n"), [(0, 1), (1, 1), (0, 20), (3, 100), (20, 20), (36, 46), (7, 1200)])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_clopper_pearson_matches_scipy(events, n, level):
    expected = binomtest(events, n).proportion_ci(confidence_level=level, method="exact")
    assert clopper_pearson(events, n, level) == pytest.approx((expected.low, expected.high), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_clopper_pearson_brackets_the_proportion(case):
    events, n = case
    lower, upper = clopper_pearson(events, n)
    assert 0.0 <= lower <= events / n <= upper <= 1.0
    expected = binomtest(events, n).proportion_ci(method="exact")
    assert (lower, upper) == pytest.approx((expected.low, expected.high), abs=1e-10)


def test_one_sided_proportion_by_hand():
    # p0 = 0.03, n = 100: se = sqrt(0.03 * 0.97 / 100) = 0.0170587; limit = 0.03 + 3 se = 0.0811762
    se = math.sqrt(0.03 * 0.97 / 100)
    z, limit, flag = one_sided_proportion(9, 100, 0.03)
    assert z == pytest.approx((0.09 - 0.03) / se, rel=1e-14)
    assert limit == pytest.approx(0.03 + 3 * se, rel=1e-14) == pytest.approx(0.0811762, abs=1e-7)
    assert flag == 2                                              # 0.09 >= 0.0812
    assert one_sided_proportion(4, 100, 0.03).flag == 1           # 0.03 <= 0.04 < 0.0812
    assert one_sided_proportion(3, 100, 0.03).flag == 1           # p = p0 is flag 1 (closed on the left)
    assert one_sided_proportion(2, 100, 0.03).flag == 0
    assert one_sided_proportion(2, 100, 0.03).z == pytest.approx(-0.01 / se, rel=1e-14)


def test_one_sided_proportion_limit_is_closed():
    # p0 = 0.5, n = 4: se = 0.25 exactly; with one sd the limit is 0.75 = 3/4, which flags 2
    assert one_sided_proportion(3, 4, 0.5, n_sd=1) == (1.0, 0.75, 2)
    assert one_sided_proportion(2, 4, 0.5, n_sd=1) == (0.0, 0.75, 1)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: clopper_pearson(5, 4), "'events' parameter of clopper_pearson"),
    (lambda: clopper_pearson(1, 0), "'n' parameter of clopper_pearson"),
    (lambda: clopper_pearson(1.5, 4), "must be whole numbers"),
    (lambda: clopper_pearson(1, 4, level=1.0), "'level' parameter of clopper_pearson"),
    (lambda: one_sided_proportion(1, 4, 1.0), "'p0' parameter of one_sided_proportion"),
    (lambda: one_sided_proportion(1, 4, 0.0), "'p0' parameter of one_sided_proportion"),
    (lambda: one_sided_proportion(1, 4, 0.1, n_sd=0), "'n_sd' parameter of one_sided_proportion"),
])
def test_bad_input_names_the_parameter(call, message):
    with pytest.raises(RbqmError, match=message):
        call()
