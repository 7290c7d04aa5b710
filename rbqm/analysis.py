"""One call from a study folder to its analysis results: ``analyze_study`` and ``write_analysis``.

study folder -> validated tables (rbqm.io) -> analysis tables at the cut (rbqm.derive)
-> KRI results, funnel bounds and site risk (rbqm.kri), QTL status (rbqm.qtl) and central
statistical monitoring findings (rbqm.csm, with the KRI profile test), for every data cut of the
study; the data inconsistency score (rbqm.csm.data_inconsistency) joins site_risk at the latest cut.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, Literal

import polars as pl

from rbqm.derive import as_of_date, derive_tables
from rbqm.errors import RbqmError, StudyFormatError
from rbqm.io import find_tables, scan_study
from rbqm.csm import CSM_COLUMNS, auto_permutations, data_inconsistency, kri_profile, run_csm
from rbqm.kri import KriResults, add_trend, compute_kris, load_definitions
from rbqm.qtl import compute_qtls, load_qtl_definitions
from rbqm.study import list_cuts

__all__ = ["Analysis", "CutAnalysis", "analyze_study", "analyze_cut", "study_id_of", "write_analysis", "OUTPUT_TABLES",
           "PERMUTATIONS"]

OUTPUT_TABLES = ("results", "bounds", "site_risk", "qtl", "csm")
#: Site-label permutations behind the data inconsistency score in ``rbqm analyze``: "auto" is
#: ``rbqm.csm.auto_permutations`` of the number of sites (20 for up to 100 sites, 2 for 1,000). The
#: Python functions default to 0 (no score): each permutation reruns the whole CSM battery.
PERMUTATIONS = "auto"
Permutations = int | Literal["auto"]
_DIS_SCHEMA = {"site_id": pl.String, "dis": pl.Float64, "dis_rank": pl.Int64}


@dataclass(frozen=True)
class Analysis:
    """KRI, QTL and central-monitoring results of one or more data cuts of a study, stacked
    (``cut_date`` tells the cuts apart)."""

    study_id: str
    cut_dates: list[date]
    results: pl.DataFrame
    bounds: pl.DataFrame
    site_risk: pl.DataFrame
    qtl: pl.DataFrame
    csm: pl.DataFrame


@dataclass(frozen=True)
class CutAnalysis:
    """Everything computed for one study folder at one data cut."""

    study_id: str
    cut_date: date
    kri: KriResults
    qtl: pl.DataFrame
    csm: pl.DataFrame


def _check_permutations(permutations: Any) -> None:
    if permutations == "auto":
        return
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 0:
        raise RbqmError(f"permutations must be a whole number >= 0 (0: no data inconsistency score) or "
                        f"'auto', got {permutations!r}")


def _with_dis(site_risk: pl.DataFrame, dis: pl.DataFrame | None) -> pl.DataFrame:
    """``site_risk`` with each site's ``dis`` and ``dis_rank`` (null without a score)."""
    scores = dis.select(list(_DIS_SCHEMA)) if dis is not None else pl.DataFrame(schema=_DIS_SCHEMA)
    return site_risk.join(scores, on="site_id", how="left", maintain_order="left")


def analyze_cut(folder: Path, *, as_of: date | None = None, kri_dir: Path | None = None,
                csm: bool = True, qtl_limits: Mapping[str, Mapping[str, Any]] | None = None,
                permutations: Permutations = 0) -> CutAnalysis:
    """KRIs, QTLs and (unless ``csm`` is false) central monitoring of one study folder at ``as_of``
    (default: the latest date in its data). ``kri_dir`` replaces the shipped library (kri*.yaml and
    qtl*.yaml); ``qtl_limits`` are the study's own QTL limits (``rbqm.store.qtl.stored_limits``).

    With ``csm``, the ``csm`` table also holds the ``kri_profile`` rows, and ``site_risk`` gets each
    site's data inconsistency score ``dis`` and ``dis_rank`` from ``permutations`` site-label
    permutations (0, the default: no score; the columns are then null, as they are without ``csm``;
    "auto": ``rbqm.csm.auto_permutations`` of the number of sites with findings)."""
    _check_permutations(permutations)
    tables = scan_study(folder)
    cut = as_of or as_of_date(tables)
    if cut is None:
        raise StudyFormatError(f"{folder}: no dates in the data; give the data cut with --as-of")
    study_ids = tables["dm"].select(pl.col("STUDYID").drop_nulls().unique()).collect().to_series().to_list()
    if len(study_ids) > 1:
        raise StudyFormatError(f"{folder}/dm: STUDYID holds several studies ({', '.join(sorted(study_ids))})")
    study_id = study_ids[0] if study_ids else Path(folder).name
    analysis = derive_tables(tables, as_of=cut)
    definitions = load_definitions(kri_dir)
    kri = compute_kris(analysis, definitions, study_id=study_id, cut_date=cut)
    findings, dis = pl.DataFrame(schema=CSM_COLUMNS), None
    if csm:
        findings = run_csm(analysis, study_id=study_id, cut_date=cut)
        if permutations == "auto":
            permutations = auto_permutations(findings["site_id"].n_unique())
        if permutations > 0:
            dis = data_inconsistency(analysis, findings, permutations=permutations, study_id=study_id,
                                     cut_date=cut)
        profile = kri_profile(kri.results, names={d.id: d.name for d in definitions}, study_id=study_id,
                              cut_date=cut)
        findings = pl.concat([findings, profile]).sort(["test", "variable", "site_id"])
    return CutAnalysis(
        study_id=study_id, cut_date=cut,
        kri=replace(kri, site_risk=_with_dis(kri.site_risk, dis)),
        qtl=compute_qtls(analysis, load_qtl_definitions(kri_dir), study_id=study_id, cut_date=cut,
                         limits=qtl_limits),
        csm=findings,
    )


def analyze_study(study_dir: Path, *, as_of: date | None = None, kri_dir: Path | None = None,
                  csm: bool = True, qtl_limits: Mapping[str, Mapping[str, Any]] | None = None,
                  permutations: Permutations = 0, dis_every_cut: bool = False) -> Analysis:
    """KRIs of a study: of every data cut under ``cuts/`` (oldest first) when the study has
    cuts and no ``as_of`` is given, else of the study folder itself; with trends across cuts.

    With ``permutations`` > 0 (``rbqm analyze`` uses ``PERMUTATIONS``), site_risk gets the data
    inconsistency score. It reruns the CSM battery ``permutations`` times, so it is computed at the
    latest cut only (``dis`` and ``dis_rank`` are null at earlier cuts) unless ``dis_every_cut``."""
    study_dir = Path(study_dir)
    _check_permutations(permutations)
    folders: list[tuple[Path, date | None]] = [(p, date.fromisoformat(p.name)) for p in list_cuts(study_dir)]
    if as_of is not None or not folders:
        folders = [(study_dir, as_of)]
    last = len(folders) - 1
    runs = [analyze_cut(folder, as_of=when, kri_dir=kri_dir, csm=csm, qtl_limits=qtl_limits,
                        permutations=permutations if dis_every_cut or i == last else 0)  # type: ignore[arg-type]
            for i, (folder, when) in enumerate(folders)]
    stamp = lambda frame, cut: frame.with_columns(cut_date=pl.lit(cut))  # noqa: E731
    bounds = [stamp(r.kri.bounds, r.cut_date) for r in runs if r.kri.bounds.height]
    return Analysis(
        study_id=runs[-1].study_id,
        cut_dates=[r.cut_date for r in runs],
        results=add_trend(pl.concat([r.kri.results for r in runs])),
        bounds=pl.concat(bounds, how="diagonal_relaxed") if bounds else pl.DataFrame(),
        site_risk=pl.concat([stamp(r.kri.site_risk, r.cut_date) for r in runs]),
        qtl=pl.concat([r.qtl for r in runs]),
        csm=pl.concat([r.csm for r in runs]),
    )


def study_id_of(study_dir: Path) -> str:
    """The STUDYID of a study folder (or of its latest data cut when it holds only cuts)."""
    study_dir = Path(study_dir)
    cuts = list_cuts(study_dir)
    folder = cuts[-1] if cuts and "dm" not in find_tables(study_dir) else study_dir
    ids = scan_study(folder)["dm"].select(pl.col("STUDYID").drop_nulls().unique()).collect().to_series()
    return ids[0] if len(ids) else folder.name


def write_analysis(analysis: Analysis, out_dir: Path, *, extra: Mapping[str, pl.DataFrame] | None = None) -> list[Path]:
    """Write ``OUTPUT_TABLES`` of ``analysis``, and the ``extra`` tables by name (e.g. ``signals`` and
    ``actions``, which ``rbqm analyze`` derives from it), as Parquet and CSV into ``out_dir``.

    ``out_dir`` is replaced as a whole, only once every table is written (a failure leaves it as it was).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RbqmError(f"{out_dir}: exists and is not a folder")
    staging = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    written = []
    try:
        frames = {name: getattr(analysis, name) for name in OUTPUT_TABLES} | dict(extra or {})
        for name, frame in frames.items():
            frame.write_parquet(staging / f"{name}.parquet")
            frame.write_csv(staging / f"{name}.csv")
            written += [out_dir / f"{name}.parquet", out_dir / f"{name}.csv"]
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written
