"""The frame-in, frame-out contract, checked on every entry of METHODS, and the public surface."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import rbqm.stats
from rbqm.stats import METHODS

REQUIRED_METHODS = {
    "normal_approx_rate", "normal_approx_binary", "poisson", "poisson_free_slope", "fisher", "identity",
    "exact_binomial", "exact_poisson", "empirical_bayes_binary", "empirical_bayes_rate",
}


@pytest.fixture
def groups() -> pl.DataFrame:
    """Unsorted ids, an extra column of each kind, one group with nothing at risk."""
    return pl.DataFrame({
        "group_id": ["S09", "S02", "S17", "S05", "S11", "S01", "S30"],
        "numerator": [12, 3, 0, 25, 7, 0, 14],
        "denominator": [40, 25, 10, 60, 33, 0, 41],
        "country": ["FR", "DE", "DE", "US", "FR", "US", "JP"],
        "kri_id": ["kri0006"] * 7,
        "weight": [1.5, 2.0, 0.5, 1.0, 1.0, 3.0, 2.5],
    })


def test_registry_names():
    assert REQUIRED_METHODS <= set(METHODS)
    assert all(callable(method) for method in METHODS.values())


def test_public_surface_is_consistent():
    for name in rbqm.stats.__all__:
        assert hasattr(rbqm.stats, name), name
    imported = {"annotations", "Any", "Callable", "partial"}
    public = [n for n in vars(rbqm.stats) if not n.startswith("_") and n not in imported]
    assert sorted(rbqm.stats.__all__) == sorted(public)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_contract(name, groups):
    before = groups.clone()
    out = METHODS[name](groups)
    assert isinstance(out, pl.DataFrame)
    assert out.height == groups.height
    assert out.columns[: len(groups.columns)] == groups.columns
    assert_frame_equal(out.select(groups.columns), groups)  # input columns and row order untouched
    assert {"metric", "score"} <= set(out.columns)
    assert out["metric"].dtype == pl.Float64 and out["score"].dtype == pl.Float64
    assert out["metric"][5] is None and out["score"][5] is None  # denominator 0
    assert out["score"].drop_nulls().len() == groups.height - 1
    assert_frame_equal(groups, before)  # input never modified


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_lazy_in_lazy_out(name, groups):
    lazy = METHODS[name](groups.lazy())
    assert isinstance(lazy, pl.LazyFrame)
    assert_frame_equal(lazy.collect(), METHODS[name](groups))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_on_an_empty_frame(name, groups):
    out = METHODS[name](groups.clear())
    assert out.height == 0 and {"metric", "score"} <= set(out.columns)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_existing_output_columns_are_replaced(name, groups):
    out = METHODS[name](groups.with_columns(score=pl.lit("stale"), metric=pl.lit(-1.0)))
    assert out["score"].dtype == pl.Float64 and out["metric"][0] == pytest.approx(12 / 40)
