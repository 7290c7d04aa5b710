"""The risk assessment as a spreadsheet: ``rbqm risk export --format xlsx`` and the dashboard's download.

One sheet each for the overall study risk (with its categories), the register, the gaps and the
review proposals (with the quality lead's decisions when the store's are given). Written with
polars' ``write_excel`` (xlsxwriter); list columns are joined as in ``rbqm.risk.flat_register``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import polars as pl
from xlsxwriter import Workbook

from rbqm.risk import RiskReport, flat_register, review_queue

__all__ = ["SHEETS", "export_tables", "write_workbook", "workbook_bytes"]

#: The workbook's sheets, in order: key of :func:`export_tables` -> sheet name.
SHEETS = {"study": "Study risk", "register": "Register", "gaps": "Gaps", "proposals": "Review proposals"}


def _study_sheet(report: RiskReport) -> pl.DataFrame:
    categories = report.study.categories.with_columns(pl.col("risks").cast(pl.Int64), pl.col("score").cast(pl.Float64))
    overall = pl.DataFrame({"category": ["(study)"], "name": ["Overall study risk"],
                            "weight": [float(categories["weight"].sum())], "risks": [report.register.height],
                            "score": [round(report.study.score, 4)], "level": [report.study.level]},
                           schema=categories.schema)
    return pl.concat([overall, categories]).with_columns(study_id=pl.lit(report.study_id),
                                                         cut_date=pl.lit(report.cut_date, pl.Date))


def export_tables(report: RiskReport, decisions: pl.DataFrame | None = None) -> dict[str, pl.DataFrame]:
    """The frames of the workbook, keyed as :data:`SHEETS`.

    ``decisions`` (``rbqm.store.risks.list_decisions``) adds each proposal's decision at the report's
    cut and the latest earlier one (``rbqm.risk.review_queue``); the time of a decision is written as
    ISO text (Excel has no time zones).

    Examples
    --------
    >>> from datetime import date
    >>> from rbqm.analysis import Analysis
    >>> from rbqm.csm import CSM_COLUMNS
    >>> from rbqm.risk import assess_risks, load_risk_register
    >>> empty = Analysis("S", [date(2025, 1, 1)], pl.DataFrame(), pl.DataFrame(), pl.DataFrame(),
    ...     pl.DataFrame(), pl.DataFrame(schema=CSM_COLUMNS))
    >>> tables = export_tables(assess_risks(load_risk_register(), empty))
    >>> list(tables), tables["study"].row(0)[:2], tables["register"].height, tables["proposals"].height
    (['study', 'register', 'gaps', 'proposals'], ('(study)', 'Overall study risk'), 12, 0)
    """
    proposals = report.proposals
    if decisions is not None:
        proposals = review_queue(proposals, decisions, report.cut_date).with_columns(
            pl.col("decided_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return {"study": _study_sheet(report), "register": flat_register(report), "gaps": report.gaps,
            "proposals": proposals}


def write_workbook(report: RiskReport, target: Path | BinaryIO, *, decisions: pl.DataFrame | None = None) -> None:
    """Write the risk assessment as an Excel workbook (:data:`SHEETS`) to a file or a binary stream."""
    target = str(target) if isinstance(target, Path) else target
    with Workbook(target, {"in_memory": True}) as workbook:
        for key, frame in export_tables(report, decisions).items():
            frame.write_excel(workbook=workbook, worksheet=SHEETS[key], autofit=True, freeze_panes=(1, 0))


def workbook_bytes(report: RiskReport, *, decisions: pl.DataFrame | None = None) -> bytes:
    """:func:`write_workbook` into memory (for a download button)."""
    buffer = io.BytesIO()
    write_workbook(report, buffer, decisions=decisions)
    return buffer.getvalue()
