"""The observed-minus-expected chart of a binary QTL (rbqmR): subjects in time order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy.stats import binom

from rbqm.errors import RbqmError
from rbqm.qtl._input import vector
from rbqm.stats._frame import check_number

__all__ = ["OE_STATUSES", "observed_minus_expected"]

#: Status of each subject's point on the chart, from best to worst.
OE_STATUSES = ("within", "warning", "action")


def _outcomes(events: object, caller: str) -> np.ndarray:
    """The 0/1 outcomes as a 1-D float array (no nulls, nothing but 0 and 1)."""
    values = vector(events, "events", caller, what="0/1 outcome per subject")
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        raise RbqmError(f"The 'events' parameter of {caller} must hold only 0 and 1 (or booleans); "
                        f"got {values[bad[0]]!r} at position {bad[0] + 1} instead.")
    return values


def _pair(value: object, name: str, caller: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        low = high = float("nan")
    if not (0.0 <= low < high <= 1.0):
        raise RbqmError(f"The {name!r} parameter of {caller} must be two numbers 0 <= low < high <= 1; "
                        f"got {value!r} instead.")
    return low, high


def observed_minus_expected(events: Sequence[int] | np.ndarray | pl.Series, p0: float, n_max: int,
                            permitted: tuple[float, float] = (0.05, 0.15),
                            q: tuple[float, float] = (0.01, 0.99)) -> pl.DataFrame:
    """Observed-minus-expected (O-E) chart of a binary QTL, one row per subject in time order.

    For subject ``i`` (1-based, in the order of ``events``) with ``O_i`` cumulative events:

    * ``o_minus_e = O_i - i p0``;
    * warning limits ``binom.ppf(q, i, p0) - i p0`` for the lower and upper quantile of ``q``: where
      O - E would lie with probability ``q[1] - q[0]`` if the true rate were ``p0``;
    * action limits ``n_max (permitted - p0)``: the excess (or shortfall) of events at which the
      whole trial of ``n_max`` subjects could no longer end within the permitted rates, lower from
      ``permitted[0]``, upper from ``permitted[1]``;
    * ``status``: ``"action"`` where O - E lies beyond an action limit, else ``"warning"`` where it
      lies beyond a warning limit, else ``"within"`` (a point on a limit is within it, as in rbqmR).

    Parameters
    ----------
    events
        The 0/1 (or boolean) outcome of each subject, in time order (e.g. by randomisation date).
    p0
        The expected rate, in (0, 1).
    n_max
        Planned number of subjects of the trial.
    permitted
        The lowest and highest permitted rates, ``permitted[0] <= p0 <= permitted[1]``.
    q
        Lower and upper binomial quantiles of the warning limits.

    Returns
    -------
    polars.DataFrame
        Columns ``subject`` (1..n), ``o_minus_e``, ``warn_lower``, ``warn_upper``, ``action_lower``,
        ``action_upper`` and ``status``.

    Examples
    --------
    >>> chart = observed_minus_expected([0] * 61 + [1], p0=0.10, n_max=400)
    >>> chart.row(61, named=True)  # doctest: +NORMALIZE_WHITESPACE
    {'subject': 62, 'o_minus_e': -5.2, 'warn_lower': -5.2, 'warn_upper': 5.8, 'action_lower': -20.0,
     'action_upper': 20.0, 'status': 'within'}
    """
    caller = "observed_minus_expected"
    outcomes = _outcomes(events, caller)
    check_number(p0, "p0", caller, low=0.0, high=1.0, low_open=True)
    if p0 >= 1:
        raise RbqmError(f"The 'p0' parameter of {caller} must be a number in (0, 1); got {p0!r} instead.")
    check_number(n_max, "n_max", caller, low=0.0, low_open=True)
    low_rate, high_rate = _pair(permitted, "permitted", caller)
    if not low_rate <= p0 <= high_rate:
        raise RbqmError(f"The 'permitted' parameter of {caller} must bracket p0 = {p0}; "
                        f"got {permitted!r} instead.")
    q_low, q_high = _pair(q, "q", caller)
    if q_low == 0.0 or q_high == 1.0:
        raise RbqmError(f"The 'q' parameter of {caller} must be two quantiles strictly between 0 and 1; "
                        f"got {q!r} instead.")
    i = np.arange(1, outcomes.size + 1, dtype=float)
    expected = i * p0
    # round away float noise (6.2 - 12 = 5.800000000000001) so printed limits read as the reference does
    chart = pl.DataFrame({
        "subject": np.arange(1, outcomes.size + 1, dtype=np.int64),
        "o_minus_e": np.round(np.cumsum(outcomes) - expected, 12),
        "warn_lower": np.round(binom.ppf(q_low, i, p0) - expected, 12),
        "warn_upper": np.round(binom.ppf(q_high, i, p0) - expected, 12),
        "action_lower": np.full(outcomes.size, round(float(n_max) * (low_rate - p0), 12)),
        "action_upper": np.full(outcomes.size, round(float(n_max) * (high_rate - p0), 12)),
    })
    oe = pl.col("o_minus_e")
    return chart.with_columns(
        status=pl.when((oe < pl.col("action_lower")) | (oe > pl.col("action_upper"))).then(pl.lit("action"))
        .when((oe < pl.col("warn_lower")) | (oe > pl.col("warn_upper"))).then(pl.lit("warning"))
        .otherwise(pl.lit("within")),
    )
