"""Ingest a study export into the data directory as an immutable data-cut snapshot.

study folder (+ mapping) -> read and validated tables -> records up to the cut -> Parquet snapshot in
``DATA_DIR/STUDY/cuts/YYYY-MM-DD/`` with ``manifest.json`` (source files and their SHA-256, rows,
mapping, warnings) and ``validation.json``. The snapshot is written beside its place and moved in at
the end, so a failed ingest leaves the data directory as it was; an existing snapshot is never
overwritten (delete it first with ``rbqm cuts delete``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from rbqm import __version__
from rbqm.derive import RECORD_DATE, to_date
from rbqm.errors import RbqmError, StudyFormatError
from rbqm.mapping import load_mapping
from rbqm.validate import ValidationReport, load_table, scan_validated

__all__ = ["IngestError", "Snapshot", "data_dir", "delete_snapshot", "ingest_study", "list_snapshots",
           "snapshot_path"]

_STUDY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class IngestError(RbqmError):
    """Validation found errors; ``report`` holds them all."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__("\n".join(report.render()))


@dataclass(frozen=True)
class Snapshot:
    """One ingested data cut."""

    study_id: str
    cut: date
    path: Path
    rows: dict[str, int]
    report: ValidationReport


def data_dir(option: Path | None = None) -> Path:
    """The data directory: the option, else ``$RBQM_DATA_DIR``, else ``./data``."""
    return Path(option or os.environ.get("RBQM_DATA_DIR") or "data")


def snapshot_path(root: Path, study_id: str, cut: date) -> Path:
    if not _STUDY_ID.match(study_id):
        raise RbqmError(f"study id {study_id!r} must be letters, digits, '.', '_' or '-' (at most 64), "
                        "starting with a letter or digit")
    return Path(root) / study_id / "cuts" / cut.isoformat()


def _up_to(name: str, frame: pl.DataFrame, cut: date) -> pl.DataFrame:
    """The records of a table known by the cut: dated on or before it (undated records are kept)."""
    column = RECORD_DATE.get(name) or ("RFICDTC" if name == "dm" else None)
    if column is None or column not in frame.columns:
        return frame
    dated = to_date(column)
    if name == "dm" and "RFSTDTC" in frame.columns:  # RFSTDTC is optional: without it, consent alone dates
        dated = pl.coalesce(dated, to_date("RFSTDTC"))
    return frame.filter(dated.is_null() | (dated <= cut))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ingest_study(folder: Path, study_id: str, *, root: Path | None = None, as_of: date | None = None,
                 mapping_file: Path | None = None) -> Snapshot:
    """Validate a study export and store it as the snapshot of its data cut.

    Raises
    ------
    IngestError
        When validation finds errors (nothing is written).
    RbqmError
        When the snapshot exists already, or the study id or folder is unusable.
    """
    root = data_dir(root)
    mapping = load_mapping(mapping_file) if mapping_file else None
    report, files, latest = scan_validated(folder, as_of=as_of, mapping=mapping)  # pass 1: check everything
    if not report.ok:
        raise IngestError(report)
    cut = as_of or latest
    if cut is None:
        raise StudyFormatError(f"{folder}: no dates in the data; give the data cut with --as-of")
    target = snapshot_path(root, study_id, cut)
    if target.exists():
        raise RbqmError(f"{target}: a snapshot of {study_id} at {cut} exists already; snapshots are immutable "
                        f"(rbqm cuts delete {study_id} {cut} --yes, then ingest again)")
    staging = target.parent / f".{cut.isoformat()}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    rows = {}
    try:
        for name, source in files.items():  # pass 2: one table in memory at a time
            kept = _up_to(name, load_table(source, mapping), cut)
            kept.write_parquet(staging / f"{name}.parquet", compression="zstd")
            rows[name] = kept.height
            del kept
        manifest = {
            "study_id": study_id, "cut_date": cut.isoformat(), "ingested_at": datetime.now(UTC).isoformat(),
            "rbqm_version": __version__, "source": str(Path(folder).resolve()),
            "files": {name: [{"file": p.name, "sha256": _sha256(p)} for p in (*source.paths, *source.supps)]
                      for name, source in files.items()},
            "rows": rows, "mapping": mapping.model_dump(by_alias=True) if mapping else None,
            "warnings": report.warnings,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
        (staging / "validation.json").write_text(report.to_json())
        for path in staging.iterdir():
            path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # snapshots are read-only
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Snapshot(study_id, cut, target, rows, report)


def list_snapshots(root: Path | None, study_id: str) -> pl.DataFrame:
    """One row per snapshot of a study: cut_date, subjects, tables, rows, ingested_at, source."""
    folder = data_dir(root) / study_id / "cuts"
    if not folder.is_dir():
        raise RbqmError(f"{folder}: no snapshots of study {study_id!r} in {data_dir(root)}")
    rows = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        manifest_file = path / "manifest.json"
        manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
        counts = manifest.get("rows") or {p.stem: pl.scan_parquet(p).select(pl.len()).collect().item()
                                          for p in path.glob("*.parquet")}
        rows.append({"cut_date": path.name, "subjects": counts.get("dm"), "tables": len(counts),
                     "rows": sum(counts.values()), "ingested_at": manifest.get("ingested_at"),
                     "source": manifest.get("source")})
    return pl.DataFrame(rows, schema={"cut_date": pl.String, "subjects": pl.Int64, "tables": pl.Int64,
                                      "rows": pl.Int64, "ingested_at": pl.String, "source": pl.String})


def delete_snapshot(root: Path | None, study_id: str, cut: str) -> Path:
    """Remove one snapshot (the only way to replace it)."""
    try:
        when = date.fromisoformat(cut)
    except ValueError as exc:
        raise RbqmError(f"cut must be an ISO 8601 date such as 2025-06-30, got {cut!r}") from exc
    target = snapshot_path(data_dir(root), study_id, when)
    if not target.is_dir():
        raise RbqmError(f"{target}: no such snapshot")
    for path in target.iterdir():
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    shutil.rmtree(target)
    return target
