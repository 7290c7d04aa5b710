"""Benjamini-Hochberg q-values: hand example, an independent numpy implementation, properties."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbqm.errors import RbqmError
from rbqm.stats import benjamini_hochberg, bh_expr


def numpy_bh(p: np.ndarray) -> np.ndarray:
    """R's p.adjust(method = "BH"), written independently: cumulative minimum from the largest p down."""
    m = p.size
    order = np.argsort(-p, kind="stable")
    ranks = np.arange(m, 0, -1)
    q = np.minimum.accumulate(m / ranks * p[order])
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def test_hand_example():
    # m = 5; sorted p 0.01, 0.02, 0.03, 0.04, 0.05 all adjust to 0.05; 0.6 stays 0.6 (rank 6 of 6).
    p = pl.Series("p", [0.03, 0.01, 0.6, 0.05, 0.02, 0.04])
    q = benjamini_hochberg(p)
    assert q.name == "p"
    assert q.to_list() == pytest.approx([0.06, 0.06, 0.6, 0.06, 0.06, 0.06])


def test_second_hand_example_with_ties():
    # p = (0.01, 0.01, 0.04): m/rank * p = 0.015 (rank 2 for both ties), 0.04 -> q = 0.015, 0.015, 0.04.
    assert benjamini_hochberg(pl.Series([0.01, 0.01, 0.04])).to_list() == pytest.approx([0.015, 0.015, 0.04])


def test_capped_at_one():
    assert benjamini_hochberg(pl.Series([0.9, 0.8])).to_list() == pytest.approx([0.9, 0.9])
    assert benjamini_hochberg(pl.Series([1.0, 1.0, 0.99])).max() <= 1.0


def test_expression_in_with_columns_with_nulls_and_groups():
    df = pl.DataFrame({
        "study": ["a", "a", "a", "b", "b"],
        "p_value": [0.02, None, 0.01, 0.04, 0.5],
    })
    out = df.with_columns(q=bh_expr("p_value"), q_study=bh_expr("p_value").over("study"))
    assert out["q"].to_list() == pytest.approx([0.04, None, 0.04, 0.04 * 4 / 3, 0.5])  # m = 4 non-null
    assert out["q_study"].to_list() == pytest.approx([0.02, None, 0.02, 0.08, 0.5])
    lazy = df.lazy().with_columns(q=benjamini_hochberg(pl.col("p_value"))).collect()
    assert lazy["q"].to_list() == out["q"].to_list()


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=60))
def test_matches_numpy_and_is_monotone(values):
    p = np.asarray(values)
    q = benjamini_hochberg(pl.Series(values)).to_numpy()
    np.testing.assert_allclose(q, numpy_bh(p), rtol=1e-12, atol=0)
    assert (q >= p - 1e-15).all() and (q <= 1).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(q[order]) >= 0).all()


def test_empty_series():
    assert benjamini_hochberg(pl.Series("p", [], dtype=pl.Float64)).to_list() == []


@pytest.mark.parametrize("bad", [[0.1, 1.2], [-0.1], [float("nan")]])
def test_series_values_must_be_probabilities(bad):
    with pytest.raises(RbqmError, match="benjamini_hochberg: p-values must lie in \\[0, 1\\]"):
        benjamini_hochberg(pl.Series(bad))


def test_rejects_other_types():
    message = "The 'p' parameter of benjamini_hochberg must be a polars Expr or Series"
    with pytest.raises(RbqmError, match=message):
        benjamini_hochberg([0.1, 0.2])
