"""Study-level proportion statistics: the exact (Clopper-Pearson) interval and gsm.qtl's one-sided test."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.stats import beta

from rbqm.errors import RbqmError
from rbqm.stats._frame import check_number

__all__ = ["OneSidedProportion", "clopper_pearson", "one_sided_proportion"]


def _counts(events: object, n: object, caller: str) -> tuple[int, int]:
    """Events and subjects as whole numbers with 0 <= events <= n and n >= 1."""
    check_number(n, "n", caller, low=1)
    check_number(events, "events", caller, low=0, high=float(n))
    if float(n) % 1 or float(events) % 1:
        raise RbqmError(f"The 'events' and 'n' parameters of {caller} must be whole numbers; "
                        f"got events={events!r}, n={n!r} instead.")
    return int(events), int(n)


def clopper_pearson(events: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided confidence interval of a binomial proportion.

    The bounds are the beta quantiles ``B(alpha/2; x, n - x + 1)`` and ``B(1 - alpha/2; x + 1, n - x)``
    with ``alpha = 1 - level``; the lower bound is 0 when ``x = 0`` and the upper bound 1 when ``x = n``.

    Parameters
    ----------
    events
        Number of subjects with the event, ``0 <= events <= n`` (a whole number).
    n
        Number of subjects, at least 1.
    level
        Confidence level in (0, 1).

    Returns
    -------
    tuple of float
        ``(lower, upper)``.

    See Also
    --------
    one_sided_proportion : gsm.qtl's test of the observed proportion against an expected rate.

    Examples
    --------
    >>> lower, upper = clopper_pearson(3, 100)
    >>> round(lower, 4), round(upper, 4)
    (0.0062, 0.0852)
    """
    caller = "clopper_pearson"
    x, n = _counts(events, n, caller)
    check_number(level, "level", caller, low=0.0, high=1.0, low_open=True)
    if level >= 1:
        raise RbqmError(f"The 'level' parameter of {caller} must be a number in (0, 1); got {level!r} instead.")
    alpha = 1.0 - level
    lower = 0.0 if x == 0 else float(beta.ppf(alpha / 2, x, n - x + 1))
    upper = 1.0 if x == n else float(beta.ppf(1 - alpha / 2, x + 1, n - x))
    return lower, upper


class OneSidedProportion(NamedTuple):
    """Result of :func:`one_sided_proportion`."""

    z: float
    """(p - p0) / sqrt(p0 (1 - p0) / n)."""
    limit: float
    """p0 + n_sd sqrt(p0 (1 - p0) / n): the tolerance limit for this many subjects."""
    flag: int
    """2 if p >= limit, 1 if p0 <= p < limit, else 0."""


def one_sided_proportion(events: int, n: int, p0: float, *, n_sd: float = 3.0) -> OneSidedProportion:
    """gsm.qtl's one-sided test of a study's proportion against an expected rate ``p0``.

    With ``p = events / n`` and ``se = sqrt(p0 (1 - p0) / n)``: ``z = (p - p0) / se``, ``limit = p0 + n_sd se``;
    the flag is 2 when ``p >= limit``, 1 when ``p0 <= p < limit`` and 0 when ``p < p0``.

    Parameters
    ----------
    events, n
        Subjects with the event and subjects (whole numbers, ``0 <= events <= n``, ``n >= 1``).
    p0
        The expected (historical) rate, in (0, 1); gsm.qtl uses 0.03 for eligibility violations and 0.07
        for study discontinuation.
    n_sd
        Standard errors above ``p0`` at which the limit lies (gsm.qtl: 3).

    Returns
    -------
    OneSidedProportion
        Named tuple ``(z, limit, flag)``.

    See Also
    --------
    clopper_pearson : exact interval of the observed proportion.

    Examples
    --------
    >>> result = one_sided_proportion(9, 100, 0.03)
    >>> round(result.z, 3), round(result.limit, 4), result.flag
    (3.517, 0.0812, 2)
    """
    caller = "one_sided_proportion"
    x, n = _counts(events, n, caller)
    check_number(p0, "p0", caller, low=0.0, high=1.0, low_open=True)
    if p0 >= 1:
        raise RbqmError(f"The 'p0' parameter of {caller} must be a number in (0, 1); got {p0!r} instead.")
    check_number(n_sd, "n_sd", caller, low=0.0, low_open=True)
    p = x / n
    se = float(np.sqrt(p0 * (1 - p0) / n))
    limit = p0 + n_sd * se
    flag = 2 if p >= limit else 1 if p >= p0 else 0
    return OneSidedProportion(z=(p - p0) / se, limit=limit, flag=flag)
