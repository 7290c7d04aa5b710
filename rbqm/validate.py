"""Validation of a study folder: every problem with its file, column, row (or key) and a plain message.

Errors stop an ingest (missing required tables or columns, values of the wrong type, unparseable
dates, subjects unknown to DM, duplicate keys, unreadable files); warnings are listed and the analysis
proceeds (values outside a codelist, end before start, records after the cut, unknown sites, empty
tables). ``rbqm validate STUDY_DIR`` prints the report; ``--json`` gives it machine-readable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from rbqm.derive import RECORD_DATE, as_of_date, to_date
from rbqm.errors import RbqmError
from rbqm.io import conform, read_parts, study_files
from rbqm.mapping import StudyMapping, apply_mapping
from rbqm.schema import table

__all__ = ["TableFiles", "ValidationReport", "load_table", "scan_validated", "table_files", "validate_study", "ISSUE_SCHEMA", "DATE_PAIRS"]

ISSUE_SCHEMA = {"severity": pl.String, "file": pl.String, "table": pl.String, "column": pl.String,
                "row": pl.Int64, "key": pl.String, "count": pl.Int64, "message": pl.String}

# (table, start, end): an end date before its start date is a warning
DATE_PAIRS = [("dm", "RFSTDTC", "RFENDTC"), ("dm", "RFXSTDTC", "RFXENDTC"), ("ae", "AESTDTC", "AEENDTC"),
              ("ex", "EXSTDTC", "EXENDTC"), ("queries", "QRYOPENDTC", "QRYANSDTC"),
              ("queries", "QRYANSDTC", "QRYCLOSEDTC"), ("pages", "VISITDTC", "ENTRYDTC")]
# SDTM ISO 8601: complete or partial dates, optional time
_ISO_8601 = r"^\d{4}(-\d{2}(-\d{2}(T\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?)?)?)?$"
_EXAMPLES = 3
_UNIQUE_TABLES = {"dm", "sites", "tv"}


@dataclass
class ValidationReport:
    """The problems found in a study folder (one row per problem; see ``ISSUE_SCHEMA``)."""

    folder: Path
    issues: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ISSUE_SCHEMA))

    @property
    def errors(self) -> int:
        return int((self.issues["severity"] == "error").sum())

    @property
    def warnings(self) -> int:
        return int((self.issues["severity"] == "warning").sum())

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return self.errors == 0

    def to_json(self) -> str:
        return json.dumps({"folder": str(self.folder), "ok": self.ok, "errors": self.errors,
                           "warnings": self.warnings, "issues": self.issues.to_dicts()}, indent=2)

    def render(self) -> list[str]:
        """The report as lines of text: a summary, then each problem, errors first."""
        lines = [f"{self.folder}: {self.errors} error(s), {self.warnings} warning(s)"]
        for issue in self.issues.sort("severity", "file", "row", nulls_last=True).iter_rows(named=True):
            where = ", ".join(p for p in (
                issue["file"], issue["column"] and f"column {issue['column']}",
                issue["row"] is not None and f"row {issue['row']}", issue["key"] and f"key {issue['key']}") if p)
            lines.append(f"  {issue['severity'].upper():7} {where}: {issue['message']}")
        return lines


def _issue(severity: str, file: str, tbl: str, message: str, *, column: str | None = None,
           row: int | None = None, key: str | None = None, count: int | None = None) -> dict:
    return {"severity": severity, "file": file, "table": tbl, "column": column, "row": row, "key": key,
            "count": count, "message": message}


def _first(frame: pl.DataFrame, mask: pl.Expr) -> tuple[int, int | None, pl.DataFrame]:
    """How many rows match, the first one's 1-based row number, and the matching rows."""
    hits = frame.with_row_index("_row", offset=1).filter(mask)
    return hits.height, (int(hits["_row"][0]) if hits.height else None), hits


def _check_table(name: str, frame: pl.DataFrame, file: str, subjects: pl.Series | None,
                 as_of: date | None) -> list[dict]:
    spec = table(name)
    out: list[dict] = []
    if frame.height == 0:
        if name == "dm":
            return [_issue("error", file, name, "dm has no subjects")]
        return [_issue("warning", file, name, "the table is empty")]
    for column in spec.columns:
        if column.name not in frame.columns:
            if column.required:
                out.append(_issue("error", file, name, "required column is missing", column=column.name))
            continue
        col = pl.col(column.name)
        if column.required:
            n, row, _ = _first(frame, col.is_null())
            if n:
                out.append(_issue("error", file, name, f"required value is empty in {n} row(s)",
                                  column=column.name, row=row, count=n))
        if column.values:
            n, row, hits = _first(frame, col.is_not_null() & ~col.is_in(list(column.values)))
            if n:
                seen = ", ".join(repr(v) for v in hits[column.name].unique(maintain_order=True).head(_EXAMPLES))
                out.append(_issue("warning", file, name, f"{n} value(s) outside the codelist "
                                  f"({', '.join(column.values)}), e.g. {seen}", column=column.name, row=row, count=n))
        if column.type == "datetime":
            valid = col.str.contains(_ISO_8601) & (to_date(column.name).is_not_null())
            n, row, hits = _first(frame, col.is_not_null() & ~valid)
            if n:
                out.append(_issue("error", file, name, f"{n} value(s) are not ISO 8601 dates, e.g. "
                                  f"{hits[column.name][0]!r}", column=column.name, row=row, count=n))
    key = [c for c in spec.key if c in frame.columns]
    if key and len(key) == len(spec.key):
        dupes = frame.with_row_index("_row", offset=1).filter(pl.len().over(key) > 1)
        if dupes.height:
            first = dupes.row(0, named=True)
            # a subject or site twice makes everything after ambiguous; repeated records are reported
            severity = "error" if name in _UNIQUE_TABLES else "warning"
            out.append(_issue(severity, file, name, f"{dupes.height} rows share their key ({', '.join(key)}) "
                              "with another row", row=int(first["_row"]),
                              key="/".join(str(first[k]) for k in key), count=dupes.height))
    if subjects is not None and name != "dm" and "USUBJID" in frame.columns:
        n, row, hits = _first(frame, pl.col("USUBJID").is_not_null() & ~pl.col("USUBJID").is_in(subjects.implode()))
        if n:
            out.append(_issue("error", file, name, f"{n} row(s) belong to subjects not in dm, e.g. "
                              f"{hits['USUBJID'][0]!r}", column="USUBJID", row=row, key=hits["USUBJID"][0], count=n))
    for tbl, start, end in DATE_PAIRS:
        if tbl == name and start in frame.columns and end in frame.columns:
            n, row, _ = _first(frame, to_date(end, impute="last") < to_date(start))
            if n:
                out.append(_issue("warning", file, name, f"{end} before {start} in {n} row(s)", column=end,
                                  row=row, count=n))
    if as_of is not None and RECORD_DATE.get(name) in frame.columns:
        n, row, _ = _first(frame, to_date(RECORD_DATE[name]) > as_of)
        if n:
            out.append(_issue("warning", file, name, f"{n} record(s) dated after the cut ({as_of}) are left out",
                              column=RECORD_DATE[name], row=row, count=n))
    return out


@dataclass(frozen=True)
class TableFiles:
    """Where one table comes from: a whole file or the parts of a split domain, plus SUPP-- files."""

    name: str
    paths: tuple[Path, ...]
    supps: tuple[Path, ...] = ()

    @property
    def label(self) -> str:
        return ", ".join(p.name for p in self.paths)


def table_files(folder: Path) -> dict[str, TableFiles]:
    files, supps = study_files(folder)
    return {name: TableFiles(name, tuple(paths), tuple(supps.get(name, ()))) for name, paths in files.items()}


def load_table(source: TableFiles, mapping: StudyMapping | None = None) -> pl.DataFrame:
    """One table read (parts stacked, qualifiers attached), mapped and typed; problems raise ``RbqmError``."""
    frame = read_parts(source.name, list(source.paths), list(source.supps))
    frame = apply_mapping({source.name: frame}, mapping)[source.name]
    return conform(frame, source.name, source=source.label)


def scan_validated(folder: Path, *, as_of: date | None = None, mapping: StudyMapping | None = None,
                   ) -> tuple[ValidationReport, dict[str, TableFiles], date | None]:
    """Check every table of a study folder, holding one table in memory at a time (dm stays).

    Returns the report, the files that could be read, and the latest date found (the default cut).
    A file that cannot be read at all is an error in the report, so one bad file hides no other.
    """
    folder = Path(folder)
    issues: list[dict] = []
    files: dict[str, TableFiles] = {}
    latest: list[date] = []
    try:
        paths = table_files(folder)
    except RbqmError as exc:
        return ValidationReport(folder, pl.DataFrame([_issue("error", str(folder), "", str(exc))],
                                                     schema=ISSUE_SCHEMA)), {}, None

    def load(name: str) -> pl.DataFrame | None:
        try:
            frame = load_table(paths[name], mapping)
        except RbqmError as exc:
            message = str(exc)
            for path in paths[name].paths:
                message = message.removeprefix(f"{path}: ")
            issues.append(_issue("error", paths[name].label, name, message))
            return None
        files[name] = paths[name]
        found = as_of_date({name: frame, "dm": frame if name == "dm" else pl.DataFrame()})
        if found:
            latest.append(found)
        return frame

    if "dm" not in paths:
        issues.append(_issue("error", "dm", "dm", "the required table dm is missing (dm.parquet, dm.csv, dm.xpt, ...)"))
    dm = load("dm") if "dm" in paths else None
    subjects = dm["USUBJID"] if dm is not None and "USUBJID" in dm.columns else None
    if dm is not None:
        issues += _check_table("dm", dm, paths["dm"].label, None, as_of) + _study_checks(dm, paths["dm"].label)
    for name in [n for n in paths if n != "dm"]:
        frame = load(name)
        if frame is not None:
            issues += _check_table(name, frame, paths[name].label, subjects, as_of)
            if name == "sites" and dm is not None:
                issues += _unknown_sites(dm, frame, paths["dm"].label)
        del frame
    report = ValidationReport(folder, pl.DataFrame(issues, schema=ISSUE_SCHEMA))
    return report, files, max(latest) if latest else None


def _study_checks(dm: pl.DataFrame, file: str) -> list[dict]:
    if "STUDYID" in dm.columns and dm["STUDYID"].drop_nulls().n_unique() > 1:
        return [_issue("error", file, "dm", "STUDYID holds several studies: "
                       + ", ".join(sorted(dm["STUDYID"].drop_nulls().unique())), column="STUDYID")]
    return []


def _unknown_sites(dm: pl.DataFrame, sites: pl.DataFrame, file: str) -> list[dict]:
    if "SITEID" not in sites.columns or "SITEID" not in dm.columns:
        return []
    n, row, hits = _first(dm, pl.col("SITEID").is_not_null() & ~pl.col("SITEID").is_in(sites["SITEID"].implode()))
    if not n:
        return []
    return [_issue("warning", file, "dm", f"{n} subject(s) at sites not in the sites table, e.g. "
                   f"{hits['SITEID'][0]!r}", column="SITEID", row=row, key=hits["SITEID"][0], count=n)]


def validate_study(folder: Path, *, as_of: date | None = None, mapping: StudyMapping | None = None,
                   ) -> ValidationReport:
    """Read every table of a study folder and report every problem (``ValidationReport``)."""
    return scan_validated(folder, as_of=as_of, mapping=mapping)[0]
