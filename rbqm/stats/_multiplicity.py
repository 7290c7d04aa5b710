"""Benjamini-Hochberg false discovery rate adjustment as a polars expression."""

from __future__ import annotations

from typing import overload

import polars as pl

from rbqm.errors import RbqmError

__all__ = ["benjamini_hochberg", "bh_expr"]


def _adjust(p: pl.Expr) -> pl.Expr:
    """q_i = min over p_j >= p_i of m p_j / rank_j, capped at 1; m counts the non-null p-values."""
    raw = (p.count() / p.rank(method="max")) * p  # R's order: (m / i) * p
    order = p.arg_sort(descending=True, nulls_last=True)
    running_min = raw.gather(order).cum_min()
    return running_min.gather(order.arg_sort()).clip(upper_bound=1.0)


@overload
def benjamini_hochberg(p: pl.Expr) -> pl.Expr: ...
@overload
def benjamini_hochberg(p: pl.Series) -> pl.Series: ...
def benjamini_hochberg(p: pl.Expr | pl.Series) -> pl.Expr | pl.Series:
    """Benjamini-Hochberg adjusted p-values (q-values) within one family of tests.

    With the m non-null p-values ranked 1..m (ties take their highest rank),
    q_i = min over p_j >= p_i of m p_j / rank_j, capped at 1, as R's
    ``p.adjust(method = "BH")``. So q >= p and q is non-decreasing in p. Nulls
    stay null and do not count in m. Within ``.over(...)`` the family is the
    window (e.g. one study).

    Parameters
    ----------
    p : polars.Expr or polars.Series
        p-values in [0, 1]. A Series is checked; an expression is trusted.

    Returns
    -------
    polars.Expr or polars.Series
        The q-values, same kind as ``p``, with the input's name, in its row order.

    Raises
    ------
    rbqm.errors.RbqmError
        When a Series holds values outside [0, 1] or NaN.

    See Also
    --------
    bh_expr : the same for a column name, for ``with_columns``.

    Examples
    --------
    >>> import polars as pl
    >>> benjamini_hochberg(pl.Series("p", [0.01, 0.04, 0.03, 0.5])).round(4).to_list()
    [0.04, 0.0533, 0.0533, 0.5]
    """
    if isinstance(p, pl.Expr):
        return _adjust(p)
    if not isinstance(p, pl.Series):
        raise RbqmError(
            "The 'p' parameter of benjamini_hochberg must be a polars Expr or Series; "
            f"got {type(p).__name__} instead."
        )
    values = p.cast(pl.Float64)
    bad = values.is_nan() | (values < 0) | (values > 1)
    if bad.any():
        index = bad.arg_true()[0]
        raise RbqmError(
            f"benjamini_hochberg: p-values must lie in [0, 1]; got {p[index]!r} at row {index + 1}."
        )
    return values.to_frame("p").select(_adjust(pl.col("p"))).to_series().alias(p.name)


def bh_expr(column: str) -> pl.Expr:
    """Benjamini-Hochberg q-values of the p-value column ``column``, as an expression.

    Parameters
    ----------
    column : str
        Name of a column of p-values.

    Returns
    -------
    polars.Expr
        Named ``column``; rename it with ``with_columns(q_value=bh_expr("p_value"))``.

    See Also
    --------
    benjamini_hochberg : the definition.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"p_value": [0.02, 0.01, None, 0.2]})
    >>> df.with_columns(q_value=bh_expr("p_value"))["q_value"].to_list()
    [0.03, 0.03, None, 0.2]
    """
    return _adjust(pl.col(column))
