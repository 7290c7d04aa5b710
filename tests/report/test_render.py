"""The rendered report: a self-contained HTML page with every section, and a valid PDF with the same."""

from __future__ import annotations

import io
import re
from dataclasses import replace

import polars as pl
import pytest
from pypdf import PdfReader

from rbqm.report import render_html, render_pdf
from rbqm.report.layout import SECTIONS, Table, fmt_number, iter_tables, layout_report
from rbqm.report.palette import FLAG_COLOURS, FLAG_SYMBOLS


@pytest.fixture(scope="module")
def html(report) -> str:
    return render_html(report)


@pytest.fixture(scope="module")
def pdf(report) -> bytes:
    return render_pdf(report)


def pdf_text(data: bytes, *, first: int | None = None) -> str:
    """The text of the pages of a PDF (every page, or the ``first`` few), as a reader extracts it (pypdf),
    lines joined by spaces."""
    pages = PdfReader(io.BytesIO(data)).pages[:first]
    return " ".join(" ".join(page.extract_text().split()) for page in pages)


def test_html_is_self_contained(html):
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"<(?:script|link|iframe|img)\b", html, re.I)
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", html, re.I)
    assert "@import" not in html
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")


def test_html_has_every_section_and_its_content(html, report):
    for key, title in SECTIONS.items():
        assert f'<section id="{key}">' in html and f"<h2>{title}</h2>" in html
    assert report.study_id in html and report.cut_date.isoformat() in html
    for site in report.top_sites["site_id"]:
        assert f"<td>{site}</td>" in html
    assert "<svg" in html  # enrolment against plan
    # the heatmap: one row per site, each flagged cell with its colour and symbol
    assert html.count('<th class="site">') == report.site_risk.height
    red_high = report.heatmap.filter(pl.col("flag") == 2).height
    assert html.count(f'background:{FLAG_COLOURS[2]};color:#ffffff" title="Site') == red_high
    assert f">{FLAG_SYMBOLS[2]}</td>" in html


def test_html_escapes_the_data(report):
    page = render_html(replace(report, study_id="<b>S&1</b>"))
    assert "<b>S&1</b>" not in page and "&lt;b&gt;S&amp;1&lt;/b&gt;" in page


def test_long_tables_show_top_n_and_count_the_rest(report):
    small = replace(report, top=3, top_sites=report.top_sites.head(3))
    sections = {s.key: s for s in layout_report(small)}
    sites = next(b for b in sections["sites"].blocks if isinstance(b, Table))
    ranked = report.site_risk.filter(pl.col("risk_score") > 0).height
    assert len(sites.rows) == 3 and sites.more.startswith(f"... and {ranked - 3} more sites")
    actions = next(t for t in iter_tables([sections["actions"]]) if t.title.startswith("Suggested"))
    assert len(actions.rows) == 3 and f"{report.actions.height - 3} more" in actions.more


def test_fmt_number():
    assert [fmt_number(v) for v in (0.000123456, 12.345, 2.0, 12345.6, float("nan"))] == [
        "0.000123", "12.3", "2", "12,346", "-"]


def test_pdf_is_valid_with_pages_and_the_sections(pdf, report):
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
    assert pages >= 5
    text = pdf_text(pdf)
    for title in SECTIONS.values():
        assert title in text
    assert f"Oversight report: {report.study_id}" in text
    # fpdf2 pads the total page count it fills in afterwards with spaces
    assert re.search(rf"Page 1 of\s+{pages}\b", text) and re.search(rf"Page {pages} of\s+{pages}\b", text)
    assert f"Data cut {report.cut_date.isoformat()}" in text
    for site in report.top_sites["site_id"]:
        assert site in text


def test_pdf_draws_flag_symbols_with_zapfdingbats(pdf):
    assert b"/ZapfDingbats" in pdf
    assert "▲▲ red, high" in pdf_text(pdf)  # the legend: two triangles (ZapfDingbats "ss") for a red flag
