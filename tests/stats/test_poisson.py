"""poisson and poisson_bounds: closed form, free-slope fit against scipy, deviance, Lambert W bounds."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from scipy import optimize, stats
from scipy.special import xlogy

from rbqm.errors import RbqmError
from rbqm.stats import poisson, poisson_bounds
from rbqm.stats._poisson import deviance_residual, invert_deviance_residual
from tests.stats.conftest import REFERENCE_EVENTS, REFERENCE_SUBJECTS, frame, rate_groups

# Counts and exposures with extra-Poisson variation and a non-proportional exposure effect.
COUNTS = np.array([3, 12, 0, 25, 7, 40, 15, 1, 9, 30], dtype=float)
EXPOSURE = np.array([150.0, 420.0, 60.0, 900.0, 310.0, 2000.0, 480.0, 90.0, 350.0, 1200.0])


def naive_residual(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The textbook formula, written independently of the module."""
    return np.sign(y - m) * np.sqrt(np.maximum(2 * (xlogy(y, y / m) - (y - m)), 0))


def scipy_free_slope(y: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(b0, b1) solving the Poisson score equations with scipy's root finder."""
    design = np.column_stack([np.ones_like(d), np.log(d)])
    start = [np.log(y.sum() / d.sum()), 1.0]
    sol = optimize.root(lambda b: design.T @ (y - np.exp(design @ b)), start, method="hybr", tol=1e-14)
    assert np.max(np.abs(sol.fun)) < 1e-9  # converged (success may be False only for the tiny xtol)
    return sol.x


def test_offset_model_closed_form():
    out = poisson(frame(COUNTS.tolist(), EXPOSURE.tolist()))
    expected = EXPOSURE * COUNTS.sum() / EXPOSURE.sum()
    np.testing.assert_allclose(out["expected"].to_numpy(), expected, rtol=1e-13)
    np.testing.assert_allclose(out["score"].to_numpy(), naive_residual(COUNTS, expected), atol=1e-12)
    assert {"intercept", "slope"}.isdisjoint(out.columns)


@pytest.mark.parametrize(
    ("counts", "exposure"),
    [(COUNTS, EXPOSURE), (REFERENCE_EVENTS, REFERENCE_SUBJECTS)],
    ids=["overdispersed", "reference-sites"],
)
def test_free_slope_matches_scipy(counts, exposure):
    out = poisson(frame(counts.tolist(), exposure.tolist()), offset=False)
    b0, b1 = scipy_free_slope(counts, exposure)
    assert out["intercept"][0] == pytest.approx(b0, abs=1e-8)
    assert out["slope"][0] == pytest.approx(b1, abs=1e-8)
    np.testing.assert_allclose(out["expected"].to_numpy(), np.exp(b0 + b1 * np.log(exposure)), rtol=1e-8)


def test_free_slope_on_reference_sites():
    out = poisson(frame(REFERENCE_EVENTS.tolist(), REFERENCE_SUBJECTS.tolist()), offset=False)
    assert out["slope"][0] == pytest.approx(1.131609, abs=1e-6)
    assert out["intercept"][0] == pytest.approx(-0.745290, abs=1e-6)


@pytest.mark.parametrize("offset", [True, False])
def test_squared_residuals_sum_to_model_deviance(offset):
    out = poisson(frame(COUNTS.tolist(), EXPOSURE.tolist()), offset=offset)
    m = out["expected"].to_numpy()
    deviance = 2 * np.sum(stats.poisson.logpmf(COUNTS, COUNTS) - stats.poisson.logpmf(COUNTS, m))
    assert np.sum(out["score"].to_numpy() ** 2) == pytest.approx(deviance, rel=1e-12)


def test_zero_count_residual():
    out = poisson(frame([0, 10], [100.0, 100.0]))
    assert out["score"][0] == pytest.approx(-np.sqrt(2 * 5.0), rel=1e-14)


def test_no_events_anywhere():
    for offset in (True, False):
        out = poisson(frame([0, 0, 0], [10.0, 20.0, 30.0]), offset=offset)
        assert out["expected"].to_list() == [0.0, 0.0, 0.0]
        assert out["score"].to_list() == [0.0, 0.0, 0.0]
    free = poisson(frame([0, 0], [10.0, 20.0]), offset=False)
    assert free["intercept"].to_list() == [None, None] and free["slope"].to_list() == [None, None]


def test_free_slope_unidentified_when_denominators_equal():
    out = poisson(frame([2, 6, 4], [50.0, 50.0, 50.0]), offset=False)
    assert out["slope"].to_list() == [None] * 3
    assert out["expected"].to_list() == pytest.approx([4.0] * 3)
    assert out["intercept"][0] == pytest.approx(np.log(4.0))


def test_unscorable_rows_do_not_enter_the_fit():
    out = poisson(frame([3, 9, 5], [100.0, 0.0, 200.0]))
    assert out["expected"].to_list() == [pytest.approx(8 / 3), None, pytest.approx(16 / 3)]
    assert out["score"][1] is None and out["metric"][1] is None


@settings(max_examples=100, deadline=None, database=None)
@given(rate_groups(min_size=1))
def test_offset_expected_counts_sum_to_observed_total(groups):
    out = poisson(frame(*groups))
    assert out["expected"].sum() == pytest.approx(sum(groups[0]), rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None, database=None)
@given(rate_groups(min_size=3, max_size=20))
def test_free_slope_solves_the_score_equations(groups):
    counts, exposure = (np.asarray(v, dtype=float) for v in groups)
    out = poisson(frame(*groups), offset=False)
    if counts.sum() == 0 or np.ptp(np.log(exposure)) == 0:
        return
    m = out["expected"].to_numpy()
    assert m.sum() == pytest.approx(counts.sum(), rel=1e-8)
    scale = np.sum(np.abs(counts * np.log(exposure))) + 1
    assert abs(np.sum((counts - m) * np.log(exposure))) <= 1e-8 * scale


@pytest.mark.parametrize("t", [-7, -5, -3, -2, -1, 1, 2, 3, 5, 7])
def test_lambert_w_bound_round_trip(t):
    m = np.geomspace(0.01, 1e5, 500)
    y = invert_deviance_residual(m, t)
    defined = np.isfinite(y)
    if t < 0:  # a low limit exists only while 2 m >= t^2
        assert not defined[m < t * t / 2 * 0.999].any() and defined[m > t * t / 2 * 1.001].all()
        assert (y[defined] <= m[defined]).all()
    else:
        assert defined.all() and (y >= m).all()
    assert np.max(np.abs(naive_residual(y[defined], m[defined]) - t)) < 1e-9


@pytest.mark.parametrize("t", [-7, -0.5, -1e-3, 1e-3, 0.5, 7])
def test_lambert_w_round_trip_over_a_wide_range(t):
    m = np.geomspace(1e-3, 1e9, 400)
    y = invert_deviance_residual(m, t)
    defined = np.isfinite(y)
    assert np.max(np.abs(deviance_residual(y[defined], m[defined]) - t)) < 1e-9


def test_bounds_frame_and_round_trip():
    groups = frame(COUNTS.tolist(), EXPOSURE.tolist())
    bounds = poisson_bounds(groups)
    assert bounds.columns == ["denominator", "threshold", "numerator", "metric"]
    assert bounds["threshold"].unique(maintain_order=True).to_list() == [-7.0, -5.0, 5.0, 7.0]
    grid = np.geomspace(EXPOSURE.min(), EXPOSURE.max(), 250)
    upper = bounds.filter(pl.col("threshold") == 5)
    np.testing.assert_allclose(upper["denominator"].to_numpy(), grid, rtol=1e-12)
    rate = COUNTS.sum() / EXPOSURE.sum()
    for t, part in bounds.group_by("threshold"):
        m = part["denominator"].to_numpy() * rate
        np.testing.assert_allclose(naive_residual(part["numerator"].to_numpy(), m), t[0], atol=1e-9)
    np.testing.assert_allclose(bounds["metric"], bounds["numerator"] / bounds["denominator"])
    lower = bounds.filter(pl.col("threshold") == -7)
    assert (lower["denominator"] * rate >= 49 / 2 - 1e-9).all()  # dropped where 2 m < t^2


def test_bounds_free_slope_and_centre_line():
    groups = frame(COUNTS.tolist(), EXPOSURE.tolist())
    b0, b1 = scipy_free_slope(COUNTS, EXPOSURE)
    centre = poisson_bounds(groups.lazy(), offset=False, thresholds=[0], steps=10)
    assert isinstance(centre, pl.LazyFrame)
    centre = centre.collect()
    fitted = np.exp(b0 + b1 * np.log(centre["denominator"]))
    np.testing.assert_allclose(centre["numerator"], fitted, rtol=1e-8)


def test_bounds_without_events_keep_only_the_centre_line():
    bounds = poisson_bounds(frame([0, 0], [10.0, 20.0]), thresholds=[-2, 0, 2], steps=3)
    assert bounds["threshold"].unique().to_list() == [0.0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: poisson(f, offset="yes"),
         "The 'offset' parameter of poisson must be one of {True, False}"),
        (lambda f: poisson_bounds(f, thresholds=[5, -5]), "The 'thresholds' parameter of poisson_bounds"),
        (lambda f: poisson_bounds(f, steps=0), "The 'steps' parameter of poisson_bounds"),
    ],
)
def test_parameter_errors(call, message):
    with pytest.raises(RbqmError, match=message):
        call(frame([1, 2], [10.0, 20.0]))
