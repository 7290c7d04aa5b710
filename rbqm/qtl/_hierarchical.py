"""Bayesian hierarchical models over sites, integrated on a grid (no MCMC).

Beta-binomial (Berry et al. 2011, example 2.7) for proportions and gamma-Poisson for rates. The
hyper-parameters are integrated numerically: the posterior of the two hyper-parameters is evaluated
on a rectangular grid of cell midpoints from the closed-form marginal likelihood of the site counts
(beta-binomial or negative binomial), after zooming the grid onto the region holding the posterior
mass. The predictive distribution of a new site's rate is then a finite mixture of beta (or gamma)
distributions, one per grid cell, weighted by the cell's posterior mass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
from scipy.optimize import brentq
from scipy.special import betainc, gammainc, gammaln

from rbqm.errors import RbqmError
from rbqm.qtl._input import vector
from rbqm.stats._frame import check_number

__all__ = ["PosteriorPredictive", "beta_binomial_predictive", "gamma_poisson_predictive"]

#: Grid cells whose log posterior is this far below the largest are left out when zooming (e^-36 ~ 2e-16).
_LOG_CUTOFF = 36.0
_ZOOM_POINTS = 50    # points per axis while locating the posterior mass
_ZOOM_ROUNDS = 4


def _as_array(values: object, name: str, caller: str) -> np.ndarray:
    out = vector(values, name, caller, what="value per site")
    bad = np.flatnonzero(~np.isfinite(out) | (out < 0))
    if bad.size:
        raise RbqmError(f"The {name!r} parameter of {caller} must hold finite numbers >= 0; "
                        f"got {out[bad[0]]!r} at site {bad[0] + 1} instead.")
    return out


def _site_counts(sizes: object, events: object, size_name: str, caller: str, *, binary: bool,
                 ) -> tuple[np.ndarray, np.ndarray]:
    size = _as_array(sizes, size_name, caller)
    r = _as_array(events, "events", caller)
    if size.size != r.size:
        raise RbqmError(f"The {size_name!r} and 'events' parameters of {caller} must have one value per site; "
                        f"got {size.size} and {r.size} values instead.")
    whole = [("events", r)] + ([(size_name, size)] if binary else [])
    for name, values in whole:
        bad = np.flatnonzero(values % 1 != 0)
        if bad.size:
            raise RbqmError(f"The {name!r} parameter of {caller} must hold whole numbers; "
                            f"got {values[bad[0]]!r} at site {bad[0] + 1} instead.")
    bad = np.flatnonzero(r > size) if binary else np.flatnonzero((size == 0) & (r > 0))
    if bad.size:
        what = "events must not exceed subjects" if binary else "a site with events needs exposure > 0"
        raise RbqmError(f"{caller}: {what}; got events={r[bad[0]]!r}, {size_name}={size[bad[0]]!r} "
                        f"at site {bad[0] + 1}.")
    if not (size > 0).any():
        raise RbqmError(f"The {size_name!r} parameter of {caller} must be > 0 at one site at least; "
                        f"got {size.tolist()!r} instead.")
    return size, r


def _midpoints(low: float, high: float, points: int) -> np.ndarray:
    return low + (np.arange(points) + 0.5) * (high - low) / points


def _grid_posterior(log_post: Callable[[np.ndarray, np.ndarray], np.ndarray],
                    box: tuple[float, float, float, float], points: int,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell midpoints (x, y) and normalised posterior masses of a 2-D posterior on ``box``.

    ``log_post(x[:, None], y[None, :])`` is the log density (up to a constant) with respect to dx dy,
    the prior included. The box first shrinks to the cells within ``_LOG_CUTOFF`` of the largest log
    density (plus one cell each side), as long as that halves its area; the final grid has ``points``
    midpoints per axis, so its cells are equal and the mass of a cell is proportional to its density.
    """
    x0, x1, y0, y1 = box
    for _ in range(_ZOOM_ROUNDS):
        xs, ys = _midpoints(x0, x1, _ZOOM_POINTS), _midpoints(y0, y1, _ZOOM_POINTS)
        keep = log_post(xs[:, None], ys[None, :])
        keep = keep >= np.max(keep) - _LOG_CUTOFF
        i, j = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
        dx, dy = (x1 - x0) / _ZOOM_POINTS, (y1 - y0) / _ZOOM_POINTS
        zoomed = (max(x0, x0 + (i[0] - 1) * dx), min(x1, x0 + (i[-1] + 2) * dx),
                  max(y0, y0 + (j[0] - 1) * dy), min(y1, y0 + (j[-1] + 2) * dy))
        shrunk = (zoomed[1] - zoomed[0]) * (zoomed[3] - zoomed[2]) < 0.5 * (x1 - x0) * (y1 - y0)
        x0, x1, y0, y1 = zoomed
        if not shrunk:
            break
    xs, ys = _midpoints(x0, x1, points), _midpoints(y0, y1, points)
    lp = log_post(xs[:, None], ys[None, :])
    weight = np.exp(lp - np.max(lp))
    weight /= weight.sum()
    x, y = np.broadcast_to(xs[:, None], lp.shape).ravel(), np.broadcast_to(ys[None, :], lp.shape).ravel()
    keep = weight.ravel() > 1e-13  # cells that cannot move any summary
    return x[keep], y[keep], weight.ravel()[keep] / weight.ravel()[keep].sum()


def _rising_factorial_log(base: np.ndarray, values: np.ndarray) -> np.ndarray:
    """sum_k [lgamma(base + v_k) - lgamma(base)] over the values, grouped by distinct value."""
    distinct, counts = np.unique(values[values > 0], return_counts=True)
    out = np.zeros(np.shape(base))
    log_base = gammaln(base)
    for v, c in zip(distinct, counts):
        out += c * (gammaln(base + v) - log_base)
    return out


@dataclass(frozen=True, eq=False, repr=False)
class PosteriorPredictive:
    """Posterior of a hierarchical model over sites, from :func:`beta_binomial_predictive` or
    :func:`gamma_poisson_predictive`.

    Site rates follow ``Beta(a, b)`` (family ``"beta"``) or ``Gamma(shape a, rate b)`` (family
    ``"gamma"``). The posterior of ``(a, b)`` is held as grid points with masses; the *predictive*
    rate of a new site is the mixture of ``Beta(a, b)`` (or ``Gamma(a, b)``) over them, and the
    *study rate* is the size-weighted mean of the true rates of the study's own sites.

    Attributes
    ----------
    family
        ``"beta"`` (proportions) or ``"gamma"`` (rates per unit of exposure).
    mean, median
        Mean and median of the predictive rate of a new site.
    a_mean, b_mean
        Posterior means of ``a`` and ``b``.
    a, b, weight
        The posterior grid: values of ``a`` and ``b`` and their posterior masses (summing to 1).
    sizes, events
        The sites' subjects (or exposure) and events the model was fitted to.
    """

    family: Literal["beta", "gamma"]
    a: np.ndarray = field(repr=False)
    b: np.ndarray = field(repr=False)
    weight: np.ndarray = field(repr=False)
    sizes: np.ndarray = field(repr=False)
    events: np.ndarray = field(repr=False)
    mean: float = field(init=False)
    median: float = field(init=False)
    a_mean: float = field(init=False)
    b_mean: float = field(init=False)

    def __post_init__(self) -> None:
        w = self.weight
        mean = np.sum(w * self.a / (self.a + self.b)) if self.family == "beta" else np.sum(w * self.a / self.b)
        object.__setattr__(self, "mean", float(mean))
        object.__setattr__(self, "a_mean", float(np.sum(w * self.a)))
        object.__setattr__(self, "b_mean", float(np.sum(w * self.b)))
        object.__setattr__(self, "median", self.quantile(0.5))

    def __repr__(self) -> str:
        return (f"PosteriorPredictive(family={self.family!r}, mean={self.mean:.4g}, median={self.median:.4g}, "
                f"a_mean={self.a_mean:.4g}, b_mean={self.b_mean:.4g})")

    def cdf(self, x: float) -> float:
        """P(rate of a new site <= x)."""
        x = float(x)
        if x <= 0:
            return 0.0
        if self.family == "beta":
            return 1.0 if x >= 1 else float(np.sum(self.weight * betainc(self.a, self.b, x)))
        return float(np.sum(self.weight * gammainc(self.a, self.b * x)))

    def quantile(self, q: float | Sequence[float]) -> float | np.ndarray:
        """The ``q`` quantile(s) of the predictive rate of a new site (``q`` in (0, 1))."""
        qs = np.atleast_1d(np.asarray(q, dtype=float))
        if qs.ndim != 1 or not np.all((qs > 0) & (qs < 1)):
            raise RbqmError(f"The 'q' parameter of PosteriorPredictive.quantile must be in (0, 1); "
                            f"got {q!r} instead.")
        # solve on log x: tiny quantiles (a mixture with shapes near 0 piles mass at 0) keep their precision
        high = 0.0
        if self.family == "gamma":
            high = float(np.log(2 * self.mean))
            while self.cdf(np.exp(high)) < qs.max() and high < 700:
                high += 1.0
        low = -700.0  # exp(-700) ~ 1e-304
        out = np.array([
            np.exp(brentq(lambda t, p=p: self.cdf(np.exp(t)) - p, low, high, xtol=1e-12, maxiter=500))
            if self.cdf(np.exp(low)) < p else 0.0
            for p in qs
        ])
        return float(out[0]) if np.ndim(q) == 0 else out

    def prob_between(self, lo: float, hi: float) -> float:
        """P(lo <= rate of a new site <= hi)."""
        return max(0.0, self.cdf(hi) - self.cdf(lo))

    def prob_above(self, limit: float) -> float:
        """P(rate of a new site > limit)."""
        return 1.0 - self.cdf(limit)

    def study_rate(self, *, draws: int = 20_000, seed: int = 0) -> np.ndarray:
        """Posterior draws of the study rate: sum_k size_k rate_k / sum_k size_k over the study's sites.

        Draws ``(a, b)`` from the grid posterior, then each site's rate from its conjugate posterior
        (``Beta(a + r_k, b + n_k - r_k)`` or ``Gamma(a + r_k, b + E_k)``). Reproducible for a given seed.
        """
        check_number(draws, "draws", "PosteriorPredictive.study_rate", low=1, integer=True)
        rng = np.random.default_rng(seed)
        pick = rng.choice(self.weight.size, size=draws, p=self.weight)
        used = self.sizes > 0
        size, r = self.sizes[used], self.events[used]
        out = np.empty(draws)
        step = max(1, 2_000_000 // size.size)  # draws x sites per block: bounded memory for large studies
        for start in range(0, draws, step):
            a, b = self.a[pick[start:start + step], None], self.b[pick[start:start + step], None]
            rates = rng.beta(a + r, b + size - r) if self.family == "beta" else rng.gamma(a + r, 1.0 / (b + size))
            out[start:start + step] = rates @ size / size.sum()
        return out

    def study_rate_mean(self) -> float:
        """Posterior mean of the study rate (exact over the grid; see :meth:`study_rate`)."""
        used = self.sizes > 0
        size, r = self.sizes[used], self.events[used]
        a, b = self.a[:, None], self.b[:, None]
        site_means = (a + r) / (a + b + size) if self.family == "beta" else (a + r) / (b + size)
        return float(self.weight @ (site_means @ size) / size.sum())

    def prob_study_rate_above(self, limit: float, *, draws: int = 20_000, seed: int = 0) -> float:
        """Posterior probability that the study rate (see :meth:`study_rate`) exceeds ``limit``."""
        return float(np.mean(self.study_rate(draws=draws, seed=seed) > limit))


def beta_binomial_predictive(subjects: Sequence[float] | np.ndarray | pl.Series,
                             events: Sequence[float] | np.ndarray | pl.Series,
                             a_max: float = 10.0, b_max: float = 10.0, *, grid: int = 80,
                             ) -> PosteriorPredictive:
    """Bayesian hierarchical beta-binomial model over sites (Berry et al. 2011, example 2.7).

    ``r_k ~ Bin(n_k, p_k)``, ``p_k ~ Beta(a, b)``, ``a ~ U(0, a_max)``, ``b ~ U(0, b_max)``. The
    posterior of ``(a, b)`` is proportional to the prior times the beta-binomial marginal likelihood
    ``prod_k B(a + r_k, b + n_k - r_k) / B(a, b)``; it is integrated on a grid in (prior mean
    ``a / (a + b)``, share ``u`` of the largest prior size the box allows), which maps the box prior
    exactly (Jacobian included) and resolves the narrow ridge large studies give. The predictive
    rate of a new site is the mixture of ``Beta(a, b)`` over the posterior.

    Parameters
    ----------
    subjects, events
        Per site: subjects (``n_k``) and subjects with the event (``r_k <= n_k``), whole numbers.
    a_max, b_max
        Upper bounds of the uniform priors of ``a`` and ``b``.
    grid
        Grid points per axis (after zooming onto the posterior mass).

    Returns
    -------
    PosteriorPredictive
        ``mean``, ``median``, ``a_mean``, ``b_mean``; ``quantile(q)``, ``prob_between(lo, hi)``,
        ``prob_above(limit)``; and ``study_rate()`` / ``prob_study_rate_above(limit)`` for the
        subject-weighted rate of the study's own sites.

    See Also
    --------
    gamma_poisson_predictive : the same for event rates per unit of exposure.

    Examples
    --------
    >>> post = beta_binomial_predictive([20, 10, 16, 19, 14, 46, 10, 9, 6], [20, 4, 11, 10, 5, 36, 9, 7, 4])
    >>> round(post.mean, 3), round(post.median, 3), round(post.quantile(0.1), 3)
    (0.681, 0.698, 0.447)
    >>> round(post.prob_between(0.5, 0.75), 3), round(post.a_mean, 1), round(post.b_mean, 1)
    (0.465, 5.9, 2.8)
    """
    caller = "beta_binomial_predictive"
    n, r = _site_counts(subjects, events, "subjects", caller, binary=True)
    check_number(a_max, "a_max", caller, low=0.0, low_open=True)
    check_number(b_max, "b_max", caller, low=0.0, low_open=True)
    check_number(grid, "grid", caller, low=10, high=2000, integer=True)
    n, r = n[n > 0], r[n > 0]

    def log_post(mu: np.ndarray, u: np.ndarray) -> np.ndarray:
        size_max = np.minimum(a_max / mu, b_max / (1.0 - mu))
        s = u * size_max
        a = mu * s
        b = s - a
        loglik = (_rising_factorial_log(a, r) + _rising_factorial_log(b, n - r)
                  - _rising_factorial_log(s, n))
        return loglik + np.log(s) + np.log(size_max)  # da db = s * size_max dmu du

    mu, u, weight = _grid_posterior(log_post, (0.0, 1.0, 0.0, 1.0), grid)
    s = u * np.minimum(a_max / mu, b_max / (1.0 - mu))
    return PosteriorPredictive("beta", mu * s, (1.0 - mu) * s, weight, n, r)


def gamma_poisson_predictive(exposure: Sequence[float] | np.ndarray | pl.Series,
                             events: Sequence[float] | np.ndarray | pl.Series,
                             a_max: float = 10.0, *, mean_range: float = 1000.0, grid: int = 80,
                             ) -> PosteriorPredictive:
    """Bayesian hierarchical gamma-Poisson model over sites, for event rates per unit of exposure.

    ``r_k ~ Poisson(E_k lambda_k)``, ``lambda_k ~ Gamma(shape a, rate b)``. Priors, chosen so that
    the model does not depend on the unit of exposure (days, years): the shape ``a ~ U(0, a_max)``
    (as in the beta-binomial model), and the mean rate ``m = a / b`` flat on the log scale
    (``p(m) ~ 1/m``, the scale-invariant prior of a rate) over ``[m0 / mean_range, m0 mean_range]``
    around ``m0 = (sum r + 0.5) / sum E``. The posterior is negligible at the ends of that range
    unless the study has (almost) no events. The marginal likelihood is negative binomial:
    ``prod_k Gamma(r_k + a) / Gamma(a) (b / (b + E_k))^a (E_k / (b + E_k))^r_k``. The predictive rate of
    a new site is the mixture of ``Gamma(a, b)`` over the posterior.

    Parameters
    ----------
    exposure, events
        Per site: exposure ``E_k >= 0`` (e.g. days on study) and events ``r_k`` (whole numbers).
    a_max
        Upper bound of the uniform prior of the shape ``a``.
    mean_range
        Factor either side of ``m0`` bounding the prior of the mean rate.
    grid
        Grid points per axis (after zooming onto the posterior mass).

    Returns
    -------
    PosteriorPredictive
        As :func:`beta_binomial_predictive`, with rates per unit of exposure; ``a_mean`` and ``b_mean``
        are the posterior means of the gamma shape and rate.

    See Also
    --------
    beta_binomial_predictive : the same for proportions.

    Examples
    --------
    >>> post = gamma_poisson_predictive([1200.0, 800.0, 1500.0, 950.0], [6, 3, 9, 4])
    >>> round(post.mean * 1000, 1), round(post.study_rate_mean() * 1000, 2)  # events per 1,000 days
    (5.1, 4.94)
    >>> 0 < post.prob_above(0.01) < 0.5
    True
    """
    caller = "gamma_poisson_predictive"
    exp_, r = _site_counts(exposure, events, "exposure", caller, binary=False)
    check_number(a_max, "a_max", caller, low=0.0, low_open=True)
    check_number(mean_range, "mean_range", caller, low=1.0, low_open=True)
    check_number(grid, "grid", caller, low=10, high=2000, integer=True)
    exp_, r = exp_[exp_ > 0], r[exp_ > 0]
    m0 = (r.sum() + 0.5) / exp_.sum()
    sites = exp_.size

    def log_post(a: np.ndarray, log_m: np.ndarray) -> np.ndarray:
        m = np.exp(log_m)
        out = _rising_factorial_log(a, r) + sites * a * np.log(a) + r.sum() * log_m
        for e, k in zip(exp_, r):
            out = out - (a + k) * np.log(a + m * e)
        return out  # flat prior in (a, log m)

    a, log_m, weight = _grid_posterior(
        log_post, (0.0, a_max, float(np.log(m0 / mean_range)), float(np.log(m0 * mean_range))), grid)
    return PosteriorPredictive("gamma", a, a / np.exp(log_m), weight, exp_, r)
