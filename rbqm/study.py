"""A study folder at a glance: its tables, size, sites and countries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from rbqm.errors import StudyFormatError
from rbqm.io import find_tables, read_study

__all__ = ["StudySummary", "summarize_study", "list_cuts", "cut_folder"]


@dataclass(frozen=True)
class StudySummary:
    """Counts that describe one study folder (one data cut)."""

    study_id: str
    folder: Path
    tables: dict[str, int]
    """Rows per table present."""
    screened: int
    enrolled: int
    sites: int
    countries: int
    first_consent: str | None
    last_date: str | None
    """Latest date found in DM (consent, reference start or end): a proxy for the cut date."""
    site_enrolment: pl.DataFrame
    """One row per site: SITEID, COUNTRY, screened, enrolled (sorted by SITEID)."""


def summarize_study(folder: Path) -> StudySummary:
    """Summarise a study folder: rows per table, subjects, sites and countries.

    Enrolled subjects are those randomised (a reference start date and an arm other
    than SCRNFAIL); ``rbqm info STUDY_DIR`` prints this summary.
    """
    data = read_study(folder)
    dm = data["dm"]
    arm = pl.col("ARMCD").str.to_uppercase()
    enrolled = ~arm.is_in(["SCRNFAIL", "NOTASSGN"]).fill_null(False) & pl.col("RFSTDTC").is_not_null()
    per_site = (
        dm.group_by("SITEID", "COUNTRY")
        .agg(screened=pl.len(), enrolled=enrolled.sum())
        .sort("SITEID")
    )
    dates = pl.concat_list(pl.col("RFICDTC", "RFSTDTC", "RFENDTC").str.slice(0, 10))
    last = dm.select(dates.list.drop_nulls().list.max().max()).item()
    return StudySummary(
        study_id=str(dm["STUDYID"].drop_nulls().first() or Path(folder).name),
        folder=Path(folder),
        tables={name: frame.height for name, frame in data.items()},
        screened=dm.height,
        enrolled=int(dm.select(enrolled.sum()).item()),
        sites=per_site["SITEID"].n_unique(),
        countries=per_site["COUNTRY"].n_unique(),
        first_consent=dm["RFICDTC"].str.slice(0, 10).min(),
        last_date=last,
        site_enrolment=per_site,
    )


def list_cuts(folder: Path) -> list[Path]:
    """The data-cut sub-folders of a study folder (``cuts/YYYY-MM-DD``), oldest first."""
    cuts = Path(folder) / "cuts"
    if not cuts.is_dir():
        return []
    return sorted(p for p in cuts.iterdir() if p.is_dir() and find_tables(p).get("dm"))


def cut_folder(folder: Path, cut: str | None) -> Path:
    """The folder holding a study at data cut ``cut`` (``YYYY-MM-DD``, one of :func:`list_cuts`), or, for
    None, the study folder itself (its latest cut when it holds only cuts).

    Raises
    ------
    StudyFormatError
        When ``cut`` is not one of the study's data cuts, naming those it has.
    """
    cuts = {path.name: path for path in list_cuts(Path(folder))}
    if cut is None:
        has_tables = "dm" in find_tables(Path(folder))
        return Path(folder) if has_tables or not cuts else cuts[max(cuts)]
    if cut not in cuts:
        raise StudyFormatError(f"{folder}: no data cut {cut!r}; choose one of {', '.join(sorted(cuts)) or '(none)'}")
    return cuts[cut]
