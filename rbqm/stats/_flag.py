"""Flags from scores: half-open bands between thresholds, and p-value flags with a direction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from rbqm.errors import RbqmError
from rbqm.stats._frame import D, N, Frame, check_number, check_option, check_thresholds, require_columns

__all__ = ["flag", "flag_p_value"]

MinOn = Literal["numerator", "denominator", "difference"]
MIN_ON: tuple[MinOn, ...] = ("numerator", "denominator", "difference")


def _schema(frame: Any, caller: str) -> pl.Schema:
    if isinstance(frame, pl.LazyFrame):
        return frame.collect_schema()
    if isinstance(frame, pl.DataFrame):
        return frame.schema
    raise RbqmError(f"{caller} needs a polars DataFrame or LazyFrame; got {type(frame).__name__} instead.")


def _enough(frame: Any, caller: str, min_count: float | None, min_on: str, needed: list[str]) -> pl.Expr:
    """Check the accrual options and columns; the expression is True where the group may be scored."""
    check_option(min_on, "min_on", caller, MIN_ON)
    if min_count is not None:
        check_number(min_count, "min_count", caller, low=0)
        needed = needed + (["numerator", "denominator"] if min_on == "difference" else [min_on])
    require_columns(_schema(frame, caller), needed, caller)
    if min_count is None:
        return pl.lit(True)
    value = {"numerator": N, "denominator": D, "difference": D - N}[min_on]
    return (value >= min_count).fill_null(False)


def flag(
    frame: Frame,
    *,
    thresholds: Sequence[float],
    flags: Sequence[int],
    min_count: float | None = None,
    min_on: MinOn = "denominator",
) -> Frame:
    """Flag each group by the band its score falls in.

    Bands are half-open [t_k, t_k+1): with thresholds (-3, -2, 2, 3) and flags
    (-2, -1, 0, 1, 2), z < -3 gives -2, -3 <= z < -2 gives -1, -2 <= z < 2 gives
    0, 2 <= z < 3 gives 1 and z >= 3 gives 2. A null (or NaN) score gets a null
    flag. Groups below the minimum to score ("too few to score") get a null
    flag and a null score, never 0: the group may be scored when ``min_on``
    (numerator, denominator or their difference denominator - numerator) is
    >= ``min_count``. Lazy in, lazy out: nothing is collected.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        The output of a scoring function: a ``score`` column, and ``numerator``
        / ``denominator`` when ``min_count`` is given.
    thresholds : sequence of float
        Band edges, strictly increasing.
    flags : sequence of int
        One flag per band, ``len(thresholds) + 1`` of them, in the Int8 range.
    min_count : float, optional
        Minimum of ``min_on`` needed to score; None scores every group.
    min_on : {"numerator", "denominator", "difference"}, default "denominator"
        What ``min_count`` is compared with.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The input with ``flag`` (Int8) added and ``score`` blanked below the minimum.

    Raises
    ------
    rbqm.errors.RbqmError
        On invalid thresholds, flags, ``min_count`` or ``min_on``, or missing columns.

    See Also
    --------
    flag_p_value : flags from a p-value and a direction (Fisher, exact tails).

    Examples
    --------
    >>> import polars as pl
    >>> scored = pl.DataFrame({"score": [-3.5, -3.0, -2.0, 1.99, 2.0, 3.0, None],
    ...                        "denominator": [50, 50, 50, 50, 50, 50, 50]})
    >>> flag(scored, thresholds=[-3, -2, 2, 3], flags=[-2, -1, 0, 1, 2])["flag"].to_list()
    [-2, -1, 0, 0, 1, 2, None]
    >>> flag(scored.head(2), thresholds=[2, 3], flags=[0, 1, 2], min_count=60)["flag"].to_list()
    [None, None]
    """
    caller = "flag"
    edges = check_thresholds(thresholds, "thresholds", caller)
    codes = list(flags) if isinstance(flags, Sequence) and not isinstance(flags, str) else None
    if (codes is None or len(codes) != len(edges) + 1
            or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and -128 <= c <= 127
                    for c in codes)):
        raise RbqmError(
            f"The 'flags' parameter of flag must be a sequence of len(thresholds) + 1 = {len(edges) + 1} "
            f"integers in [-128, 127]; got {flags!r} instead."
        )
    enough = _enough(frame, caller, min_count, min_on, ["score"])
    score = pl.col("score").cast(pl.Float64)
    band = pl.sum_horizontal(*(score >= t for t in edges))
    coded = band.replace_strict(dict(enumerate(int(c) for c in codes)), return_dtype=pl.Int8)
    return frame.with_columns(
        score=pl.when(enough).then(pl.col("score")),
        flag=pl.when(enough & score.is_not_null() & score.is_not_nan()).then(coded),
    )


def flag_p_value(
    frame: Frame,
    *,
    amber: float = 0.05,
    red: float = 0.01,
    min_count: float | None = None,
    min_on: MinOn = "denominator",
) -> Frame:
    """Flag each group by its p-value, on the side given by its direction.

    flag = direction * (2 if p < red, 1 if red <= p < amber, else 0), so -2 / -1
    are red / amber low and 1 / 2 amber / red high (gsm's Fisher defaults:
    amber 0.05, red 0.01). A null p-value gets a null flag. Below the minimum to
    score, flag and score are null, as in :func:`flag`.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        Output of :func:`fisher` or :func:`exact_tail`: ``p_value`` and
        ``direction`` columns (and ``numerator`` / ``denominator`` when
        ``min_count`` is given).
    amber, red : float, default 0.05, 0.01
        Significance levels, 0 < red < amber <= 1.
    min_count : float, optional
        Minimum of ``min_on`` needed to score; None scores every group.
    min_on : {"numerator", "denominator", "difference"}, default "denominator"
        What ``min_count`` is compared with.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The input with ``flag`` (Int8) and, below the minimum, a null ``score``.

    See Also
    --------
    flag : bands on the score between thresholds.

    Examples
    --------
    >>> import polars as pl
    >>> tested = pl.DataFrame({"p_value": [0.004, 0.03, 0.2, 0.009], "direction": [1, -1, 1, -1],
    ...                        "score": [0.004, 0.03, 0.2, 0.009]})
    >>> flag_p_value(tested)["flag"].to_list()
    [2, -1, 0, -2]
    """
    caller = "flag_p_value"
    check_number(red, "red", caller, low=0, high=1, low_open=True)
    check_number(amber, "amber", caller, low=red, high=1, low_open=True)
    enough = _enough(frame, caller, min_count, min_on, ["p_value", "direction"])
    p = pl.col("p_value")
    level = pl.when(p < red).then(2).when(p < amber).then(1).otherwise(0)
    updates = {"flag": pl.when(enough & p.is_not_null()).then((pl.col("direction") * level).cast(pl.Int8))}
    if "score" in _schema(frame, caller):
        updates["score"] = pl.when(enough).then(pl.col("score"))
    return frame.with_columns(**updates)
