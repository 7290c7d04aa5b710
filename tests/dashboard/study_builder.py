"""A tiny hand-made study folder for dashboard tests, with its counts written down by hand.

Two sites in two countries, six subjects (one screen failure) and one data cut,
``cuts/2024-03-31``, with four of them. The expected numbers in ``EXPECTED`` are
counted from the rows below, not computed with rbqm, so the tests can catch a wrong
summary as well as a wrong page.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rbqm.io import write_table
from rbqm.schema import polars_schema

__all__ = ["CUT", "EXPECTED", "STUDY_ID", "build_study"]

STUDY_ID = "TINY-01"
CUT = "2024-03-31"

_SITES = [
    {"SITEID": "101", "COUNTRY": "FRA", "REGION": "Europe", "INVNAM": "Dr Martin",
     "ACTIVATIONDTC": "2024-01-02", "PLANNEDENR": 3},
    {"SITEID": "102", "COUNTRY": "DEU", "REGION": "Europe", "INVNAM": "Dr Weber",
     "ACTIVATIONDTC": "2024-01-05", "PLANNEDENR": 4},
]

# (USUBJID, SITEID, COUNTRY, RFICDTC consent, RFSTDTC randomised, RFENDTC last contact, ARMCD)
_SUBJECTS = [
    ("TINY-01-101-001", "101", "FRA", "2024-01-10", "2024-01-20", "2024-05-30", "A"),
    ("TINY-01-101-002", "101", "FRA", "2024-04-02", "2024-04-12", None, "B"),
    ("TINY-01-102-001", "102", "DEU", "2024-01-15", "2024-01-25", None, "A"),
    ("TINY-01-102-002", "102", "DEU", "2024-02-01", None, None, "SCRNFAIL"),
    ("TINY-01-102-003", "102", "DEU", "2024-02-20", "2024-03-01", None, "B"),
    ("TINY-01-102-004", "102", "DEU", "2024-05-03", "2024-05-13", None, "A"),
]
"""The full study."""

_CUT_SUBJECTS = [
    ("TINY-01-101-001", "101", "FRA", "2024-01-10", "2024-01-20", None, "A"),
    ("TINY-01-102-001", "102", "DEU", "2024-01-15", "2024-01-25", None, "A"),
    ("TINY-01-102-002", "102", "DEU", "2024-02-01", None, None, "SCRNFAIL"),
    ("TINY-01-102-003", "102", "DEU", "2024-02-20", "2024-03-01", None, "B"),
]
"""The study as it was on CUT: subjects consented by then, without later dates."""

EXPECTED: dict[str | None, dict[str, int | str]] = {
    None: {"screened": 6, "enrolled": 5, "sites": 2, "countries": 2, "last_date": "2024-05-30",
           "dm_rows": 6, "enrolled_101": 2, "enrolled_102": 3},
    CUT: {"screened": 4, "enrolled": 3, "sites": 2, "countries": 2, "last_date": "2024-03-01",
          "dm_rows": 4, "enrolled_101": 1, "enrolled_102": 2},
}
"""Counts by hand, for the full study (key None) and for the cut (key CUT)."""


def _dm(subjects: list[tuple[str, str, str, str, str | None, str | None, str]]) -> pl.DataFrame:
    rows = [
        {"STUDYID": STUDY_ID, "USUBJID": usubjid, "SITEID": site, "COUNTRY": country,
         "RFICDTC": consent, "RFSTDTC": start, "RFENDTC": end, "ARMCD": arm,
         "AGE": 40 + i, "SEX": "F" if i % 2 else "M"}
        for i, (usubjid, site, country, consent, start, end, arm) in enumerate(subjects)
    ]
    return pl.DataFrame(rows, schema=polars_schema("dm"))


def build_study(folder: Path) -> Path:
    """Write the tiny study (dm and sites, Parquet) and its data cut into ``folder``; return it.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     sorted(p.name for p in build_study(Path(tmp) / "demo").rglob("*.parquet"))
    ['dm.parquet', 'dm.parquet', 'sites.parquet', 'sites.parquet']
    """
    folder = Path(folder)
    sites = pl.DataFrame(_SITES, schema=polars_schema("sites"))
    write_table(_dm(_SUBJECTS), folder, "dm", fmt="parquet")
    write_table(sites, folder, "sites", fmt="parquet")

    cut_folder = folder / "cuts" / CUT
    write_table(_dm(_CUT_SUBJECTS), cut_folder, "dm", fmt="parquet")
    write_table(sites, cut_folder, "sites", fmt="parquet")
    return folder
