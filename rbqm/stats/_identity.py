"""Identity scoring: the metric (or the count) itself, for fixed thresholds."""

from __future__ import annotations

from typing import Literal

import polars as pl

from rbqm.stats._frame import METRIC, N, SCORABLE, Frame, check_option, collect_input, same_kind

__all__ = ["identity"]


def identity(frame: Frame, *, on: Literal["metric", "numerator"] = "metric") -> Frame:
    """Score each group by its metric or its numerator, to be flagged against fixed thresholds.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per group with ``group_id``, ``numerator`` and ``denominator``.
    on : {"metric", "numerator"}, default "metric"
        ``"metric"`` scores numerator / denominator (e.g. sample compliance),
        ``"numerator"`` the count itself (e.g. early deaths).

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The input, same kind and row order, with ``metric`` and ``score``
        (Float64), both null where the denominator is 0 or null, as in every
        method: a group with nothing at risk has no score.

    See Also
    --------
    flag : fixed thresholds, e.g. ``flag(out, thresholds=[0.85, 0.90], flags=[2, 1, 0])``.

    Examples
    --------
    >>> import polars as pl
    >>> sites = pl.DataFrame({"group_id": ["a", "b", "c"], "numerator": [1, 0, 3],
    ...                       "denominator": [10, 0, 12]})
    >>> identity(sites)["score"].to_list()
    [0.1, None, 0.25]
    >>> identity(sites, on="numerator")["score"].to_list()
    [1.0, None, 3.0]
    """
    check_option(on, "on", "identity", ("metric", "numerator"))
    df = collect_input(frame, "identity")
    value = METRIC if on == "metric" else N.cast(pl.Float64)
    out = df.with_columns(metric=METRIC, score=pl.when(SCORABLE).then(value))
    return same_kind(out, frame)
