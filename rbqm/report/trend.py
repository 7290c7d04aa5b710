"""Where a trend chart's ticks, cuts and points go: the geometry both renderers share.

:func:`frame` places a :class:`~rbqm.report.layout.Trend` in a plot area (in any unit: SVG pixels or
PDF millimetres), so the HTML and the PDF draw the same axis, the same ticks and the same points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rbqm.report.layout import Trend

__all__ = ["Frame", "MAX_POINT_LABELS", "MAX_TICK_LABELS", "frame", "nice_ticks"]

MAX_TICK_LABELS = 8
"""At most this many cut dates are written under the x axis (every k-th, always the last)."""
MAX_POINT_LABELS = 12
"""Up to this many cuts every point is labelled with its value; beyond, only the last point."""


def nice_ticks(high: float, *, count: int = 4, integer: bool = False) -> tuple[float, ...]:
    """Ticks from 0 to at least ``high`` in steps of 1, 2, 2.5 or 5 times a power of ten (about ``count``).

    Examples
    --------
    >>> nice_ticks(0.27)
    (0.0, 0.1, 0.2, 0.3)
    >>> nice_ticks(7, integer=True), nice_ticks(0, integer=True)
    ((0.0, 2.0, 4.0, 6.0, 8.0), (0.0, 1.0))
    """
    high = high if high > 0 and math.isfinite(high) else 1.0
    raw = max(high / count, 1.0) if integer else high / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10)
                if m * power >= raw * (1 - 1e-9) and (not integer or float(m * power).is_integer()))
    n = math.ceil(high / step - 1e-9)
    return tuple(round(i * step, 12) for i in range(n + 1))


@dataclass(frozen=True)
class Frame:
    """A chart's plot area: ``left``, ``top``, ``width``, ``height``; the y ticks (0 to the top tick) and
    the x position of each cut."""

    left: float
    top: float
    width: float
    height: float
    ticks: tuple[float, ...]
    xs: tuple[float, ...]

    def y(self, value: float) -> float:
        """The vertical position of ``value`` (0 at the bottom of the area, the top tick at its top)."""
        return self.top + self.height * (1 - value / self.ticks[-1])

    @property
    def tick_cuts(self) -> tuple[int, ...]:
        """The cuts whose dates are written under the axis: every k-th from the last, at most
        :data:`MAX_TICK_LABELS`."""
        n = len(self.xs)
        every = math.ceil(n / MAX_TICK_LABELS)
        return tuple(sorted(range(n - 1, -1, -every)))

    def labelled(self, index: int) -> bool:
        """Whether the point at cut ``index`` carries its value (all up to :data:`MAX_POINT_LABELS` cuts)."""
        return len(self.xs) <= MAX_POINT_LABELS or index == len(self.xs) - 1


def frame(trend: Trend, *, left: float, top: float, width: float, height: float) -> Frame:
    """The plot area of ``trend``: y from 0 to a tick above every value (interval ends included), cuts
    spread evenly across the width (half a step in from each side).

    Examples
    --------
    >>> from rbqm.report.layout import Series
    >>> chart = Trend("t", ("2025-01-01", "2025-02-01"), (Series("s", "red_sites", (1, 3)),), "sites", integer=True)
    >>> f = frame(chart, left=10, top=0, width=100, height=50)
    >>> f.xs, f.ticks, f.y(3), f.y(0)
    ((35.0, 85.0), (0.0, 1.0, 2.0, 3.0), 0.0, 50.0)
    """
    values = [v for s in trend.series for v in (*s.values, *s.high) if v is not None and math.isfinite(v)]
    ticks = nice_ticks(max(values, default=0.0), integer=trend.integer)
    n = max(len(trend.cuts), 1)
    xs = tuple(left + width * (i + 0.5) / n for i in range(len(trend.cuts)))
    return Frame(left, top, width, height, ticks, xs)
