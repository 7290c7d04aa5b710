"""Input checks shared by the QTL methods: sequences of numbers given as lists, arrays or Series."""

from __future__ import annotations

import numpy as np
import polars as pl

from rbqm.errors import RbqmError


def vector(values: object, name: str, caller: str, *, what: str) -> np.ndarray:
    """``values`` as a non-empty 1-D float array (no nulls), or an ``RbqmError`` naming the parameter.

    ``what`` describes one element in messages (e.g. "value per site", "0/1 outcome").
    """
    if isinstance(values, pl.Series):
        if values.null_count():
            raise RbqmError(f"The {name!r} parameter of {caller} must not hold nulls; "
                            f"got {values.null_count()} null(s) instead.")
        values = values.to_numpy()
    try:
        out = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise RbqmError(f"The {name!r} parameter of {caller} must be a sequence of numbers ({what}); "
                        f"got {type(values).__name__} instead.") from exc
    if out.ndim != 1 or out.size == 0:
        raise RbqmError(f"The {name!r} parameter of {caller} must be a non-empty 1-D sequence (one {what}); "
                        f"got shape {out.shape} instead.")
    return out
