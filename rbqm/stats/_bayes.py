"""Empirical-Bayes shrinkage: beta-binomial for proportions, gamma-Poisson for rates."""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, logit
from scipy.stats import beta, gamma

from rbqm.errors import RbqmError
from rbqm.stats._frame import (
    KINDS, METRIC, Frame, check_option, collect_input, same_kind, scatter, scorable_arrays,
)

__all__ = ["empirical_bayes"]

#: Bounds of the prior's concentration (binary: a + b; rate: the gamma shape). With no
#: over-dispersion the marginal likelihood keeps rising with it, so the fit stops at the cap.
MIN_PRIOR_SIZE = 1e-3
MAX_PRIOR_SIZE = 1e6
_START_SIZES = np.logspace(-2, 6, 9)


def _binary_negloglik(params: np.ndarray, n: np.ndarray, d: np.ndarray) -> tuple[float, np.ndarray]:
    """Minus the beta-binomial log marginal likelihood (without constants) and its gradient.

    params = (logit of the prior mean m, log of the prior size s); a = s m, b = s (1 - m).
    """
    m = 1.0 / (1.0 + np.exp(-params[0]))
    s = np.exp(params[1])
    a, b = s * m, s * (1.0 - m)
    value = np.sum(gammaln(n + a) + gammaln(d - n + b) - gammaln(d + s))
    value += n.size * (gammaln(s) - gammaln(a) - gammaln(b))
    common = np.sum(digamma(d + s) - digamma(s))
    d_a = np.sum(digamma(n + a) - digamma(a)) - common
    d_b = np.sum(digamma(d - n + b) - digamma(b)) - common
    grad = np.array([s * m * (1.0 - m) * (d_a - d_b), a * d_a + b * d_b])
    return -value, -grad


def _rate_negloglik(params: np.ndarray, n: np.ndarray, d: np.ndarray) -> tuple[float, np.ndarray]:
    """Minus the negative-binomial log marginal likelihood (without constants) and its gradient.

    params = (log of the prior mean m, log of the gamma shape a); the gamma rate is b = a / m.
    """
    a = np.exp(params[1])
    b = a / np.exp(params[0])
    value = np.sum(gammaln(n + a) - gammaln(a) - a * np.log1p(d / b) - n * np.log1p(b / d))
    d_a = np.sum(digamma(n + a) - digamma(a) - np.log1p(d / b))
    d_b = np.sum(a / b - (n + a) / (b + d))
    grad = np.array([-b * d_b, a * d_a + b * d_b])
    return -value, -grad


def _fit_prior(n: np.ndarray, d: np.ndarray, kind: str, mu: float) -> tuple[float, float]:
    """Maximum marginal likelihood prior (a, b), log-parameterised and bounded (see MAX_PRIOR_SIZE)."""
    objective = _binary_negloglik if kind == "binary" else _rate_negloglik
    centre = float(logit(mu)) if kind == "binary" else float(np.log(mu))
    sizes = np.log(_START_SIZES)
    start_size = sizes[np.argmin([objective(np.array([centre, w]), n, d)[0] for w in sizes])]
    result = minimize(
        objective, np.array([centre, start_size]), args=(n, d), jac=True, method="L-BFGS-B",
        bounds=[(centre - 25.0, centre + 25.0), (np.log(MIN_PRIOR_SIZE), np.log(MAX_PRIOR_SIZE))],
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 1000},
    )
    location, size = result.x[0], np.exp(result.x[1])
    if kind == "binary":
        mean = 1.0 / (1.0 + np.exp(-location))
        return float(size * mean), float(size * (1.0 - mean))
    return float(size), float(size / np.exp(location))


def _check_prior(prior: object) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in prior)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        a = b = np.nan
    if not (np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0):
        raise RbqmError(
            f"The 'prior' parameter of empirical_bayes must be None or a pair (a, b) of positive finite "
            f"numbers; got {prior!r} instead."
        )
    return a, b


def empirical_bayes(
    frame: Frame,
    *,
    kind: Literal["rate", "binary"],
    prior: tuple[float, float] | None = None,
) -> Frame:
    """Shrink each group's metric towards the study with an empirical-Bayes prior.

    ``"binary"``: N_i ~ Binomial(D_i, p_i), p_i ~ Beta(a, b).
    ``"rate"``: N_i ~ Poisson(D_i lambda_i), lambda_i ~ Gamma(shape a, rate b).
    Unless ``prior`` fixes (a, b), they maximise the marginal likelihood
    (beta-binomial, or negative binomial) of the groups with denominator > 0,
    over the log-parameterised prior mean and concentration (a + b for binary,
    the shape a for rate). The concentration is bounded to
    [1e-3, 1e6]: with no over-dispersion between groups the likelihood keeps
    rising with it, the fit stops at 1e6, and every group is shrunk (almost) to
    the prior mean. The conjugate posterior is Beta(a + N, b + D - N) or
    Gamma(a + N, b + D). Small groups are shrunk more.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per group with ``group_id``, ``numerator`` and ``denominator``.
    kind : {"rate", "binary"}
        Beta-binomial (``"binary"``) or gamma-Poisson (``"rate"``) model.
    prior : (float, float), optional
        A fixed prior (a, b) instead of the fitted one: Beta(a, b) or
        Gamma(shape a, rate b), prior mean a / (a + b) or a / b.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The input, same kind and row order, with ``metric``, ``overall_metric``
        (the study rate mu = sum N / sum D), the constant ``prior_a`` and
        ``prior_b``, ``shrunk_metric`` (posterior mean), ``prob_above``
        (posterior probability that the group's true rate exceeds mu) and
        ``score`` (= ``prob_above``; flag it with probability thresholds such as
        (0.01, 0.05, 0.95, 0.99)). Per-group columns are null where the
        denominator is 0 or null. When mu is 0 (or 1 for binary) no rate can
        exceed or fall short of it: ``prob_above`` is 0.5 and, unless ``prior``
        is given, the prior is null and ``shrunk_metric`` is mu.

    See Also
    --------
    exact_tail : exact tail probabilities under the study rate.

    Examples
    --------
    >>> import polars as pl
    >>> sites = pl.DataFrame({"group_id": ["a", "b"], "numerator": [0, 1],
    ...                       "denominator": [1, 1]})
    >>> out = empirical_bayes(sites, kind="binary", prior=(1, 1))
    >>> out["shrunk_metric"].round(4).to_list(), out["prob_above"].round(4).to_list()
    ([0.3333, 0.6667], [0.25, 0.75])
    """
    check_option(kind, "kind", "empirical_bayes", KINDS)
    fixed = None if prior is None else _check_prior(prior)
    df = collect_input(frame, "empirical_bayes", binary=kind == "binary")
    n, d, mask = scorable_arrays(df)
    n, d = n[mask], d[mask]
    mu = n.sum() / d.sum() if mask.any() else np.nan
    degenerate = not (0.0 < mu < (1.0 if kind == "binary" else np.inf))
    a, b = fixed or ((np.nan, np.nan) if degenerate else _fit_prior(n, d, kind, mu))
    if kind == "binary":
        post_a, post_b = a + n, b + d - n
        shrunk = post_a / (post_a + post_b)
        above = beta.sf(mu, post_a, post_b)
    else:
        post_a, post_rate = a + n, b + d
        shrunk = post_a / post_rate
        above = gamma.sf(mu, post_a, scale=1.0 / post_rate)
    if degenerate:
        above = np.full(n.shape, 0.5)
        shrunk = shrunk if fixed else np.full(n.shape, mu)
    out = df.with_columns(
        METRIC.alias("metric"),
        pl.lit(None if np.isnan(mu) else mu, pl.Float64).alias("overall_metric"),
        pl.lit(None if np.isnan(a) else a, pl.Float64).alias("prior_a"),
        pl.lit(None if np.isnan(b) else b, pl.Float64).alias("prior_b"),
        scatter(shrunk, mask, "shrunk_metric"),
        scatter(above, mask, "prob_above"),
    ).with_columns(score=pl.col("prob_above"))
    return same_kind(out, frame)
