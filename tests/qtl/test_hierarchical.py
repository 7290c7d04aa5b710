"""Hierarchical models over sites: Berry et al. (2011) example 2.7 (rbqm-reference section 4), an
independent brute-force integration of each model, and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.optimize import brentq

from rbqm.errors import RbqmError
from rbqm.qtl import PosteriorPredictive, beta_binomial_predictive, gamma_poisson_predictive

BERRY_SUBJECTS = [20, 10, 16, 19, 14, 46, 10, 9, 6]
BERRY_EVENTS = [20, 4, 11, 10, 5, 36, 9, 7, 4]


@pytest.fixture(scope="module")
def berry() -> PosteriorPredictive:
    return beta_binomial_predictive(BERRY_SUBJECTS, BERRY_EVENTS)


def test_berry_predictive_summaries(berry):
    """Published: mean 0.680, median 0.698, 5/10/20/80/95% = 0.365/0.447/0.538/0.834/0.932,
    P(0.5 <= p <= 0.75) = 0.465 -- each within 0.005."""
    assert berry.mean == pytest.approx(0.680, abs=0.005)
    assert berry.median == pytest.approx(0.698, abs=0.005)
    assert berry.quantile(0.10) == pytest.approx(0.447, abs=0.005)
    assert berry.quantile([0.05, 0.20, 0.80, 0.95]) == pytest.approx([0.365, 0.538, 0.834, 0.932], abs=0.005)
    assert berry.prob_between(0.5, 0.75) == pytest.approx(0.465, abs=0.005)
    assert berry.prob_above(0.75) == pytest.approx(1 - berry.cdf(0.75))


def test_berry_hyperparameter_means(berry):
    """Published to one decimal: E[a] = 5.9, E[b] = 2.8. The exact integrals are 5.921 and 2.783 (stable to
    4 digits over grids of 40 to 300 points and equal to the brute-force grid below), so they are checked
    at the published precision."""
    assert round(berry.a_mean, 1) == 5.9 and round(berry.b_mean, 1) == 2.8
    assert berry.a_mean == pytest.approx(5.921, abs=0.002) and berry.b_mean == pytest.approx(2.783, abs=0.002)


def _beta_binomial_by_brute_force(n, r, a_max=10.0, b_max=10.0, points=600):
    """Double programming: a plain midpoint grid on (a, b) itself and scipy's beta-binomial pmf."""
    a = (np.arange(points) + 0.5) * a_max / points
    b = (np.arange(points) + 0.5) * b_max / points
    a, b = np.meshgrid(a, b, indexing="ij")
    loglik = sum(stats.betabinom.logpmf(rk, nk, a, b) for nk, rk in zip(n, r))
    w = np.exp(loglik - loglik.max())
    w /= w.sum()
    cdf = lambda x: np.sum(w * stats.beta.cdf(x, a, b))  # noqa: E731
    median = brentq(lambda x: cdf(x) - 0.5, 1e-9, 1 - 1e-9)
    return np.sum(w * a / (a + b)), median, np.sum(w * a), np.sum(w * b), cdf(0.3)


@pytest.mark.parametrize(("n", "r"), [(BERRY_SUBJECTS, BERRY_EVENTS), ([40, 55, 60, 35], [3, 2, 8, 1]),
                                      ([12, 30], [0, 1])])
def test_beta_binomial_equals_brute_force(n, r):
    mean, median, a_mean, b_mean, cdf = _beta_binomial_by_brute_force(n, r)
    post = beta_binomial_predictive(n, r)
    assert post.mean == pytest.approx(mean, abs=1e-3)
    assert post.median == pytest.approx(median, abs=1e-3)
    assert (post.a_mean, post.b_mean) == pytest.approx((a_mean, b_mean), abs=0.01)
    assert post.cdf(0.3) == pytest.approx(cdf, abs=1e-3)


def _gamma_poisson_by_brute_force(exposure, events, a_max=10.0, mean_range=1000.0, points=700):
    """Double programming: a grid on (shape, log rate) -- the prior is flat there too, restricted to the
    mean's range -- with scipy's negative binomial pmf."""
    exposure, events = np.asarray(exposure, float), np.asarray(events)
    m0 = (events.sum() + 0.5) / exposure.sum()
    shape = (np.arange(points) + 0.5) * a_max / points
    log_rate = np.linspace(np.log(a_max / (m0 * mean_range)) - 1, np.log(1 / (m0 / mean_range)), 4 * points)
    shape, log_rate = np.meshgrid(shape, log_rate, indexing="ij")
    rate = np.exp(log_rate)
    inside = np.abs(np.log(shape / rate) - np.log(m0)) <= np.log(mean_range)
    loglik = sum(stats.nbinom.logpmf(k, shape, rate / (rate + e)) for e, k in zip(exposure, events))
    loglik = np.where(inside, loglik, -np.inf)
    w = np.exp(loglik - loglik.max())
    w /= w.sum()
    return np.sum(w * shape / rate), np.sum(w * shape), np.sum(w * stats.gamma.sf(m0, shape, scale=1 / rate))


def test_gamma_poisson_equals_brute_force():
    exposure, events = [1200.0, 800.0, 1500.0, 950.0, 400.0], [6, 3, 9, 4, 5]
    mean, a_mean, above = _gamma_poisson_by_brute_force(exposure, events)
    post = gamma_poisson_predictive(exposure, events)
    m0 = (sum(events) + 0.5) / sum(exposure)
    assert post.mean == pytest.approx(mean, rel=5e-3)
    assert post.a_mean == pytest.approx(a_mean, abs=0.02)
    assert post.prob_above(m0) == pytest.approx(above, abs=2e-3)


def test_study_rate_is_reproducible_and_centred():
    n, r = [120, 80, 200, 60], [12, 5, 25, 3]
    post = beta_binomial_predictive(n, r, 100, 100)
    draws = post.study_rate(seed=3)
    assert np.array_equal(draws, post.study_rate(seed=3))
    assert draws.mean() == pytest.approx(post.study_rate_mean(), abs=1e-3)
    assert post.study_rate_mean() == pytest.approx(sum(r) / sum(n), abs=0.005)
    pooled_sd = np.sqrt(0.1 * 0.9 / sum(n))
    assert draws.std() == pytest.approx(pooled_sd, rel=0.25)
    assert post.prob_study_rate_above(0.2) < 0.001 < 0.999 < post.prob_study_rate_above(0.05)


@st.composite
def binary_sites(draw, *, min_size: int = 1, max_size: int = 12):
    n = draw(st.lists(st.integers(1, 300), min_size=min_size, max_size=max_size))
    return n, [draw(st.integers(0, k)) for k in n]


@settings(max_examples=30, deadline=None)
@given(binary_sites())
def test_beta_binomial_predictive_properties(sites):
    """Quantiles increase with q; P(lo <= p <= hi) is the difference of the CDF; the predictive mean lies
    between the smallest and largest site rate, widened to 1/2 -- the centre towards which the symmetric
    U(0, 10) x U(0, 10) prior pulls. When the site rates straddle 1/2 (as Berry's do) that is the range of
    the site rates; in general it is not: sites 21/122 and 7/143 give a mean of 0.180 > 21/122 = 0.172."""
    n, r = map(np.asarray, sites)
    post = beta_binomial_predictive(n, r)
    qs = post.quantile([0.05, 0.25, 0.5, 0.75, 0.95])
    # non-decreasing: with all events (or none) the top (bottom) quantiles round to 1 (0) in floating point
    assert np.all(np.diff(qs) >= 0) and 0 <= qs[0] and qs[-1] <= 1
    interior = (qs > 0) & (qs < 1 - 1e-9)
    targets = np.array([0.05, 0.25, 0.5, 0.75, 0.95])[interior]
    assert [post.cdf(x) for x in qs[interior]] == pytest.approx(targets, abs=1e-6)
    rates = r / n
    assert min(rates.min(), 0.5) - 1e-9 <= post.mean <= max(rates.max(), 0.5) + 1e-9
    assert 0 < post.a_mean < 10 and 0 < post.b_mean < 10


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(1.0, 5000.0), min_size=1, max_size=10).flatmap(
    lambda e: st.tuples(st.just(e), st.lists(st.integers(0, 300), min_size=len(e), max_size=len(e)))))
def test_gamma_poisson_predictive_properties(sites):
    exposure, events = sites
    post = gamma_poisson_predictive(exposure, events)
    qs = post.quantile([0.05, 0.25, 0.5, 0.75, 0.95])
    assert np.all(np.diff(qs) > 0) and qs[0] > 0
    assert post.prob_between(qs[0], qs[4]) == pytest.approx(0.9, abs=1e-6)
    theta = post.study_rate(draws=2000)
    assert np.all(theta > 0)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: beta_binomial_predictive([10, 5], [11, 0]), "events must not exceed subjects"),
    (lambda: beta_binomial_predictive([10, 5], [1]), "one value per site"),
    (lambda: beta_binomial_predictive([10.5], [1]), "'subjects' parameter .* whole numbers"),
    (lambda: beta_binomial_predictive([0, 0], [0, 0]), "> 0 at one site"),
    (lambda: beta_binomial_predictive([10], [-1]), "finite numbers >= 0"),
    (lambda: beta_binomial_predictive([10], [1], a_max=0), "'a_max' parameter"),
    (lambda: gamma_poisson_predictive([0.0, 10.0], [2, 1]), "needs exposure > 0"),
    (lambda: gamma_poisson_predictive([10.0], [1.5]), "'events' parameter .* whole numbers"),
    (lambda: gamma_poisson_predictive([10.0], [1], mean_range=1), "'mean_range' parameter"),
])
def test_bad_input_names_the_parameter(call, message):
    with pytest.raises(RbqmError, match=message):
        call()
