"""Trends over the data cuts: red and amber sites per cut and each QTL against its limits, drawn as inline
SVG in the HTML (parsed back here: one point per cut with its value, at the height of that value) and with
fpdf2 in the PDF."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date

import polars as pl
import pytest

from rbqm.report import render_html, render_pdf
from rbqm.report.layout import Trends, layout_report
from rbqm.report.trend import nice_ticks

from .test_render import pdf_text

CUTS = [date(2025, 1, 8), date(2025, 2, 8), date(2025, 3, 8), date(2025, 4, 8), date(2025, 5, 8)]
# five cuts by hand: red and amber sites, and two QTLs (one missing at the third cut, one never computed)
SITES = pl.DataFrame({"cut_date": CUTS, "sites": [8, 10, 12, 12, 12], "red_sites": [0, 1, 3, 2, 2],
                      "amber_sites": [2, 4, 1, 5, 0]})
QTL = pl.DataFrame({
    "qtl_id": ["qtl0001"] * 5 + ["qtl0002"] * 5, "name": ["Deviations"] * 5 + ["Never computed"] * 5,
    "cut_date": CUTS * 2, "estimate": [0.05, 0.1, None, 0.2, 0.3] + [None] * 5,
    "lower": [0.01, 0.05, None, 0.15, 0.24] + [None] * 5, "upper": [0.12, 0.16, None, 0.26, 0.37] + [None] * 5,
    "secondary_limit": [0.2] * 5 + [None] * 5, "limit": [0.25, 0.25, 0.25, 0.3, 0.3] + [None] * 5,
    "status": ["within limits", "within limits", None, "secondary limit crossed", "tolerance limit breached"]
    + [None] * 5})


def trend_svgs(html: str) -> dict[str, ET.Element]:
    """Every trend chart of the page, parsed, by its title."""
    charts = [ET.fromstring(svg) for svg in re.findall(r'<svg class="trend".*?</svg>', html, re.DOTALL)]
    return {svg.get("aria-label"): svg for svg in charts}


def points(svg: ET.Element, series: str) -> list[tuple[str, float, float]]:
    """(cut, value, vertical position) of each point of ``series``."""
    group = next(g for g in svg.iter("g") if g.get("data-series") == series)
    out = []
    for point in group:
        if point.get("class") != "point":
            continue
        if point.tag == "circle":
            y = float(point.get("cy"))
        elif point.tag == "rect":
            y = float(point.get("y")) + float(point.get("height")) / 2
        else:  # a triangle: its apex is 4.8 above the centre
            y = float(point.get("points").split()[0].split(",")[1]) + 4.8
        out.append((point.get("data-cut"), float(point.get("data-value")), y))
    return out


def line_values(svg: ET.Element, series: str) -> list[list[float]]:
    """The values along each unbroken run of ``series``' line, read back from the vertical positions."""
    top, height, high = (float(svg.get(k)) for k in ("data-plot-top", "data-plot-height", "data-y-max"))
    group = next(g for g in svg.iter("g") if g.get("data-series") == series)
    return [[high * (1 - (float(xy.split(",")[1]) - top) / height) for xy in line.get("points").split()]
            for line in group.iter("polyline")]


def assert_heights_match_values(found: list[tuple[str, float, float]], svg: ET.Element) -> None:
    top, height, high = (float(svg.get(k)) for k in ("data-plot-top", "data-plot-height", "data-y-max"))
    for _, value, y in found:
        assert y == pytest.approx(top + height * (1 - value / high), abs=0.06)


def test_sites_by_cut_counts_red_and_amber_sites(report, analysis):
    expected = []
    for cut in analysis.cut_dates:  # by hand: a red site has a red flag; an amber one amber flags and no red
        rows = analysis.site_risk.filter(pl.col("cut_date") == cut).iter_rows(named=True)
        flags = [(r["red"] or 0, r["amber"] or 0) for r in rows]
        expected.append((cut, len(flags), sum(red > 0 for red, _ in flags),
                         sum(red == 0 and amber > 0 for red, amber in flags)))
    assert report.sites_by_cut.rows() == expected
    assert report.qtl_by_cut.select("qtl_id", "cut_date", "estimate", "limit").rows() == (
        analysis.qtl.sort("qtl_id", "cut_date").select("qtl_id", "cut_date", "estimate", "limit").rows())


def test_svg_has_one_point_per_cut_with_the_study_values(report, analysis):
    charts = trend_svgs(render_html(report))
    cuts = [d.isoformat() for d in analysis.cut_dates]
    sites = charts["Sites with a red or an amber flag"]
    for series, column in (("red sites (a red flag)", "red_sites"), ("amber sites (amber, no red)", "amber_sites")):
        found = points(sites, series)
        assert [(cut, value) for cut, value, _ in found] == list(zip(cuts, report.sites_by_cut[column], strict=True))
        assert_heights_match_values(found, sites)
    qtl = analysis.qtl.sort("qtl_id", "cut_date")
    for qtl_id in qtl["qtl_id"].unique(maintain_order=True):
        rows = qtl.filter(pl.col("qtl_id") == qtl_id)
        svg = next(svg for title, svg in charts.items() if title.startswith(f"{qtl_id} "))
        found = points(svg, "estimate (95% interval)")
        assert [c for c, _, _ in found] == cuts
        assert [v for _, v, _ in found] == pytest.approx(rows["estimate"].to_list(), rel=1e-12)
        assert_heights_match_values(found, svg)
        tolerance = 1.5 * float(svg.get("data-y-max")) / 160  # positions are written to 0.1 pixel
        assert line_values(svg, "tolerance limit") == [pytest.approx(rows["limit"].to_list(), abs=tolerance)]
        assert line_values(svg, "secondary limit") == [pytest.approx(rows["secondary_limit"].to_list(), abs=tolerance)]


@pytest.fixture(scope="module")
def five_cuts(report):
    return replace(report, cut_dates=CUTS, cut_date=CUTS[-1], previous_cut=CUTS[-2], sites_by_cut=SITES,
                   qtl_by_cut=QTL)


def test_five_cuts_by_hand(five_cuts):
    html = render_html(five_cuts)
    charts = trend_svgs(html)
    assert set(charts) == {"Sites with a red or an amber flag", "qtl0001 Deviations"}  # never computed: no chart
    cuts = [d.isoformat() for d in CUTS]
    sites = charts["Sites with a red or an amber flag"]
    red = points(sites, "red sites (a red flag)")
    assert [(c, v) for c, v, _ in red] == list(zip(cuts, [0, 1, 3, 2, 2], strict=True))
    amber = points(sites, "amber sites (amber, no red)")
    assert [(c, v) for c, v, _ in amber] == list(zip(cuts, [2, 4, 1, 5, 0], strict=True))
    assert float(sites.get("data-y-max")) == 6 == nice_ticks(5, integer=True)[-1]
    assert_heights_match_values(red + amber, sites)
    qtl = charts["qtl0001 Deviations"]
    estimate = points(qtl, "estimate (95% interval)")
    assert [(c, v) for c, v, _ in estimate] == [(cuts[0], 0.05), (cuts[1], 0.1), (cuts[3], 0.2), (cuts[4], 0.3)]
    assert_heights_match_values(estimate, qtl)
    assert len(line_values(qtl, "estimate (95% interval)")) == 2  # the missing cut breaks the line
    assert line_values(qtl, "tolerance limit") == [pytest.approx([0.25, 0.25, 0.25, 0.3, 0.3], abs=0.002)]
    assert float(qtl.get("data-y-max")) == pytest.approx(0.4)  # above the highest interval end, 0.37
    # the value and the status mark beside each point: not colour alone
    labels = [t.text for g in qtl.iter("g") if g.get("data-series") == "estimate (95% interval)" for t in g.iter("text")]
    assert labels == ["0.05 ●", "0.1 ●", "0.2 ▲", "0.3 ▲▲"]
    assert "Not computed at any cut (the study lacks what they need): qtl0002 Never computed." in html


def test_the_trends_are_drawn_without_javascript_or_files(five_cuts):
    section = re.search(r'<section id="trends">.*?</section>', render_html(five_cuts), re.DOTALL).group(0)
    assert "<script" not in section and "href=" not in section and "src=" not in section
    assert section.count("<svg") == 2


def test_pdf_has_the_section_and_the_values(five_cuts):
    text = pdf_text(render_pdf(five_cuts))
    assert "Trends over the data cuts" in text
    for title in ("Red and amber sites at each data cut", "Sites with a red or an amber flag", "qtl0001 Deviations",
                  "Each QTL's estimate against its limits at each data cut", "red sites (a red flag)",
                  "tolerance limit"):
        assert title in text, title
    for label in ("0.05", "0.1", "0.2", "0.3"):
        assert re.search(rf"(?:^| ){re.escape(label)} (?:o|\^|\^\^|●|▲|▲▲)(?: |$)", text), label


def test_a_first_cut_says_each_chart_has_one_point(report):
    first = report.cut_dates[0]
    single = replace(report, cut_dates=[first], sites_by_cut=report.sites_by_cut.head(1),
                     qtl_by_cut=report.qtl_by_cut.filter(pl.col("cut_date") == first))
    section = next(s for s in layout_report(single) if s.key == "trends")
    assert section.blocks[0].text.startswith("This is the study's first data cut")
    charts = [chart for block in section.blocks if isinstance(block, Trends) for chart in block.charts]
    assert charts and all(len(chart.cuts) == 1 for chart in charts)
    for svg in trend_svgs(render_html(single)).values():
        groups = [g for g in svg.iter("g") if g.get("data-style") in ("estimate", "red_sites")]
        assert all(len([p for p in g if p.get("class") == "point"]) == 1 for g in groups)
