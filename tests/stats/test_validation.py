"""Input validation shared by every scoring and bounds function: messages name the function and the group."""

from __future__ import annotations

from functools import partial

import polars as pl
import pytest

from rbqm.errors import RbqmError
from rbqm.stats import METHODS, normal_approx, normal_approx_bounds, overdispersed_exact_bounds, poisson_bounds
from tests.stats.conftest import frame

ALL = {
    **METHODS,
    "normal_approx_bounds": partial(normal_approx_bounds, kind="rate"),
    "poisson_bounds": poisson_bounds,
    "overdispersed_exact_bounds": partial(overdispersed_exact_bounds, kind="rate"),
}
CALLER = {
    "normal_approx_rate": "normal_approx", "normal_approx_binary": "normal_approx",
    "poisson": "poisson", "poisson_free_slope": "poisson", "fisher": "fisher",
    "identity": "identity", "identity_count": "identity",
    "exact_binomial": "exact_tail", "exact_poisson": "exact_tail",
    "empirical_bayes_binary": "empirical_bayes", "empirical_bayes_rate": "empirical_bayes",
    "normal_approx_bounds": "normal_approx_bounds", "poisson_bounds": "poisson_bounds",
    "negative_binomial": "overdispersed_exact", "beta_binomial": "overdispersed_exact",
    "overdispersed_exact_bounds": "overdispersed_exact_bounds",
}
BINARY = {"normal_approx_binary", "fisher", "exact_binomial", "empirical_bayes_binary", "beta_binomial"}


def test_every_function_has_a_caller_name():
    assert set(CALLER) == set(ALL)


@pytest.mark.parametrize("name", sorted(ALL))
def test_missing_columns_are_named(name):
    df = pl.DataFrame({"group_id": ["a"], "count": [1]})
    with pytest.raises(RbqmError) as info:
        ALL[name](df)
    assert str(info.value) == (
        f"{CALLER[name]}: the input frame is missing the required column(s) ['numerator', 'denominator']; "
        "it has ['group_id', 'count']."
    )


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize(
    ("numerators", "denominators", "message"),
    [
        ([1, -1, 2], [5, 5, 5],
         "numerator must be >= 0; first offending row 2: group_id='S007', numerator=-1"),
        ([1, 1, 2], [5, 5, -5], "denominator must be >= 0; first offending row 3: group_id='S014'"),
    ],
)
def test_negative_counts_name_the_group(name, numerators, denominators, message):
    with pytest.raises(RbqmError, match=f"^{CALLER[name]}: {message}"):
        ALL[name](frame(numerators, denominators))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_numerator_above_denominator(name):
    with pytest.raises(RbqmError, match="numerator must not exceed denominator for a binary metric; "
                                        "first offending row 2: group_id='S007', numerator=6, denominator=5"):
        ALL[name](frame([1, 6, 7], [5, 5, 5]))


@pytest.mark.parametrize("name", sorted(set(ALL) - BINARY - {"normal_approx_bounds"}))
def test_rates_may_exceed_one(name):
    out = ALL[name](frame([12, 3], [10, 10]))
    assert out.height >= 1


@pytest.mark.parametrize(
    ("df", "message"),
    [
        (frame([1, 2, 3], [5, 5, 5], ids=["a", "b", "a"]),
         "the frame must have one row per group, but this group_id repeats; "
         "first offending row 1: group_id='a'"),
        (frame([1, 2], [5, 5], ids=["a", None]), "group_id must not be null; first offending row 2"),
        (frame([1.0, float("nan")], [5, 5]), "numerator must be finite"),
        (frame([1, 2], [5.0, float("inf")]), "denominator must be finite"),
        (pl.DataFrame({"group_id": ["a"], "numerator": ["1"], "denominator": [5]}),
         "column 'numerator' must be numeric; got String instead"),
    ],
)
def test_frame_level_errors(df, message):
    with pytest.raises(RbqmError, match=f"^normal_approx: {message}"):
        normal_approx(df, kind="rate")


def test_not_a_frame():
    message = "normal_approx needs a polars DataFrame or LazyFrame; got dict instead"
    with pytest.raises(RbqmError, match=message):
        normal_approx({"group_id": [1]}, kind="rate")


def test_lazy_input_is_validated_on_entry():
    with pytest.raises(RbqmError, match="numerator must be >= 0"):
        normal_approx(frame([-1], [5]).lazy(), kind="rate")
