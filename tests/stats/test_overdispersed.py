"""overdispersed_exact: the score against scipy's distributions, the fitted mixing distribution against a
second optimiser, calibration against the normal approximation, and funnel limits that agree with the
scores."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.special import ndtri
from scipy.stats import betabinom, nbinom, poisson

from rbqm.errors import RbqmError
from rbqm.stats import normal_approx, overdispersed_exact, overdispersed_exact_bounds
from tests.stats.conftest import REFERENCE_EVENTS, REFERENCE_SUBJECTS, frame
from tests.stats.test_empirical_bayes import independent_beta_binomial_fit, independent_negative_binomial_fit


def test_binary_score_is_the_mid_p_of_the_fitted_beta_binomial():
    out = overdispersed_exact(frame(REFERENCE_EVENTS.astype(int).tolist(), REFERENCE_SUBJECTS.astype(int).tolist()),
                              kind="binary")
    a, b = out["prior_a"][0], out["prior_b"][0]
    n, d = REFERENCE_EVENTS, REFERENCE_SUBJECTS.astype(int)
    dist = betabinom(d, a, b)
    assert out["p_low"].to_numpy() == pytest.approx(dist.cdf(n), rel=1e-12)
    assert out["p_high"].to_numpy() == pytest.approx(dist.sf(n - 1), rel=1e-12)
    assert out["score"].to_numpy() == pytest.approx(ndtri(dist.cdf(n - 1) + dist.pmf(n) / 2), rel=1e-12)
    assert out["overall_metric"][0] == pytest.approx(n.sum() / d.sum(), rel=1e-15)
    # the mixing distribution is the maximum-likelihood one, found again by another optimiser
    assert (a, b) == pytest.approx(independent_beta_binomial_fit(n, d.astype(float)), rel=1e-4)


def test_rate_score_is_the_mid_p_of_the_fitted_negative_binomial():
    n = np.array([3, 0, 7, 12, 1, 4, 30, 2], dtype=float)
    d = np.array([400.0, 150.0, 900.0, 1100.0, 300.0, 500.0, 1200.0, 250.0])
    out = overdispersed_exact(frame(n.astype(int).tolist(), d.tolist()), kind="rate")
    a, b = out["prior_a"][0], out["prior_b"][0]
    dist = nbinom(a, b / (b + d))
    assert out["score"].to_numpy() == pytest.approx(ndtri(dist.cdf(n - 1) + dist.pmf(n) / 2), rel=1e-12)
    assert out["expected"].to_numpy() == pytest.approx(d * n.sum() / d.sum(), rel=1e-14)
    assert (a, b) == pytest.approx(independent_negative_binomial_fit(n, d), rel=1e-4)


def test_without_over_dispersion_it_is_the_exact_poisson_mid_p():
    # equal rates: the fitted gamma is as narrow as allowed, so the count is Poisson(D mu)
    out = overdispersed_exact(frame([5, 5, 5, 5], [100.0] * 4), kind="rate")
    by_hand = ndtri(poisson.cdf(4, 5) + poisson.pmf(5, 5) / 2)
    assert out["score"].to_list() == pytest.approx([by_hand] * 4, rel=1e-4)


def test_no_events_scores_zero_and_has_no_limits():
    sites = frame([0, 0, 0], [10, 20, 30])
    assert overdispersed_exact(sites, kind="binary")["score"].to_list() == [0.0, 0.0, 0.0]
    assert overdispersed_exact_bounds(sites, kind="binary").is_empty()


def test_groups_without_denominator_get_nulls():
    out = overdispersed_exact(frame([1, 0, 4], [10, 0, 12]), kind="binary")
    assert out["score"].is_null().to_list() == [False, True, False]


def test_a_count_must_be_whole():
    with pytest.raises(RbqmError, match="numerator must be a whole number.*group_id='b'"):
        overdispersed_exact(frame([1.0, 2.5], [10.0, 10.0], ids=["a", "b"]), kind="rate")


def test_small_counts_flag_about_as_often_as_the_z_threshold_says():
    """Beta-binomial sites (mean 4%, 25 subjects): the normal approximation flags the upper 2-sigma tail
    far more often than 2.3%; the over-dispersed exact score stays near it."""
    rng = np.random.default_rng(7)
    studies, sites, size = 300, 30, 25
    ours, normal = [], []
    for _ in range(studies):
        d = np.full(sites, size)
        n = rng.binomial(d, rng.beta(2.0, 48.0, sites))
        sites_frame = frame(n.tolist(), d.tolist())
        ours.append(overdispersed_exact(sites_frame, kind="binary")["score"].to_numpy() >= 2)
        normal.append(normal_approx(sites_frame, kind="binary")["score"].to_numpy() >= 2)
    share, share_normal = np.mean(ours), np.mean(normal)
    assert 0.012 <= share <= 0.03
    assert share_normal > 0.035 and abs(share - 0.02275) < abs(share_normal - 0.02275)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(0, 40), min_size=3, max_size=25), size=st.integers(40, 400),
       kind=st.sampled_from(["binary", "rate"]))
def test_a_site_is_beyond_the_limit_exactly_when_its_score_is(counts, size, kind):
    assume(sum(counts) > 0)  # no events: no limits (tested above)
    sites = frame(counts, [size] * len(counts))
    scores = overdispersed_exact(sites, kind=kind)["score"].to_numpy()
    limits = overdispersed_exact_bounds(sites, kind=kind, thresholds=(-2, 2, 3))
    for t in (-2.0, 2.0, 3.0):
        limit = limits.filter(pl.col("threshold") == t)["numerator"]
        count = np.asarray(counts)
        if t < 0:
            beyond = count < limit[0] if len(limit) else np.zeros(count.size, bool)
            assert (scores < t).tolist() == beyond.tolist()
        else:
            assert len(limit) == 1
            assert (scores >= t).tolist() == (count >= limit[0]).tolist()


def test_limits_over_a_range_of_denominators():
    sites = frame([2, 9, 5, 14, 1], [40, 120, 80, 150, 20])
    limits = overdispersed_exact_bounds(sites, kind="binary", thresholds=(0, 2), steps=7)
    assert limits.columns == ["denominator", "threshold", "numerator", "metric"]
    upper = limits.filter(pl.col("threshold") == 2)
    assert upper["denominator"].to_list() == [20.0, 42.0, 63.0, 85.0, 107.0, 128.0, 150.0]
    assert (upper["metric"].diff().drop_nulls() < 0).all()  # the funnel narrows
    centre = limits.filter(pl.col("threshold") == 0)
    assert (centre["metric"] < upper["metric"]).all()
