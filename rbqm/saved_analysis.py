"""Analyses kept on disk, keyed by what they were computed from: ``saved_analysis`` and ``read_analysis``.

An analysis of a study is a pure function of its files (the study folder and its cuts), the KRI and
QTL library and the options, so it is computed once and read back afterwards: the dashboard opens a
1,000-site study in seconds instead of rerunning central monitoring, and shows the data
inconsistency score, whose site-label permutations are too slow to compute on a page load.

The key (:func:`analysis_key`) hashes the name, size and modification time of every file of the
study folder, of the library and of the engine's source, and the options; any change gives a new
key, so a stale analysis is never read. Entries are folders of Parquet files written by
``rbqm.analysis.write_analysis`` (atomically) under the cache folder, each naming its study folder in
``source.txt``; only the :data:`KEEP_PER_STUDY` most recently used entries of a study are kept (at
1,000 sites an entry is over 100 MB, and every change to the data or the engine makes a new one).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import date
from pathlib import Path

import polars as pl

from rbqm.analysis import OUTPUT_TABLES, PERMUTATIONS, Analysis, Permutations, analyze_study, write_analysis
from rbqm.errors import RbqmError
from rbqm.kri.definition import DEFAULT_LIBRARY

__all__ = ["KEEP_PER_STUDY", "analysis_key", "read_analysis", "saved_analysis"]

#: Saved analyses kept per study folder (the most recently used); older ones are deleted.
KEEP_PER_STUDY = 2
_SOURCE = "source.txt"


_ENGINE = Path(__file__).resolve().parent


def _file_stamps(folder: Path, suffixes: tuple[str, ...] | None = None) -> list[str]:
    """``relative path, size, mtime`` of every file under ``folder`` (hidden folders left out; only
    the given suffixes when ``suffixes``)."""
    stamps = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if (path.is_file() and not any(part.startswith(".") for part in relative.parts)
                and (suffixes is None or path.suffix in suffixes)):
            info = path.stat()
            stamps.append(f"{relative.as_posix()}\0{info.st_size}\0{info.st_mtime_ns}")
    return stamps


def analysis_key(study_dir: Path, *, kri_dir: Path | None = None, permutations: Permutations = PERMUTATIONS) -> str:
    """A hash of everything an analysis of ``study_dir`` depends on: its files, the library's files,
    ``permutations`` and the engine's own source files (so a changed rbqm never reads an old analysis).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "dm.csv").write_text("STUDYID\\n")
    >>> key = analysis_key(folder)
    >>> key == analysis_key(folder), key == analysis_key(folder, permutations=0)
    (True, False)
    """
    digest = hashlib.sha256()
    parts = (("study", Path(study_dir), None), ("library", Path(kri_dir or DEFAULT_LIBRARY), None),
             ("engine", _ENGINE, (".py", ".yaml")))
    for name, folder, suffixes in parts:
        digest.update(f"{name}\n".encode())
        digest.update("\n".join(_file_stamps(folder, suffixes)).encode())
    digest.update(json.dumps({"permutations": permutations}).encode())
    return digest.hexdigest()[:20]


def read_analysis(folder: Path) -> Analysis:
    """The analysis written by ``rbqm.analysis.write_analysis`` (``rbqm analyze --out``) into ``folder``.

    Raises
    ------
    RbqmError
        When a table is missing or unreadable (naming it).
    """
    folder = Path(folder)
    frames = {}
    for name in OUTPUT_TABLES:
        path = folder / f"{name}.parquet"
        try:
            frames[name] = pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise RbqmError(f"{path}: cannot read this saved analysis table ({exc}); run rbqm analyze again") from exc
    results = frames["results"]
    if results.is_empty():
        raise RbqmError(f"{folder / 'results.parquet'}: the saved analysis holds no results; run rbqm analyze again")
    cut_dates: list[date] = sorted(results["cut_date"].unique().to_list())
    return Analysis(study_id=results["study_id"][0], cut_dates=cut_dates, **frames)


def saved_analysis(study_dir: Path, cache_dir: Path, *, kri_dir: Path | None = None,
                   permutations: Permutations = PERMUTATIONS) -> Analysis:
    """``analyze_study(study_dir, kri_dir=..., permutations=...)``, read from ``cache_dir`` when it was
    computed from the same files before, else computed and saved there.

    Parameters
    ----------
    study_dir : Path
        The study folder (with its ``cuts/``).
    cache_dir : Path
        Where analyses are kept, one folder per :func:`analysis_key`; created when missing.
    kri_dir : Path, optional
        A folder of KRI and QTL definitions instead of the shipped library.
    permutations : int or "auto", default "auto"
        Site-label permutations behind the data inconsistency score (as ``rbqm analyze``).

    Returns
    -------
    Analysis
        Equal to a fresh ``analyze_study`` of the same files.
    """
    entry = Path(cache_dir) / analysis_key(study_dir, kri_dir=kri_dir, permutations=permutations)
    source = str(Path(study_dir).resolve())
    if (entry / "results.parquet").exists():
        try:
            analysis = read_analysis(entry)
        except RbqmError:
            pass  # an unreadable entry is recomputed and replaced below
        else:
            (entry / _SOURCE).write_text(source)  # used now: kept longest
            return analysis
    analysis = analyze_study(study_dir, kri_dir=kri_dir, permutations=permutations)
    write_analysis(analysis, entry)
    (entry / _SOURCE).write_text(source)
    _prune(Path(cache_dir), source)
    return analysis


def _prune(cache_dir: Path, source: str) -> None:
    """Delete all but the :data:`KEEP_PER_STUDY` most recently used entries of the study ``source``."""
    mine = [(marker.stat().st_mtime, marker.parent) for marker in cache_dir.glob(f"*/{_SOURCE}")
            if marker.read_text() == source]
    for _, entry in sorted(mine, key=lambda item: item[0], reverse=True)[KEEP_PER_STUDY:]:
        shutil.rmtree(entry, ignore_errors=True)
