"""Working days: visits fall on weekdays that are not public holidays in the site's country."""

from __future__ import annotations

from datetime import date, timedelta

import holidays
import numpy as np

__all__ = ["WorkCalendar"]

_MAX_SHIFT = 7


class WorkCalendar:
    """Weekends and public holidays of a set of countries over a span of study days.

    Days are integers counted from ``start`` (day 0). ``country`` arguments are indexes
    into ``holiday_codes``.
    """

    def __init__(self, start: date, n_days: int, holiday_codes: list[str]) -> None:
        self.start = start
        self.n_days = n_days + 2 * _MAX_SHIFT
        days = np.arange(self.n_days)
        self.weekday = (start.weekday() + days) % 7
        years = range(start.year, (start + timedelta(days=self.n_days)).year + 1)
        self.holiday = np.zeros((len(holiday_codes), self.n_days), dtype=bool)
        for row, code in enumerate(holiday_codes):
            offsets = [(d - start).days for d in holidays.country_holidays(code, years=years)]
            offsets = [o for o in offsets if 0 <= o < self.n_days]
            self.holiday[row, offsets] = True

    def is_off(self, country: np.ndarray, day: np.ndarray) -> np.ndarray:
        """True where ``day`` is a Saturday, Sunday or public holiday in ``country``."""
        d = np.clip(day, 0, self.n_days - 1)
        return (self.weekday[d] >= 5) | self.holiday[country, d]

    def next_working_day(self, country: np.ndarray, day: np.ndarray) -> np.ndarray:
        """``day`` itself if it is a working day, else the next working day."""
        out = np.asarray(day).copy()
        for _ in range(_MAX_SHIFT):
            off = self.is_off(country, out)
            if not off.any():
                break
            out = out + off
        return out

    def next_weekend_day(self, day: np.ndarray, sunday: np.ndarray) -> np.ndarray:
        """The next Saturday (or Sunday where ``sunday``) on or after ``day``."""
        saturday = day + (5 - self.weekday[np.clip(day, 0, self.n_days - 1)]) % 7
        return saturday + sunday.astype(np.int64)
