"""The oversight report as a PDF (fpdf2): the same sections and tables as the HTML page.

A4 landscape; each page has the study, the cut and the title in its header and the page number and
generation time in its footer. Text is set in DejaVu Sans, embedded (``rbqm.report.fonts``), so names
in Cyrillic or Greek and signs such as "≥" or "−" print as they are; characters DejaVu Sans lacks (CJK)
come from a fallback font when one is installed, else print as U+FFFD and are listed on the first page.
Without DejaVu Sans the PDF uses the built-in Helvetica and reduces text to Latin-1 (:func:`latin1`),
saying so. The flag symbols are drawn with the built-in ZapfDingbats font: a coloured cell always
carries its triangles, as in the dashboard.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

from rbqm.report.layout import (
    Bars,
    Cell,
    Figures,
    Heatmap,
    Section,
    Table,
    Text,
    Trend,
    Trends,
    header_lines,
    layout_report,
)
from rbqm.report.model import OversightReport
from rbqm.report.palette import FLAG_COLOURS, FLAG_LABELS, NOT_SCORED_COLOUR, TREND_STYLES, TrendStyle, text_colour
from rbqm.report.fonts import FontSet, coverage, fallback_fonts, find_fonts, last_resort_subset
from rbqm.report.trend import frame

__all__ = ["AUTO", "REPLACEMENT", "latin1", "render_pdf"]

LOG = logging.getLogger(__name__)
AUTO = "auto"
"""``render_pdf(fonts=AUTO)``: the fonts :func:`rbqm.report.fonts.find_fonts` finds."""
REPLACEMENT = "\ufffd"
"""Printed in place of a character that no available font can draw."""
_FAMILY = "dejavu"
_FALLBACK_FAMILIES = "fallback"

_DINGBATS = {-2: "tt", -1: "t", 0: "", 1: "s", 2: "ss"}
"""Flag -> ZapfDingbats text: ``s`` is a triangle pointing up, ``t`` one pointing down."""
_REPLACE = str.maketrans({"–": "-", "—": "-", "−": "-", "≥": ">=", "≤": "<=", "•": "-", "’": "'", "‘": "'", "“": '"',
                          "”": '"', "…": "...", "▲": "^", "▼": "v", "●": "o", "→": "->", "≠": "!="})
_ACCENT = (31, 78, 121)
_MUTED = (95, 99, 104)
_RULE = (208, 212, 217)
_BAND = (243, 245, 247)
_BODY_PT = 8.5
_TABLE_PT = 7.5


def latin1(text: str) -> str:
    """``text`` reduced to Latin-1 (what the built-in PDF fonts can show): dashes, quotes and arrows
    become their ASCII look-alikes, anything else unknown a question mark.

    Examples
    --------
    >>> latin1("q < 0.05 – “red” ≥ 2 ▲ 中")
    'q < 0.05 - "red" >= 2 ^ ?'
    """
    return text.translate(_REPLACE).encode("latin-1", errors="replace").decode("latin-1")


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)


class _ReportPdf(FPDF):
    """FPDF with the report's running header and footer, its text font (``family``) and the function that
    makes text printable in it (``clean``)."""

    def __init__(self, title: str, subtitle: str) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self.text_family: str = "helvetica"
        self.clean: Callable[[str], str] = latin1
        self.report_title, self.report_subtitle = title, subtitle
        self.set_margins(12, 16, 12)
        self.set_auto_page_break(auto=True, margin=14)
        self.set_title(title)
        self.set_author("rbqm")
        self.set_creator("rbqm")

    def header(self) -> None:
        self.set_font(self.text_family, "", 7.5)
        self.set_text_color(*_MUTED)
        self.set_xy(self.l_margin, 7)
        self.cell(self.epw / 2, 4, self.report_title, align="L")
        self.cell(self.epw / 2, 4, self.report_subtitle.split(". Generated")[0], align="R")
        self.set_draw_color(*_RULE)
        self.line(self.l_margin, 11.5, self.w - self.r_margin, 11.5)
        self.set_text_color(0, 0, 0)
        self.set_y(self.t_margin)

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(self.text_family, "", 7.5)
        self.set_text_color(*_MUTED)
        generated = self.report_subtitle.split(". ")[-1]
        self.cell(self.epw / 2, 4, generated, align="L")
        self.cell(self.epw / 2, 4, f"Page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(0, 0, 0)


def _space_left(pdf: FPDF) -> float:
    return pdf.h - pdf.b_margin - pdf.get_y()


def _heading(pdf: FPDF, section: Section) -> None:
    if _space_left(pdf) < 45 or section.key in ("heatmap", "methods"):
        pdf.add_page()
    pdf.start_section(pdf.clean(section.title))
    pdf.set_font(pdf.text_family, "B", 14)
    pdf.set_text_color(*_ACCENT)
    pdf.cell(0, 8, pdf.clean(section.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(*_ACCENT)
    pdf.set_line_width(0.5)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.set_line_width(0.2)
    pdf.ln(1.5)
    pdf.set_font(pdf.text_family, "", _BODY_PT)
    pdf.set_text_color(*_MUTED)
    pdf.multi_cell(0, 4.2, pdf.clean(section.intro), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(2)


def _text(pdf: FPDF, block: Text) -> None:
    if block.kind == "heading":
        pdf.set_font(pdf.text_family, "B", 10)
    else:
        pdf.set_font(pdf.text_family, "I" if block.kind == "note" else "", _BODY_PT)
        pdf.set_text_color(*(_MUTED if block.kind == "note" else (0, 0, 0)))
    pdf.multi_cell(0, 4.2, pdf.clean(block.text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(2)


def _figures(pdf: FPDF, block: Figures) -> None:
    per_row = min(len(block.items), 6)
    gap = 3
    width = (pdf.epw - gap * (per_row - 1)) / per_row
    height = 18
    for start in range(0, len(block.items), per_row):
        if _space_left(pdf) < height + 2:
            pdf.add_page()
        y = pdf.get_y()
        for i, (label, value, detail) in enumerate(block.items[start:start + per_row]):
            x = pdf.l_margin + i * (width + gap)
            pdf.set_draw_color(*_RULE)
            pdf.rect(x, y, width, height)
            pdf.set_xy(x + 2, y + 1.5)
            pdf.set_font(pdf.text_family, "", 6.5)
            pdf.set_text_color(*_MUTED)
            pdf.cell(width - 4, 3, pdf.clean(label.upper()))
            pdf.set_xy(x + 2, y + 4.8)
            pdf.set_font(pdf.text_family, "B", 12.5)
            pdf.set_text_color(0, 0, 0)
            pdf.cell(width - 4, 6, pdf.clean(value))
            pdf.set_xy(x + 2, y + 11)
            pdf.set_font(pdf.text_family, "", 6.5)
            pdf.set_text_color(*_MUTED)
            pdf.multi_cell(width - 4, 2.9, pdf.clean(detail), max_line_height=2.9)
        pdf.set_text_color(0, 0, 0)
        pdf.set_xy(pdf.l_margin, y + height + 3)


def _table(pdf: FPDF, block: Table) -> None:
    if block.title:
        if _space_left(pdf) < 25:
            pdf.add_page()
        pdf.set_font(pdf.text_family, "B", 10)
        pdf.cell(0, 6, pdf.clean(block.title), new_x="LMARGIN", new_y="NEXT")
    if not block.rows:
        _text(pdf, Text(block.empty, "note"))
        return
    # a flagged column gets a narrow column before it for the symbol (ZapfDingbats)
    flagged = [any(row[i].flag is not None for row in block.rows) for i in range(len(block.columns))]
    total = sum(block.widths)
    mark_w = 7.0
    text_w = pdf.epw - mark_w * sum(flagged)
    widths: list[float] = []
    for i, width in enumerate(block.widths):
        if flagged[i]:
            widths.append(mark_w)
        widths.append(text_w * width / total)
    pdf.set_font(pdf.text_family, "", _TABLE_PT)
    headings = FontFace(emphasis="BOLD", fill_color=_BAND, color=(0, 0, 0))
    pdf.set_fill_color(255, 255, 255)
    pdf.set_draw_color(*_RULE)
    with pdf.table(col_widths=widths, width=pdf.epw, text_align="LEFT", v_align="TOP", line_height=3.4,
                   headings_style=headings, borders_layout="HORIZONTAL_LINES", padding=(0.9, 1.1),
                   cell_fill_color=(248, 249, 251), cell_fill_mode="ROWS", repeat_headings=1) as table:
        head = table.row()
        for i, column in enumerate(block.columns):
            if flagged[i]:
                head.cell("")
            head.cell(pdf.clean(column))
        for cells in block.rows:
            row = table.row()
            for i, cell in enumerate(cells):
                _flag_cells(row, cell, flagged[i], pdf.clean)
    if block.more:
        pdf.set_font(pdf.text_family, "I", 7)
        pdf.set_text_color(*_MUTED)
        pdf.cell(0, 4.5, pdf.clean(block.more), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    pdf.ln(3)


def _flag_cells(row, cell: Cell, flagged_column: bool, clean: Callable[[str], str]) -> None:
    if cell.flag is None:
        if flagged_column:
            row.cell("")
        row.cell(clean(cell.text))
        return
    fill = _rgb(FLAG_COLOURS[cell.flag])
    ink = _rgb(text_colour(FLAG_COLOURS[cell.flag]))
    row.cell(_DINGBATS[cell.flag], style=FontFace(family="zapfdingbats", fill_color=fill, color=ink, size_pt=5.5))
    row.cell(clean(cell.text), style=FontFace(emphasis="BOLD", fill_color=fill, color=ink))


def _bars(pdf: FPDF, block: Bars) -> None:
    if not block.rows:
        return
    row_h, label_w, bar_w = 6.0, 22.0, 150.0
    needed = 8 + row_h * len(block.rows) + 4
    if _space_left(pdf) < needed:
        pdf.add_page()
    pdf.set_font(pdf.text_family, "B", 10)
    pdf.cell(0, 6, pdf.clean(block.title), new_x="LMARGIN", new_y="NEXT")
    top = max(max(value, target or 0) for _, value, target in block.rows) or 1
    y0 = pdf.get_y() + 1
    x0 = pdf.l_margin + label_w
    pdf.set_font(pdf.text_family, "", 7.5)
    for i, (label, value, target) in enumerate(block.rows):
        y = y0 + i * row_h
        pdf.set_xy(pdf.l_margin, y)
        pdf.cell(label_w - 2, 4.5, pdf.clean(label), align="R")
        if target:
            pdf.set_draw_color(*_ACCENT)
            pdf.set_dash_pattern(dash=1, gap=0.6)
            pdf.rect(x0, y, bar_w * target / top, 4.5)
            pdf.set_dash_pattern()
        pdf.set_fill_color(*_ACCENT)
        pdf.rect(x0, y + 1.2, max(bar_w * value / top, 0.2), 2.1, style="F")
        words = f"{value:,}" + (f" of {target:,} planned ({100 * value / target:.0f}%)" if target else " enrolled")
        pdf.set_xy(x0 + bar_w * max(value, target or 0) / top + 2, y)
        pdf.cell(60, 4.5, pdf.clean(words))
    pdf.set_xy(pdf.l_margin, y0 + row_h * len(block.rows) + 3)


def _heatmap_header(pdf: FPDF, block: Heatmap, x0: float, col_w: float, head_h: float) -> None:
    y = pdf.get_y()
    pdf.set_font(pdf.text_family, "", 6)
    max_chars = int(head_h / 1.25)
    for j, (kri, name) in enumerate(block.kris):
        label = pdf.clean(f"{kri} {name}")
        label = label if len(label) <= max_chars else label[:max_chars - 3] + "..."
        x = x0 + j * col_w + col_w / 2 + 1
        with pdf.rotation(90, x, y + head_h - 1):
            pdf.text(x, y + head_h - 1, label)
    pdf.set_y(y + head_h)


def _heatmap(pdf: FPDF, block: Heatmap) -> None:
    site_w = 18.0
    col_w = min(9.0, (pdf.epw - site_w) / max(len(block.kris), 1))
    row_h, head_h = 4.4, 38.0
    x0 = pdf.l_margin + site_w
    _legend(pdf)
    if _space_left(pdf) < head_h + 5 * row_h:
        pdf.add_page()
    _heatmap_header(pdf, block, x0, col_w, head_h)
    pdf.set_draw_color(255, 255, 255)
    pdf.set_line_width(0.4)
    for site, rank in block.sites:
        if _space_left(pdf) < row_h:
            pdf.add_page()
            _heatmap_header(pdf, block, x0, col_w, head_h)
            pdf.set_draw_color(255, 255, 255)
        y = pdf.get_y()
        pdf.set_font(pdf.text_family, "", 6.5)
        pdf.set_xy(pdf.l_margin, y)
        pdf.cell(site_w - 1.5, row_h, pdf.clean(f"{rank}. {site}" if rank is not None else site), align="R")
        for j, (kri, _) in enumerate(block.kris):
            flag = block.flags.get((site, kri))
            x = x0 + j * col_w
            colour = NOT_SCORED_COLOUR if flag is None else FLAG_COLOURS[flag]
            pdf.set_fill_color(*_rgb(colour))
            pdf.rect(x, y, col_w, row_h, style="DF")
            pdf.set_xy(x, y)
            pdf.set_text_color(*_rgb(text_colour(colour)))
            if flag is None:
                pdf.set_font(pdf.text_family, "B", 7)
                pdf.cell(col_w, row_h, "\u00b7", align="C")
            elif flag:
                pdf.set_font("zapfdingbats", "", 5.5)
                pdf.cell(col_w, row_h, _DINGBATS[flag], align="C")
        pdf.set_text_color(0, 0, 0)
        pdf.set_xy(pdf.l_margin, y + row_h)
    pdf.set_line_width(0.2)
    if block.more:
        pdf.set_font(pdf.text_family, "I", 7)
        pdf.set_text_color(*_MUTED)
        pdf.cell(0, 5, pdf.clean(block.more), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)


def _legend(pdf: FPDF) -> None:
    y = pdf.get_y()
    x = pdf.l_margin
    entries = [(f, FLAG_COLOURS[f], FLAG_LABELS[f]) for f in (2, 1, 0, -1, -2)] + [(None, NOT_SCORED_COLOUR, "not scored")]
    pdf.set_draw_color(*_RULE)
    for flag, colour, label in entries:
        pdf.set_fill_color(*_rgb(colour))
        pdf.rect(x, y, 8, 4.4, style="DF")
        pdf.set_xy(x, y)
        pdf.set_text_color(*_rgb(text_colour(colour)))
        if flag is None:
            pdf.set_font(pdf.text_family, "B", 7)
            pdf.cell(8, 4.4, "\u00b7", align="C")
        elif flag:
            pdf.set_font("zapfdingbats", "", 5.5)
            pdf.cell(8, 4.4, _DINGBATS[flag], align="C")
        pdf.set_text_color(0, 0, 0)
        pdf.set_font(pdf.text_family, "", 7.5)
        pdf.set_xy(x + 9, y)
        pdf.cell(28, 4.4, pdf.clean(label))
        x += 38
    pdf.set_xy(pdf.l_margin, y + 7)


_MM_PER_PT = 0.3528


def _pen(pdf: FPDF, style: TrendStyle, width: float = 0.45) -> None:
    pdf.set_draw_color(*_rgb(style.colour))
    pdf.set_line_width(width)
    if style.dash:
        pdf.set_dash_pattern(dash=style.dash[0] * _MM_PER_PT, gap=style.dash[1] * _MM_PER_PT)
    else:
        pdf.set_dash_pattern()


def _marker(pdf: FPDF, style: TrendStyle, x: float, y: float, size: float = 1.0) -> None:
    """A point's marker centred on (x, y): circle, square or triangle, filled, outlined in white."""
    pdf.set_fill_color(*_rgb(style.colour))
    pdf.set_draw_color(255, 255, 255)
    pdf.set_line_width(0.2)
    pdf.set_dash_pattern()
    if style.marker == "square":
        pdf.rect(x - 0.95 * size, y - 0.95 * size, 1.9 * size, 1.9 * size, style="DF")
    elif style.marker == "triangle":
        pdf.polygon([(x, y - 1.3 * size), (x - 1.2 * size, y + 0.85 * size), (x + 1.2 * size, y + 0.85 * size)],
                    style="DF")
    else:
        pdf.circle(x, y, 1.0 * size, style="DF")


def _trend(pdf: FPDF, trend: Trend, x: float, y: float, width: float, height: float) -> None:
    """One trend chart in the box (x, y, width, height): title, legend, axis with ticks, the series."""
    pdf.set_font(pdf.text_family, "B", 7.5)
    pdf.set_xy(x, y)
    pdf.cell(width, 3.8, pdf.clean(trend.title))
    legend_x = x + 1
    pdf.set_font(pdf.text_family, "", 6)
    for series in trend.series:
        style = TREND_STYLES[series.style]
        _pen(pdf, style)
        pdf.line(legend_x, y + 6.2, legend_x + 6, y + 6.2)
        if style.marker:
            _marker(pdf, style, legend_x + 3, y + 6.2, 0.8)
        text = pdf.clean(series.name)
        pdf.text(legend_x + 7, y + 7.1, text)
        legend_x += 10 + pdf.get_string_width(text)
    pdf.set_dash_pattern()
    f = frame(trend, left=x + 9, top=y + 12, width=width - 11, height=height - 19)
    bottom, right = f.top + f.height, f.left + f.width
    pdf.set_line_width(0.15)
    pdf.set_font(pdf.text_family, "", 5.5)
    pdf.set_text_color(*_MUTED)
    for tick in f.ticks:
        pdf.set_draw_color(227, 230, 234)
        pdf.line(f.left, f.y(tick), right, f.y(tick))
        label = f"{tick:g}"
        pdf.text(f.left - 1 - pdf.get_string_width(label), f.y(tick) + 0.8, label)
    pdf.set_draw_color(*_MUTED)
    pdf.line(f.left, bottom, right, bottom)
    for i in f.tick_cuts:
        label = pdf.clean(trend.cuts[i])
        pdf.text(f.xs[i] - pdf.get_string_width(label) / 2, bottom + 3, label)
    pdf.text(x, f.top - 2, pdf.clean(trend.y_label))
    pdf.set_text_color(0, 0, 0)
    for series in trend.series:
        style = TREND_STYLES[series.style]
        points = [None if v is None else (px, f.y(v)) for px, v in zip(f.xs, series.values, strict=True)]
        _pen(pdf, style)
        run: list[tuple[float, float]] = []
        for point in [*points, None]:
            if point is not None:
                run.append(point)
            elif run:
                if len(run) > 1:
                    pdf.polyline(run)
                run = []
        pdf.set_dash_pattern()
        for px, low, high in zip(f.xs, series.low, series.high, strict=False):
            if low is not None and high is not None:
                pdf.set_line_width(0.3)
                pdf.line(px, f.y(low), px, f.y(high))
                pdf.line(px - 0.8, f.y(low), px + 0.8, f.y(low))
                pdf.line(px - 0.8, f.y(high), px + 0.8, f.y(high))
        if not style.marker:
            continue
        pdf.set_font(pdf.text_family, "", 5.8)
        for i, point in enumerate(points):
            if point is None:
                continue
            _marker(pdf, style, *point)
            if series.labels and series.labels[i] and f.labelled(i):
                pdf.text(point[0] + 1.5, point[1] - 1.5, pdf.clean(series.labels[i]))
    pdf.set_line_width(0.2)
    pdf.set_draw_color(*_RULE)


def _trends(pdf: FPDF, block: Trends) -> None:
    gap = 7.0
    width = (pdf.epw - gap * (block.per_row - 1)) / block.per_row
    height = 58.0 if block.per_row >= 3 else 66.0
    if block.title:
        if _space_left(pdf) < height + 8:
            pdf.add_page()
        pdf.set_font(pdf.text_family, "B", 10)
        pdf.cell(0, 6, pdf.clean(block.title), new_x="LMARGIN", new_y="NEXT")
    for start in range(0, len(block.charts), block.per_row):
        if _space_left(pdf) < height + 2:
            pdf.add_page()
        y = pdf.get_y()
        for i, chart in enumerate(block.charts[start:start + block.per_row]):
            _trend(pdf, chart, pdf.l_margin + i * (width + gap), y, width, height)
        pdf.set_xy(pdf.l_margin, y + height + 3)


_BLOCKS = {Table: _table, Figures: _figures, Heatmap: _heatmap, Bars: _bars, Text: _text, Trends: _trends}


def _characters(value: object) -> set[str]:
    """Every character of the text in ``value``: sections, blocks, cells, and their tuples and dicts."""
    if isinstance(value, str):
        return set(value)
    if dataclasses.is_dataclass(value):
        return set().union(*(_characters(getattr(value, f.name)) for f in dataclasses.fields(value)))
    if isinstance(value, dict):
        return _characters(tuple(value)) | _characters(tuple(value.values()))
    if isinstance(value, tuple | list):
        return set().union(*map(_characters, value))
    return set()


def _describe(chars: set[str], limit: int = 8) -> str:
    """Characters by code point and name, for a note the PDF can print whatever its font."""
    ordered = sorted(chars)
    words = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed').lower()}" for c in ordered[:limit])
    return words + (f" and {len(ordered) - limit} more" if len(ordered) > limit else "")


def _set_up_fonts(pdf: _ReportPdf, fonts: FontSet | None, text: set[str], scratch: Path) -> str | None:
    """Register the report's fonts for the characters of ``text`` and decide how each prints; return a
    note for the first page when some cannot print as they are (None when all can). ``scratch``: a
    folder for the cut-down Last Resort font."""
    text = {c for c in text if c.isprintable()}
    if fonts is None:
        lost = {c for c in text if "?" in latin1(c) and c != "?"}
        if not lost:
            return None
        LOG.warning("rbqm report: no TrueType font found; %d characters print as '?' in the PDF", len(lost))
        return ("No TrueType font was found (DejaVu Sans, from matplotlib or Debian's fonts-dejavu-core), so this "
                "PDF uses the built-in Helvetica, which holds Latin-1 only: " + _describe(lost) + " print as '?'. "
                "The HTML report shows them; pip install -r requirements.txt installs the font.")
    for style, path in fonts.files.items():
        pdf.add_font(_FAMILY, style, path)
    pdf.text_family, pdf.clean = _FAMILY, str
    missing = text - frozenset.intersection(*(coverage(path) for path in fonts.files.values()))
    fallbacks: list[str] = []
    # the regular font first (bold and oblique have fewer glyphs), then the fallback fonts found
    for path in (fonts.files[""], *fallback_fonts()) if missing else ():
        if missing & coverage(path):
            fallbacks.append(f"{_FALLBACK_FAMILIES}{len(fallbacks)}")
            pdf.add_font(fallbacks[-1], "", path)
            missing -= coverage(path)
    if missing and fonts.last_resort is not None:
        fallbacks.append(f"{_FALLBACK_FAMILIES}{len(fallbacks)}")
        pdf.add_font(fallbacks[-1], "", last_resort_subset(fonts.last_resort, missing, scratch))
        shown = "are drawn as boxes that name their script (the Last Resort font) and kept as text"
    elif missing:
        table = str.maketrans(dict.fromkeys(missing, REPLACEMENT))
        pdf.clean = lambda value: value.translate(table)
        shown = f"print as {REPLACEMENT}"
    if fallbacks:
        pdf.set_fallback_fonts(fallbacks, exact_match=False)
    if not missing:
        return None
    LOG.warning("rbqm report: %d characters have no glyph in the PDF's fonts and %s: %s", len(missing), shown,
                _describe(missing))
    return (f"Some characters of this report have no glyph in the PDF's fonts (DejaVu Sans, from {fonts.source}, "
            f"and any fallback font installed): {_describe(missing)}. They {shown}; the HTML report shows them. "
            "A font that has them (for Chinese, Japanese or Korean: Debian's fonts-noto-cjk, fonts-wqy-zenhei or "
            "fonts-droid-fallback, or any font file named in $RBQM_PDF_FALLBACK_FONTS) lets the PDF draw them.")


def render_pdf(report: OversightReport, *, fonts: FontSet | None | str = AUTO) -> bytes:
    """The report as PDF bytes (A4 landscape, page numbers, study and cut in every page's header).

    Parameters
    ----------
    fonts
        The text font: :data:`AUTO` (DejaVu Sans as :func:`rbqm.report.fonts.find_fonts` finds it), a
        :class:`~rbqm.report.fonts.FontSet`, or None for fpdf2's built-in Helvetica (Latin-1 only).

    Examples
    --------
    >>> latin1("▲▲ red")
    '^^ red'
    """
    title, subtitle = header_lines(report)
    sections = layout_report(report)
    with tempfile.TemporaryDirectory(prefix="rbqm-report-") as scratch:
        return _render(sections, title, subtitle, find_fonts() if isinstance(fonts, str) else fonts, Path(scratch))


def _render(sections: list[Section], title: str, subtitle: str, fonts: FontSet | None, scratch: Path) -> bytes:
    pdf = _ReportPdf(title, subtitle)
    note = _set_up_fonts(pdf, fonts, _characters(sections) | set(title + subtitle), scratch)
    pdf.report_title, pdf.report_subtitle = pdf.clean(title), pdf.clean(subtitle)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font(pdf.text_family, "B", 20)
    pdf.set_text_color(*_ACCENT)
    pdf.cell(0, 10, pdf.clean(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.text_family, "", 9.5)
    pdf.set_text_color(*_MUTED)
    pdf.multi_cell(0, 5, pdf.clean(subtitle), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(3)
    if note:
        _text(pdf, Text(note, "note"))
    for section in sections:
        _heading(pdf, section)
        for block in section.blocks:
            _BLOCKS[type(block)](pdf, block)
    return bytes(pdf.output())
