"""Writing a rendered report: the format from the file's suffix, atomically (temporary file, then rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rbqm.errors import RbqmError
from rbqm.report.html import render_html
from rbqm.report.model import OversightReport
from rbqm.report.pdf import render_pdf

__all__ = ["FORMATS", "report_format", "write_report"]

FORMATS = {".html": "html", ".htm": "html", ".pdf": "pdf"}
"""File suffix -> report format."""


def report_format(path: Path) -> str:
    """``html`` or ``pdf`` from the suffix of ``path``.

    Raises
    ------
    RbqmError
        For any other suffix.

    Examples
    --------
    >>> report_format(Path("oversight.PDF"))
    'pdf'
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise RbqmError(f"{path}: the report's file name must end in .html or .pdf (got {suffix or 'no suffix'!r})")
    return FORMATS[suffix]


def render(report: OversightReport, fmt: str) -> bytes:
    """The report rendered as ``html`` (UTF-8) or ``pdf``."""
    return render_html(report).encode("utf-8") if fmt == "html" else render_pdf(report)


def write_report(report: OversightReport, path: Path) -> Path:
    """Render ``report`` in the format of ``path``'s suffix and write it there atomically.

    The file is written next to its destination under a temporary name and renamed over it, so a
    reader never sees half a report and a failure leaves any earlier file as it was.

    Raises
    ------
    RbqmError
        When the suffix is not .html or .pdf, or the folder does not exist or cannot be written.
    """
    path = Path(path)
    data = render(report, report_format(path))
    folder = path.parent
    if not folder.is_dir():
        raise RbqmError(f"{path}: cannot write the report: folder {folder} does not exist")
    if path.is_dir():
        raise RbqmError(f"{path}: cannot write the report: it is a folder")
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        raise RbqmError(f"{path}: cannot write the report: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise RbqmError(f"{path}: cannot write the report: {exc.strerror or exc}") from exc
    return path
