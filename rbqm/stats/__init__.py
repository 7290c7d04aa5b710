"""Statistics that score groups (sites, countries) on one key risk indicator.

Every scoring function has one frame-in, frame-out contract:

* **In**: a polars DataFrame or LazyFrame with one row per group and the
  columns ``group_id`` (unique, not null), ``numerator`` and ``denominator``
  (non-negative numbers; numerator <= denominator for a binary metric; whole
  numbers for the exact tests). Other columns are kept untouched.
* **Out**: the same kind of frame (a LazyFrame in gives a LazyFrame out), same
  rows in the same order, with ``metric`` (numerator / denominator, null where
  the denominator is 0 or null), ``score`` and the method's own columns added
  (a column of the same name already in the input is replaced). The input is
  never modified; nothing is sorted or logged.

Only the groups with a numerator and a denominator > 0 enter the study-wide
statistics and get a score. Inputs are validated once on entry and bad input
raises :class:`rbqm.errors.RbqmError` naming the function, the parameter or
column, the bad value (or the first offending ``group_id``) and what is valid.
The statistics need all groups at once, so a LazyFrame input is collected on
entry (one row per group: a small frame) and the result handed back lazy.
:func:`flag`, :func:`flag_p_value` and :func:`bh_expr` stay fully lazy.

``METHODS`` maps the model names used by KRI definitions to callables that take
just the frame.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from rbqm.stats._bayes import empirical_bayes
from rbqm.stats._exact import exact_tail
from rbqm.stats._fisher import fisher
from rbqm.stats._flag import flag, flag_p_value
from rbqm.stats._identity import identity
from rbqm.stats._multiplicity import benjamini_hochberg, bh_expr
from rbqm.stats._normal import normal_approx, normal_approx_bounds
from rbqm.stats._overdispersed import overdispersed_exact, overdispersed_exact_bounds
from rbqm.stats._poisson import poisson, poisson_bounds
from rbqm.stats._ties import TIE_FIGURES, tie_safe

__all__ = [
    "METHODS",
    "TIE_FIGURES",
    "benjamini_hochberg",
    "bh_expr",
    "empirical_bayes",
    "exact_tail",
    "fisher",
    "flag",
    "flag_p_value",
    "identity",
    "normal_approx",
    "normal_approx_bounds",
    "overdispersed_exact",
    "overdispersed_exact_bounds",
    "poisson",
    "tie_safe",
    "poisson_bounds",
]

#: Model name -> scoring function of the frame alone (the names KRI definitions use).
METHODS: dict[str, Callable[[Any], Any]] = {
    "normal_approx_rate": partial(normal_approx, kind="rate"),
    "normal_approx_binary": partial(normal_approx, kind="binary"),
    "negative_binomial": partial(overdispersed_exact, kind="rate"),
    "beta_binomial": partial(overdispersed_exact, kind="binary"),
    "poisson": partial(poisson, offset=True),
    "poisson_free_slope": partial(poisson, offset=False),
    "fisher": fisher,
    "identity": identity,
    "identity_count": partial(identity, on="numerator"),
    "exact_binomial": partial(exact_tail, kind="binary"),
    "exact_poisson": partial(exact_tail, kind="rate"),
    "empirical_bayes_binary": partial(empirical_bayes, kind="binary"),
    "empirical_bayes_rate": partial(empirical_bayes, kind="rate"),
}
