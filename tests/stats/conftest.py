"""Shared data for the rbqm.stats tests: the reference sites and hypothesis strategies for groups."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import strategies as st

# Reference section 3 check: (events, subjects) of nine sites, scored as binary.
REFERENCE_EVENTS = np.array([20, 4, 11, 10, 5, 36, 9, 7, 4], dtype=float)
REFERENCE_SUBJECTS = np.array([20, 10, 16, 19, 14, 46, 10, 9, 6], dtype=float)
PUBLISHED_MU = 0.7067
PUBLISHED_PHI = 3.05
PUBLISHED_Z = [1.65, -1.22, -0.10, -0.99, -1.65, 0.65, 0.77, 0.27, -0.12]


def frame(numerators, denominators, *, ids=None, **extra) -> pl.DataFrame:
    """A one-row-per-group frame; group ids default to unsorted strings to catch any reordering."""
    ids = ids if ids is not None else [f"S{(7 * i) % 101:03d}" for i in range(len(numerators))]
    return pl.DataFrame({"group_id": ids, "numerator": numerators, "denominator": denominators, **extra})


@pytest.fixture
def reference_sites() -> pl.DataFrame:
    return frame(REFERENCE_EVENTS.astype(int).tolist(), REFERENCE_SUBJECTS.astype(int).tolist(),
                 ids=[f"site{i + 1}" for i in range(9)])


@st.composite
def binary_groups(draw, *, min_size: int = 1, max_size: int = 40, max_denominator: int = 500):
    """Lists of (numerator, denominator) with 1 <= D and 0 <= N <= D."""
    denominators = draw(st.lists(st.integers(1, max_denominator), min_size=min_size, max_size=max_size))
    numerators = [draw(st.integers(0, d)) for d in denominators]
    return numerators, denominators


@st.composite
def rate_groups(draw, *, min_size: int = 1, max_size: int = 40):
    """Lists of (count, exposure) with whole counts and positive real exposures."""
    denominators = draw(st.lists(st.floats(0.5, 5000, allow_nan=False), min_size=min_size, max_size=max_size))
    numerators = [draw(st.integers(0, 300)) for _ in denominators]
    return numerators, denominators
