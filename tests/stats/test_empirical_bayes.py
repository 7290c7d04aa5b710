"""empirical_bayes: conjugate updates by hand, shrinkage, the fitted prior against a second optimiser."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from rbqm.errors import RbqmError
from rbqm.stats import empirical_bayes
from rbqm.stats._bayes import MAX_PRIOR_SIZE
from tests.stats.conftest import REFERENCE_EVENTS, REFERENCE_SUBJECTS, binary_groups, frame


def test_binary_conjugate_update_by_hand():
    # Uniform prior; groups (0 of 1) and (1 of 1), mu = 1/2. Posteriors Beta(1, 2) and Beta(2, 1):
    # means 1/3 and 2/3; P(p > 1/2) = (1 - 1/2)^2 = 1/4 and 1 - (1/2)^2 = 3/4.
    out = empirical_bayes(frame([0, 1], [1, 1]), kind="binary", prior=(1, 1))
    assert out["shrunk_metric"].to_list() == pytest.approx([1 / 3, 2 / 3], rel=1e-14)
    assert out["prob_above"].to_list() == pytest.approx([0.25, 0.75], rel=1e-12)
    assert out["score"].to_list() == out["prob_above"].to_list()
    assert out["prior_a"].to_list() == [1.0, 1.0] and out["prior_b"].to_list() == [1.0, 1.0]


def test_binary_fixed_prior_mean():
    # Beta(2, 8) prior, 3 events in 10: posterior Beta(5, 15), mean 1/4.
    out = empirical_bayes(frame([3, 7], [10, 10]), kind="binary", prior=(2, 8))
    assert out["shrunk_metric"][0] == pytest.approx(0.25, rel=1e-14)


def test_rate_conjugate_update_by_hand():
    # Gamma(1, 1) prior; (0 events, 1 day) and (2 events, 1 day), mu = 1. Posteriors Gamma(1, 2) and
    # Gamma(3, 2): means 1/2 and 3/2; P(lambda > 1) = e^-2 and e^-2 (1 + 2 + 2) = 5 e^-2.
    out = empirical_bayes(frame([0, 2], [1.0, 1.0]), kind="rate", prior=(1, 1))
    assert out["shrunk_metric"].to_list() == pytest.approx([0.5, 1.5], rel=1e-14)
    assert out["prob_above"].to_list() == pytest.approx([math.exp(-2), 5 * math.exp(-2)], rel=1e-12)


def independent_beta_binomial_fit(n: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    """Nelder-Mead on (log a, log b), a different parameterisation and optimiser."""
    def nll(p):
        a, b = np.exp(p)
        return -np.sum(betaln(n + a, d - n + b) - betaln(a, b))
    res = minimize(nll, [0.0, 0.0], method="Nelder-Mead",
                   options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 20000})
    return tuple(np.exp(res.x))


def independent_negative_binomial_fit(n: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    def nll(p):
        a, b = np.exp(p)
        return -np.sum(gammaln(n + a) - gammaln(a) + a * np.log(b) - (n + a) * np.log(b + d))
    res = minimize(nll, [0.0, np.log(d.mean())], method="Nelder-Mead",
                   options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 20000})
    return tuple(np.exp(res.x))


def test_fitted_beta_prior_matches_a_second_optimiser(reference_sites):
    out = empirical_bayes(reference_sites, kind="binary")
    a, b = independent_beta_binomial_fit(REFERENCE_EVENTS, REFERENCE_SUBJECTS)
    assert out["prior_a"][0] == pytest.approx(a, rel=1e-5)
    assert out["prior_b"][0] == pytest.approx(b, rel=1e-5)
    assert (out["prior_a"][0], out["prior_b"][0]) == pytest.approx((3.6122, 1.6430), abs=1e-4)


def test_fitted_gamma_prior_matches_a_second_optimiser():
    rng = np.random.default_rng(3)
    exposure = rng.uniform(100, 3000, 40)
    counts = rng.poisson(exposure * rng.gamma(4.0, 0.01 / 4.0, 40)).astype(float)
    out = empirical_bayes(frame(counts.tolist(), exposure.tolist()), kind="rate")
    a, b = independent_negative_binomial_fit(counts, exposure)
    assert out["prior_a"][0] == pytest.approx(a, rel=1e-4)
    assert out["prior_b"][0] == pytest.approx(b, rel=1e-4)


@pytest.mark.parametrize("kind", ["binary", "rate"])
def test_no_overdispersion_caps_the_prior_and_shrinks_to_the_study_rate(kind):
    out = empirical_bayes(frame([10, 10, 10, 10], [20, 20, 20, 20]), kind=kind)
    size = out["prior_a"][0] + out["prior_b"][0] if kind == "binary" else out["prior_a"][0]
    assert size == pytest.approx(MAX_PRIOR_SIZE, rel=1e-6)
    assert out["shrunk_metric"].to_list() == pytest.approx([0.5] * 4, abs=1e-4)


def test_small_groups_shrink_more():
    # Same raw rate 0.9 in a small and a large group, in a study around 0.5.
    out = empirical_bayes(frame([9, 90, 5, 50, 4, 40], [10, 100, 10, 100, 10, 100]), kind="binary")
    raw, shrunk = out["metric"].to_numpy(), out["shrunk_metric"].to_numpy()
    prior_mean = out["prior_a"][0] / (out["prior_a"][0] + out["prior_b"][0])
    pull_small = (raw[0] - shrunk[0]) / (raw[0] - prior_mean)
    pull_large = (raw[1] - shrunk[1]) / (raw[1] - prior_mean)
    assert 0 < pull_large < pull_small < 1


@settings(max_examples=60, deadline=None, database=None)
@given(binary_groups(min_size=2, max_size=20, max_denominator=200))
def test_posterior_mean_lies_between_raw_metric_and_prior_mean(groups):
    out = empirical_bayes(frame(*groups), kind="binary")
    if out["prior_a"][0] is None:  # study rate 0 or 1: nothing to estimate
        assert out["prob_above"].to_list() == [0.5] * out.height
        return
    prior_mean = out["prior_a"][0] / (out["prior_a"][0] + out["prior_b"][0])
    raw, shrunk = out["metric"].to_numpy(), out["shrunk_metric"].to_numpy()
    low, high = np.minimum(raw, prior_mean), np.maximum(raw, prior_mean)
    assert ((shrunk >= low - 1e-12) & (shrunk <= high + 1e-12)).all()
    p = out["prob_above"].to_numpy()
    assert ((p >= 0) & (p <= 1)).all()


def test_degenerate_study_rate():
    out = empirical_bayes(frame([0, 0, 0], [5, 8, 0]), kind="binary")
    assert out["prior_a"].to_list() == [None] * 3
    assert out["shrunk_metric"].to_list() == [0.0, 0.0, None]
    assert out["prob_above"].to_list() == [0.5, 0.5, None]


@pytest.mark.parametrize("prior", [(0, 1), (1, -2), (1,), "ab", (1, float("inf"))])
def test_prior_must_be_a_positive_pair(prior):
    with pytest.raises(RbqmError, match="The 'prior' parameter of empirical_bayes must be None or a pair"):
        empirical_bayes(frame([1, 2], [3, 4]), kind="binary", prior=prior)
