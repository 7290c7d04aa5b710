"""exact_tail: binomial and Poisson tails under the study rate, against scipy and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rbqm.errors import RbqmError
from rbqm.stats import exact_tail
from tests.stats.conftest import REFERENCE_EVENTS, REFERENCE_SUBJECTS, frame


def test_binomial_hand_example():
    # mu = 2/4 = 0.5; X ~ Bin(2, 0.5): P(X <= 0) = 1/4, P(X >= 2) = 1/4.
    out = exact_tail(frame([0, 2], [2, 2]), kind="binary")
    assert out["overall_metric"].to_list() == [0.5, 0.5]
    assert out["p_low"].to_list() == pytest.approx([0.25, 1.0])
    assert out["p_high"].to_list() == pytest.approx([1.0, 0.25])
    assert out["p_value"].to_list() == pytest.approx([0.5, 0.5])
    assert out["direction"].to_list() == [-1, 1]


def test_poisson_hand_example():
    # mu = 2 events / 2 days = 1 a day; each group expects 1: P(X <= 0) = e^-1, P(X >= 2) = 1 - 2/e.
    out = exact_tail(frame([0, 2], [1.0, 1.0]), kind="rate")
    assert out["expected"].to_list() == [1.0, 1.0]
    assert out["p_low"][0] == pytest.approx(math.exp(-1), rel=1e-14)
    assert out["p_high"][1] == pytest.approx(1 - 2 / math.e, rel=1e-14)
    assert out["p_value"].to_list() == pytest.approx([2 * math.exp(-1), 2 * (1 - 2 / math.e)])


@pytest.mark.parametrize("kind", ["binary", "rate"])
def test_reference_sites_against_scipy(reference_sites, kind):
    out = exact_tail(reference_sites, kind=kind)
    n, d = REFERENCE_EVENTS, REFERENCE_SUBJECTS
    mu = n.sum() / d.sum()
    if kind == "binary":
        low, high = stats.binom.cdf(n, d, mu), stats.binom.sf(n - 1, d, mu)
    else:
        low, high = stats.poisson.cdf(n, d * mu), stats.poisson.sf(n - 1, d * mu)
    np.testing.assert_allclose(out["p_low"].to_numpy(), low, rtol=1e-12)
    np.testing.assert_allclose(out["p_high"].to_numpy(), high, rtol=1e-12)
    doubled = np.minimum(1, 2 * np.minimum(low, high))
    np.testing.assert_allclose(out["p_value"].to_numpy(), doubled, rtol=1e-12)
    assert out["score"].to_list() == out["p_value"].to_list()
    assert out["direction"].to_list() == np.sign(n - d * mu).astype(int).tolist()


def test_group_at_the_study_rate_has_direction_zero_and_p_one():
    out = exact_tail(frame([1, 3, 2], [10, 30, 20]), kind="binary")
    assert out["direction"].to_list() == [0, 0, 0]
    assert out["p_value"].to_list() == [1.0, 1.0, 1.0]


def test_unscorable_rows_are_null():
    out = exact_tail(frame([1, 0, 4], [10, 0, 20]), kind="binary")
    assert out["p_low"][1] is None and out["p_high"][1] is None and out["score"][1] is None
    assert out["overall_metric"][1] == pytest.approx(5 / 30)


def test_rate_allows_fractional_exposure_but_not_fractional_counts():
    exact_tail(frame([1, 2], [10.5, 3.25]), kind="rate")
    with pytest.raises(RbqmError, match="numerator must be a whole number"):
        exact_tail(frame([1.5, 2], [10.0, 3.0]), kind="rate")
    with pytest.raises(RbqmError, match="denominator must be a whole number"):
        exact_tail(frame([1, 2], [10.5, 3.0]), kind="binary")


def test_kind_is_required_to_be_valid():
    with pytest.raises(RbqmError, match="The 'kind' parameter of exact_tail must be one of"):
        exact_tail(frame([1], [2]), kind="poisson")
