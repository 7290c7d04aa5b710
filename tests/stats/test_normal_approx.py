"""normal_approx and normal_approx_bounds: reference check (double programmed), edge cases, properties."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings

from rbqm.errors import RbqmError
from rbqm.stats import normal_approx, normal_approx_bounds
from tests.stats.conftest import (
    PUBLISHED_MU, PUBLISHED_PHI, PUBLISHED_Z, REFERENCE_EVENTS, REFERENCE_SUBJECTS, binary_groups, frame,
    rate_groups,
)


def spiegelhalter(n: np.ndarray, d: np.ndarray, kind: str) -> tuple[float, float, np.ndarray]:
    """Independent double programming of reference section 3 in plain numpy."""
    with np.errstate(divide="ignore", invalid="ignore"):  # degenerate studies give NaN; callers skip them
        y = n / d
        mu = n.sum() / d.sum()
        v = mu * (1 - mu) if kind == "binary" else mu
        z0 = (y - mu) / np.sqrt(v / d)
        phi = np.mean(z0**2)
        return mu, phi, (y - mu) / np.sqrt(phi * v / d)


def half_up(value: float, places: str) -> float:
    return float(Decimal(repr(value)).quantize(Decimal(places), rounding=ROUND_HALF_UP))


@pytest.mark.parametrize("kind", ["binary", "rate"])
def test_reference_sites_match_double_programming(reference_sites, kind):
    mu, phi, z = spiegelhalter(REFERENCE_EVENTS, REFERENCE_SUBJECTS, kind)
    out = normal_approx(reference_sites, kind=kind)
    assert out["overall_metric"].to_list() == pytest.approx([mu] * 9, abs=1e-12)
    assert out["factor"].to_list() == pytest.approx([phi] * 9, rel=1e-12)
    np.testing.assert_allclose(out["score"].to_numpy(), z, rtol=0, atol=1e-9)
    np.testing.assert_allclose(out["metric"].to_numpy(), REFERENCE_EVENTS / REFERENCE_SUBJECTS, atol=1e-15)


def test_reference_sites_exact_values(reference_sites):
    out = normal_approx(reference_sites, kind="binary")
    assert out["overall_metric"][0] == pytest.approx(212 / 300, abs=1e-15)
    assert out["factor"][0] == pytest.approx(3.0498122150374325, abs=1e-9)
    expected = [1.649878084066808, -1.2196690714371952, -0.09642330643510384, -0.9887135769156699,
                -1.6448118320284102, 0.6477934471243961, 0.768921805906058, 0.26830833094985423,
                -0.12322846960592677]
    np.testing.assert_allclose(out["score"].to_numpy(), expected, rtol=0, atol=1e-9)


def test_reference_sites_match_published_rounding(reference_sites):
    out = normal_approx(reference_sites, kind="binary")
    assert round(out["overall_metric"][0], 4) == PUBLISHED_MU
    assert round(out["factor"][0], 2) == PUBLISHED_PHI
    z = out["score"].to_list()
    # Eight sites round to the published value directly. Site 5 is -1.64481: the published -1.65 is
    # the double rounding -1.64481 -> -1.645 -> -1.65, which reproduces all nine published values.
    others = [i for i in range(9) if i != 4]
    assert [round(z[i], 2) for i in others] == [PUBLISHED_Z[i] for i in others]
    assert round(z[4], 2) == -1.64
    assert [half_up(half_up(v, "0.001"), "0.01") for v in z] == PUBLISHED_Z


def test_equivalent_form_and_unit_mean_square(reference_sites):
    out = normal_approx(reference_sites, kind="binary")
    y, d = REFERENCE_EVENTS / REFERENCE_SUBJECTS, REFERENCE_SUBJECTS
    mu = REFERENCE_EVENTS.sum() / d.sum()
    equivalent = (y - mu) * np.sqrt(d) / np.sqrt(np.mean(d * (y - mu) ** 2))
    np.testing.assert_allclose(out["score"].to_numpy(), equivalent, atol=1e-12)
    assert np.mean(out["score"].to_numpy() ** 2) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("numerators", "denominators", "kind"),
    [
        ([0, 0, 0], [10, 20, 5], "binary"),  # mu = 0
        ([0, 0, 0], [10.0, 20.0, 5.0], "rate"),  # mu = 0
        ([10, 20, 5], [10, 20, 5], "binary"),  # mu = 1
        ([2, 4, 1], [10, 20, 5], "binary"),  # every group at mu: phi = 0
        ([2, 4, 1], [10, 20, 5], "rate"),  # phi = 0
    ],
)
def test_degenerate_studies_score_zero(numerators, denominators, kind):
    out = normal_approx(frame(numerators, denominators), kind=kind)
    assert out["score"].to_list() == [0.0, 0.0, 0.0]
    assert out["factor"][0] == 0.0


def test_unscorable_rows_are_null_and_excluded_from_mu_and_phi():
    with_blanks = frame([3, 0, 5, 2, None], [10, 0, 12, None, 8])
    out = normal_approx(with_blanks, kind="binary")
    assert out["metric"].to_list()[1:4] == [None, pytest.approx(5 / 12), None]
    assert out["metric"][4] is None
    assert out["score"].is_null().to_list() == [False, True, False, True, True]
    alone = normal_approx(frame([3, 5], [10, 12]), kind="binary")
    assert out["score"].drop_nulls().to_list() == alone["score"].to_list()
    assert out["factor"][0] == alone["factor"][0]


def test_no_scorable_group_gives_null_statistics():
    out = normal_approx(frame([0, 1], [0, None]), kind="rate")
    assert out["overall_metric"].to_list() == [None, None]
    assert out["score"].to_list() == [None, None]


@settings(max_examples=150, deadline=None, database=None)
@given(binary_groups(min_size=2))
def test_mean_square_score_is_one_binary(groups):
    out = normal_approx(frame(*groups), kind="binary")
    if out["factor"][0] > 0:
        assert np.mean(out["score"].to_numpy() ** 2) == pytest.approx(1.0, abs=1e-9)
    else:
        assert (out["score"] == 0).all()


@settings(max_examples=150, deadline=None, database=None)
@given(rate_groups(min_size=2))
def test_mean_square_score_is_one_rate(groups):
    out = normal_approx(frame(*groups), kind="rate")
    if out["factor"][0] > 0:
        assert np.mean(out["score"].to_numpy() ** 2) == pytest.approx(1.0, abs=1e-9)


@settings(max_examples=100, deadline=None, database=None)
@given(binary_groups(min_size=2, max_size=15))
def test_scores_match_double_programming(groups):
    n, d = (np.asarray(v, dtype=float) for v in groups)
    out = normal_approx(frame(*groups), kind="binary")
    mu, phi, z = spiegelhalter(n, d, "binary")
    if 0 < mu < 1 and phi > 0:
        np.testing.assert_allclose(out["score"].to_numpy(), z, atol=1e-9)


def test_bounds_follow_the_formula(reference_sites):
    mu, phi, _ = spiegelhalter(REFERENCE_EVENTS, REFERENCE_SUBJECTS, "binary")
    bounds = normal_approx_bounds(reference_sites, kind="binary")
    assert bounds.columns == ["denominator", "threshold", "numerator", "metric"]
    assert all(dtype == pl.Float64 for dtype in bounds.dtypes)
    grid = np.linspace(6, 46, 250)
    for t in (-3, -2, 2, 3):
        limit = mu + t * np.sqrt(phi * mu * (1 - mu) / grid)
        kept = limit * grid >= 0
        part = bounds.filter(pl.col("threshold") == t)
        np.testing.assert_allclose(part["denominator"].to_numpy(), grid[kept], atol=1e-12)
        np.testing.assert_allclose(part["metric"].to_numpy(), limit[kept], atol=1e-12)
        np.testing.assert_allclose(part["numerator"].to_numpy(), (limit * grid)[kept], atol=1e-9)
    assert bounds["threshold"].unique(maintain_order=True).to_list() == [-3.0, -2.0, 2.0, 3.0]
    assert (bounds["numerator"] >= 0).all()
    # The -3 limit is negative at the smallest denominators: those points are dropped.
    assert bounds.filter(pl.col("threshold") == -3).height < 250
    # As in gsm, binary limits above 1 are kept.
    assert bounds.filter(pl.col("threshold") == 3)["metric"].max() > 1


def test_bounds_rate_steps_and_kind():
    groups = frame([5, 20, 40], [100.0, 300.0, 500.0])
    out = normal_approx_bounds(groups.lazy(), kind="rate", thresholds=[0], steps=5)
    assert isinstance(out, pl.LazyFrame)
    got = out.collect()
    assert got["denominator"].to_list() == [100.0, 200.0, 300.0, 400.0, 500.0]
    assert got["metric"].to_list() == pytest.approx([65 / 900] * 5)


def test_bounds_with_equal_denominators_and_without_groups():
    same = normal_approx_bounds(frame([1, 3], [10, 10]), kind="binary", thresholds=[-1, 1])
    assert same["denominator"].to_list() == [10.0, 10.0]
    empty = normal_approx_bounds(frame([0], [0]), kind="binary")
    assert empty.height == 0 and empty.columns == ["denominator", "threshold", "numerator", "metric"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "proportion"}, "The 'kind' parameter of normal_approx_bounds must be one of"),
        ({"kind": "binary", "thresholds": [2, -2]}, "The 'thresholds' parameter of normal_approx_bounds"),
        ({"kind": "binary", "thresholds": []}, "non-empty"),
        ({"kind": "binary", "steps": 1}, "The 'steps' parameter of normal_approx_bounds"),
        ({"kind": "binary", "steps": 2.5}, "must be an integer"),
    ],
)
def test_bounds_parameter_errors(reference_sites, kwargs, message):
    with pytest.raises(RbqmError, match=message):
        normal_approx_bounds(reference_sites, **kwargs)


def test_kind_error_names_choices(reference_sites):
    with pytest.raises(RbqmError) as info:
        normal_approx(reference_sites, kind="Binary")
    assert str(info.value) == (
        "The 'kind' parameter of normal_approx must be one of {'binary', 'rate'}; got 'Binary' instead."
    )
