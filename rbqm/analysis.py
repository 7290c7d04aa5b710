"""One call from a study folder to its analysis results: ``analyze_study`` and ``write_analysis``.

study folder -> validated tables (rbqm.io) -> analysis tables at the cut (rbqm.derive)
-> KRI results, funnel bounds and site risk (rbqm.kri), for every data cut of the study.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from rbqm.derive import as_of_date, derive_tables
from rbqm.errors import RbqmError, StudyFormatError
from rbqm.io import scan_study
from rbqm.kri import KriResults, add_trend, compute_kris, load_definitions
from rbqm.study import list_cuts

__all__ = ["Analysis", "analyze_study", "analyze_cut", "write_analysis", "OUTPUT_TABLES"]

OUTPUT_TABLES = ("results", "bounds", "site_risk")


@dataclass(frozen=True)
class Analysis:
    """KRI results of one or more data cuts of a study, stacked (``cut_date`` tells them apart)."""

    study_id: str
    cut_dates: list[date]
    results: pl.DataFrame
    bounds: pl.DataFrame
    site_risk: pl.DataFrame


def analyze_cut(folder: Path, *, as_of: date | None = None, kri_dir: Path | None = None) -> tuple[str, date, KriResults]:
    """KRIs of one study folder at ``as_of`` (default: the latest date in its data)."""
    tables = scan_study(folder)
    cut = as_of or as_of_date(tables)
    if cut is None:
        raise StudyFormatError(f"{folder}: no dates in the data; give the data cut with --as-of")
    study_ids = tables["dm"].select(pl.col("STUDYID").drop_nulls().unique()).collect().to_series().to_list()
    if len(study_ids) > 1:
        raise StudyFormatError(f"{folder}/dm: STUDYID holds several studies ({', '.join(sorted(study_ids))})")
    study_id = study_ids[0] if study_ids else Path(folder).name
    results = compute_kris(derive_tables(tables, as_of=cut), load_definitions(kri_dir), study_id=study_id,
                           cut_date=cut)
    return study_id, cut, results


def analyze_study(study_dir: Path, *, as_of: date | None = None, kri_dir: Path | None = None) -> Analysis:
    """KRIs of a study: of every data cut under ``cuts/`` (oldest first) when the study has
    cuts and no ``as_of`` is given, else of the study folder itself; with trends across cuts."""
    study_dir = Path(study_dir)
    folders: list[tuple[Path, date | None]] = [(p, date.fromisoformat(p.name)) for p in list_cuts(study_dir)]
    if as_of is not None or not folders:
        folders = [(study_dir, as_of)]
    runs = [analyze_cut(folder, as_of=when, kri_dir=kri_dir) for folder, when in folders]
    stamp = lambda frame, cut: frame.with_columns(cut_date=pl.lit(cut))  # noqa: E731
    return Analysis(
        study_id=runs[-1][0],
        cut_dates=[cut for _, cut, _ in runs],
        results=add_trend(pl.concat([r.results for _, _, r in runs])),
        bounds=pl.concat([stamp(r.bounds, cut) for _, cut, r in runs if r.bounds.height], how="diagonal_relaxed")
        if any(r.bounds.height for _, _, r in runs) else pl.DataFrame(),
        site_risk=pl.concat([stamp(r.site_risk, cut) for _, cut, r in runs]),
    )


def write_analysis(analysis: Analysis, out_dir: Path) -> list[Path]:
    """Write results, bounds and site_risk as Parquet and CSV into ``out_dir`` (replaced as a whole)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RbqmError(f"{out_dir}: exists and is not a folder")
    staging = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    written = []
    try:
        for name in OUTPUT_TABLES:
            frame: pl.DataFrame = getattr(analysis, name)
            frame.write_parquet(staging / f"{name}.parquet")
            frame.write_csv(staging / f"{name}.csv")
            written += [out_dir / f"{name}.parquet", out_dir / f"{name}.csv"]
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written
