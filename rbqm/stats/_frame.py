"""Input checks and frame plumbing shared by every scoring function.

Every public function validates its frame once, here, on entry; the private
helpers after that trust their inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
import polars as pl

from rbqm.errors import RbqmError

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

REQUIRED = ("group_id", "numerator", "denominator")
KINDS = ("binary", "rate")
N = pl.col("numerator")
D = pl.col("denominator")
#: Rows that enter the study-wide statistics: a numerator and a positive denominator.
SCORABLE = N.is_not_null() & (D > 0)
#: numerator / denominator; null where the denominator is 0 or null.
METRIC = pl.when(D > 0).then(N.cast(pl.Float64) / D.cast(pl.Float64))


def check_option(value: Any, name: str, caller: str, choices: Sequence[Any]) -> None:
    """Raise unless ``value`` is one of ``choices`` (scikit-learn style message)."""
    if not any(value == c and type(value) is type(c) for c in choices):
        options = "{" + ", ".join(repr(c) for c in choices) + "}"
        raise RbqmError(
            f"The {name!r} parameter of {caller} must be one of {options}; got {value!r} instead."
        )


def check_thresholds(values: Any, name: str, caller: str) -> tuple[float, ...]:
    """Return ``values`` as a non-empty tuple of finite, strictly increasing floats, or raise."""
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = None
    if not out or not all(np.isfinite(out)) or any(b <= a for a, b in zip(out, out[1:])):
        raise RbqmError(
            f"The {name!r} parameter of {caller} must be a non-empty sequence of finite numbers in "
            f"strictly increasing order; got {values!r} instead."
        )
    return out


def check_number(value: Any, name: str, caller: str, *, low: float, high: float = np.inf,
                 integer: bool = False, low_open: bool = False) -> None:
    """Raise unless ``value`` is a number in [low, high] (or (low, high] when ``low_open``)."""
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    ok = ok_type and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        what = "an integer" if integer else "a number"
        bracket = "(" if low_open else "["
        raise RbqmError(
            f"The {name!r} parameter of {caller} must be {what} in {bracket}{low}, {high}]; "
            f"got {value!r} instead."
        )


def require_columns(schema: pl.Schema, columns: Iterable[str], caller: str) -> None:
    """Raise naming every missing column and the columns present."""
    missing = [c for c in columns if c not in schema]
    if missing:
        raise RbqmError(
            f"{caller}: the input frame is missing the required column(s) {missing}; "
            f"it has {list(schema.names())}."
        )


def collect_input(frame: Any, caller: str, *, binary: bool = False,
                  integer: Sequence[str] = ()) -> pl.DataFrame:
    """Materialise ``frame`` and check the one-row-per-group contract.

    ``binary`` also requires numerator <= denominator; ``integer`` names the
    columns that must hold whole numbers (exact tests). Errors name the first
    offending ``group_id`` in row order.
    """
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    elif not isinstance(frame, pl.DataFrame):
        raise RbqmError(
            f"{caller} needs a polars DataFrame or LazyFrame; got {type(frame).__name__} instead."
        )
    require_columns(frame.schema, REQUIRED, caller)
    for col in ("numerator", "denominator"):
        dtype = frame.schema[col]
        if not (dtype.is_numeric() or dtype == pl.Null):
            raise RbqmError(f"{caller}: column {col!r} must be numeric; got {dtype} instead.")
    checks = [
        (pl.col("group_id").is_null(), "group_id must not be null"),
        (pl.col("group_id").is_duplicated(),
         "the frame must have one row per group, but this group_id repeats"),
    ]
    for col in ("numerator", "denominator"):
        value = pl.col(col).cast(pl.Float64)
        checks += [
            (value.is_nan() | value.is_infinite(), f"{col} must be finite"),
            (value < 0, f"{col} must be >= 0"),
        ]
    if binary:
        checks.append((N > D, "numerator must not exceed denominator for a binary metric"))
    for col in integer:
        whole = pl.col(col).cast(pl.Float64) % 1 != 0
        checks.append((whole, f"{col} must be a whole number for an exact test"))
    first_rows = frame.select(
        [cond.fill_null(False).arg_true().first().alias(str(i)) for i, (cond, _) in enumerate(checks)]
    ).row(0)
    for row, (_, message) in zip(first_rows, checks):
        if row is not None:
            values = frame.select(REQUIRED).row(row, named=True)
            raise RbqmError(
                f"{caller}: {message}; first offending row {row + 1}: group_id={values['group_id']!r}, "
                f"numerator={values['numerator']!r}, denominator={values['denominator']!r}."
            )
    return frame


def same_kind(out: pl.DataFrame, like: pl.DataFrame | pl.LazyFrame) -> Any:
    """Return ``out`` as a LazyFrame when the caller passed one."""
    return out.lazy() if isinstance(like, pl.LazyFrame) else out


def scorable_arrays(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numerators and denominators as float arrays (NaN for null) and the scorable mask."""
    arrays = frame.select(N.cast(pl.Float64), D.cast(pl.Float64)).fill_null(np.nan)
    n, d = arrays["numerator"].to_numpy(), arrays["denominator"].to_numpy()
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(n) & (d > 0)
    return n, d, mask


def scatter(values: np.ndarray, mask: np.ndarray, name: str, dtype: pl.DataType = pl.Float64) -> pl.Series:
    """Spread the values computed on scorable rows back to every row (null elsewhere)."""
    full = np.full(mask.shape, np.nan)
    full[mask] = values
    return pl.Series(name, full, nan_to_null=True).cast(dtype)


BOUNDS_COLUMNS = ("denominator", "threshold", "numerator", "metric")


def long_bounds(grid: np.ndarray, levels: Sequence[float], numerators: np.ndarray, keep: np.ndarray) -> pl.DataFrame:
    """Funnel limits in long format: one row per threshold (``levels``, rows of ``numerators``) and grid
    denominator where ``keep`` (same shape as ``numerators``), ordered by threshold then denominator, with
    the limit both as a count (``numerator``) and as a metric (numerator / denominator); all Float64."""
    with np.errstate(invalid="ignore", divide="ignore"):
        metrics = numerators / grid
    keep = keep.ravel()
    return pl.DataFrame(
        {
            "denominator": np.tile(grid, len(levels))[keep],
            "threshold": np.repeat(np.asarray(levels, dtype=float), grid.size)[keep],
            "numerator": numerators.ravel()[keep],
            "metric": metrics.ravel()[keep],
        },
        schema=dict.fromkeys(BOUNDS_COLUMNS, pl.Float64),
    )
