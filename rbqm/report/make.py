"""One call from an analysis (and the store, when there is one) to the report and its files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from rbqm.analysis import Analysis
from rbqm.report._store import read_store
from rbqm.report.html import render_html
from rbqm.report.model import OversightReport, build_report
from rbqm.report.pdf import render_pdf
from rbqm.store import Store

__all__ = ["make_report", "report_files", "file_stem"]


def make_report(analysis: Analysis, *, study_dir: Path, store: Store | None = None, actor: str | None = None,
                cut: date | None = None, top: int = 10, kri_dir: Path | None = None) -> OversightReport:
    """:func:`~rbqm.report.model.build_report` with the store's records of the study read as ``actor``
    (when ``store`` is given)."""
    records = None
    if store is not None:
        if not actor:
            raise ValueError("make_report: reading the store needs the acting user (actor=)")
        records = read_store(store, actor, analysis.study_id, library=kri_dir)
    return build_report(analysis, study_dir=study_dir, cut=cut, top=top, records=records, kri_dir=kri_dir)


def file_stem(report: OversightReport) -> str:
    """A file name (without suffix) for the report: ``oversight-STUDY-CUT``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> file_stem(SimpleNamespace(study_id="RBQM SYN/01", cut_date=date(2025, 1, 8)))
    'oversight-RBQM-SYN-01-2025-01-08'
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in report.study_id)
    return f"oversight-{safe}-{report.cut_date.isoformat()}"


def report_files(report: OversightReport) -> dict[str, bytes]:
    """The report rendered: ``{"html": UTF-8 bytes, "pdf": bytes}``."""
    return {"html": render_html(report).encode("utf-8"), "pdf": render_pdf(report)}
