"""fisher: vectorised two-sided p-values against scipy.stats.fisher_exact, direction, properties."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from scipy.stats import fisher_exact

from rbqm.errors import RbqmError
from rbqm.stats import fisher
from tests.stats.conftest import binary_groups, frame


def scipy_p_values(events: np.ndarray, size: np.ndarray) -> np.ndarray:
    """One scipy.stats.fisher_exact call per group: group vs the rest (the test's independent reference)."""
    total_events, total = events.sum(), size.sum()
    return np.array([
        fisher_exact([[a, n - a], [total_events - a, (total - total_events) - (n - a)]]).pvalue
        for a, n in zip(events, size)
    ])


def test_scipy_docstring_table():
    # Two groups: the table [[8, 2], [1, 5]] of scipy's documentation, p = 0.0349650...
    out = fisher(frame([8, 1], [10, 6]))
    assert out["p_value"].to_list() == pytest.approx([0.034965034965034975] * 2, rel=1e-12)
    assert out["direction"].to_list() == [1, -1]
    assert out["score"].to_list() == out["p_value"].to_list()
    assert out["direction"].dtype == pl.Int8


@pytest.mark.parametrize("seed", range(6))
def test_equals_scipy_fisher_exact_on_random_studies(seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.integers(2, 30))
    size = rng.integers(1, [10, 60, 400, 3000, 40, 200][seed], groups)
    events = rng.binomial(size, rng.beta(2, 5, groups) if seed % 2 else rng.uniform(0.05, 0.95))
    out = fisher(frame(events.tolist(), size.tolist()))
    reference = scipy_p_values(events, size)
    np.testing.assert_allclose(out["p_value"].to_numpy(), reference, rtol=1e-10, atol=1e-300)


def test_large_denominators_match_scipy():
    rng = np.random.default_rng(7)
    size = rng.integers(20_000, 100_000, 40)
    events = rng.binomial(size, 0.3)
    events[0] = int(size[0] * 0.32)  # one clearly high group
    out = fisher(frame(events.tolist(), size.tolist()))
    np.testing.assert_allclose(out["p_value"].to_numpy(), scipy_p_values(events, size), rtol=1e-9)
    assert out["p_value"][0] < 1e-10 and out["direction"][0] == 1


def test_ties_and_degenerate_tables():
    # Same proportion everywhere: direction 0; no events at all / only events: p = 1.
    same = fisher(frame([2, 4, 6], [10, 20, 30]))
    assert same["direction"].to_list() == [0, 0, 0]
    for numerators in ([0, 0, 0], [10, 20, 30]):
        out = fisher(frame(numerators, [10, 20, 30]))
        assert out["p_value"].to_list() == [1.0, 1.0, 1.0]
    single = fisher(frame([3], [10]))
    assert single["p_value"].to_list() == [1.0] and single["direction"].to_list() == [0]


def test_unscorable_groups_are_null_and_left_out_of_the_rest():
    out = fisher(frame([8, 0, 1], [10, 0, 6]))
    assert out["p_value"][1] is None and out["direction"][1] is None and out["score"][1] is None
    assert out["p_value"][0] == pytest.approx(0.034965034965034975, rel=1e-12)


@settings(max_examples=120, deadline=None, database=None)
@given(binary_groups(min_size=1, max_size=25, max_denominator=200))
def test_p_values_are_probabilities_and_match_scipy(groups):
    out = fisher(frame(*groups))
    p = out["p_value"].to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    events, size = (np.asarray(v) for v in groups)
    np.testing.assert_allclose(p, scipy_p_values(events, size), rtol=1e-9, atol=1e-300)
    direction = np.sign(events / size - (events.sum() - events) / np.maximum(size.sum() - size, 1))
    direction[size.sum() - size == 0] = 0
    assert out["direction"].to_list() == direction.astype(int).tolist()


@pytest.mark.parametrize(
    ("numerators", "denominators", "message"),
    [
        ([1.5, 2], [10, 10], "numerator must be a whole number for an exact test; first offending row 1: "
                             "group_id='S000'"),
        ([1, 2], [10.0, 10.5], "denominator must be a whole number"),
        ([11, 2], [10, 10], "numerator must not exceed denominator"),
    ],
)
def test_input_errors(numerators, denominators, message):
    with pytest.raises(RbqmError, match=message):
        fisher(frame(numerators, denominators))
