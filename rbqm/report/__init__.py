"""The oversight report: one study at one data cut, for a sponsor oversight meeting (docs/report.md).

* :func:`build_report` (``rbqm.report.model``): the report as data (polars frames), from an analysis
  and, optionally, the store's records (:func:`read_store`);
* :func:`render_html` and :func:`render_pdf`: a self-contained HTML page and a PDF with the same sections;
* :func:`write_report`: either, chosen by the file's suffix, written atomically.
"""

from rbqm.report._store import StoreRecords, read_store
from rbqm.report.html import render_html
from rbqm.report.make import file_stem, make_report, report_files
from rbqm.report.model import OversightReport, StudyStatus, build_report, restrict_to_cut
from rbqm.report.pdf import render_pdf
from rbqm.report.write import FORMATS, report_format, write_report

__all__ = ["FORMATS", "OversightReport", "StoreRecords", "StudyStatus", "build_report", "file_stem", "make_report",
           "read_store", "render_html", "render_pdf", "report_files", "report_format", "restrict_to_cut",
           "write_report"]
