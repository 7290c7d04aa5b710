"""The generator's settings (``SynthConfig``) and its reference data (``catalogue.yaml``)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from rbqm.errors import RbqmError
from rbqm.io import FORMATS, Format
from synthetic.anomalies import AnomalySpec

__all__ = ["SynthConfig", "catalogue", "add_months"]


@cache
def catalogue() -> dict[str, Any]:
    """The trial design and reference data of ``synthetic/catalogue.yaml``."""
    return yaml.safe_load(files("synthetic").joinpath("catalogue.yaml").read_text(encoding="utf-8"))


def add_months(day: date, months: int) -> date:
    """``day`` plus a number of calendar months, clamped to the month's last day.

    Examples
    --------
    >>> add_months(date(2024, 1, 31), 1)
    datetime.date(2024, 2, 29)
    """
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class SynthConfig:
    """What to generate: the size and shape of the study, its anomalies and output format.

    ``subjects`` counts enrolled (randomised) subjects; screen failures come on top.
    The study runs ``months`` months from ``start``; its last data cut is at the end.
    """

    sites: int = 60
    subjects: int = 1500
    countries: int = 8
    seed: int = 1
    months: int = 24
    cuts: int = 0
    start: date = date(2024, 1, 8)
    study_id: str = "RBQM-SYN-01"
    anomalies: tuple[AnomalySpec, ...] = field(default_factory=tuple)
    fmt: Format = "parquet"

    def __post_init__(self) -> None:
        checks = [
            (self.sites >= 1, f"--sites must be at least 1, got {self.sites}"),
            (self.subjects >= 1, f"--subjects must be at least 1, got {self.subjects}"),
            (1 <= self.countries <= len(catalogue()["countries"]),
             f"--countries must be between 1 and {len(catalogue()['countries'])}, got {self.countries}"),
            (self.countries <= self.sites, f"--countries ({self.countries}) cannot exceed --sites ({self.sites})"),
            (1 <= self.months <= 120, f"--months must be between 1 and 120, got {self.months}"),
            (0 <= self.cuts <= self.months, f"--cuts must be between 0 and --months ({self.months}), got {self.cuts}"),
            (self.fmt in FORMATS, f"--format must be one of {', '.join(FORMATS)}, got {self.fmt!r}"),
            (self.sites <= 8999, f"--sites must be at most 8999, got {self.sites}"),
        ]
        for ok, message in checks:
            if not ok:
                raise RbqmError(message)

    @property
    def end(self) -> date:
        """The date of the final data cut: ``start`` plus ``months``."""
        return add_months(self.start, self.months)

    @property
    def end_day(self) -> int:
        """Days from ``start`` to ``end`` (day 0 is the start date)."""
        return (self.end - self.start).days

    def cut_dates(self) -> list[date]:
        """The monthly data-cut dates, oldest first; the last is ``end``."""
        return [add_months(self.start, self.months - self.cuts + k) for k in range(1, self.cuts + 1)]

    def to_day(self, when: date) -> int:
        return (when - self.start).days

    def to_date(self, day: int) -> date:
        return self.start + timedelta(days=int(day))
