"""The oversight report as one self-contained HTML page: inline CSS and inline SVG, nothing fetched.

The page opens offline, prints well (each section starts on a new page when printed), and uses the
palette of ``rbqm.report.palette``: every coloured cell also carries its symbol.
"""

from __future__ import annotations

from html import escape

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
from rbqm.report.palette import (
    FLAG_COLOURS,
    FLAG_LABELS,
    FLAG_SYMBOLS,
    NOT_SCORED,
    NOT_SCORED_COLOUR,
    TREND_STYLES,
    TrendStyle,
    text_colour,
)
from rbqm.report.trend import frame

__all__ = ["render_html"]

_CSS = """
:root { --ink: #1a1a1a; --muted: #5f6368; --rule: #d0d4d9; --band: #f3f5f7; --accent: #1f4e79; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       margin: 0; background: #fff; }
header.top { background: var(--accent); color: #fff; padding: 22px 40px 16px; }
header.top h1 { margin: 0 0 4px; font-size: 24px; font-weight: 600; }
header.top p { margin: 0; opacity: .9; }
nav { padding: 10px 40px; border-bottom: 1px solid var(--rule); background: var(--band); font-size: 13px; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; white-space: nowrap; }
main { padding: 8px 40px 40px; max-width: 1400px; }
section { margin-top: 28px; }
h2 { font-size: 19px; color: var(--accent); border-bottom: 2px solid var(--accent); padding-bottom: 4px; margin: 0 0 6px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.intro { color: var(--muted); margin: 0 0 12px; }
p.note { color: var(--muted); font-size: 13px; font-style: italic; }
p.more { color: var(--muted); font-size: 12.5px; margin: 4px 0 0; }
.figures { display: flex; flex-wrap: wrap; gap: 10px; margin: 6px 0 14px; }
.figure { border: 1px solid var(--rule); border-radius: 6px; padding: 8px 12px; min-width: 150px; background: #fff; }
.figure .label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
.figure .value { font-size: 21px; font-weight: 600; }
.figure .detail { font-size: 12px; color: var(--muted); }
table.data { border-collapse: collapse; width: 100%; font-size: 13px; }
table.data th { background: var(--band); text-align: left; font-weight: 600; border-bottom: 2px solid var(--rule);
                padding: 5px 7px; vertical-align: bottom; }
table.data td { border-bottom: 1px solid var(--rule); padding: 5px 7px; vertical-align: top; }
table.data tr:nth-child(even) td { background: #fbfcfd; }
table.data td.flag { white-space: nowrap; font-weight: 600; }
.heatmap-wrap { overflow-x: auto; }
table.heatmap { border-collapse: separate; border-spacing: 2px; font-size: 12px; }
table.heatmap th.kri { height: 190px; white-space: nowrap; vertical-align: bottom; padding: 0 0 4px; width: 26px; }
table.heatmap th.kri div { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: 500; }
table.heatmap th.site { text-align: right; padding-right: 6px; font-weight: 500; white-space: nowrap; }
table.heatmap td { width: 26px; height: 22px; text-align: center; font-size: 11px; line-height: 1; }
.legend { display: flex; flex-wrap: wrap; gap: 12px; font-size: 12px; margin: 8px 0; }
.legend span.swatch { display: inline-block; width: 26px; height: 18px; text-align: center; margin-right: 4px;
                      vertical-align: middle; border: 1px solid var(--rule); font-size: 11px; line-height: 16px; }
svg text { font-family: inherit; }
.trends { display: grid; gap: 10px 18px; margin: 4px 0 14px; }
figure.trend { margin: 0; }
figure.trend figcaption { font-size: 13px; font-weight: 600; margin: 0 0 2px; }
figure.trend svg { width: 100%; max-width: 560px; height: auto; display: block; }
footer { color: var(--muted); font-size: 12px; padding: 16px 40px; border-top: 1px solid var(--rule); }
@media print {
  header.top { background: none; color: var(--ink); padding: 0 0 8px; border-bottom: 2px solid var(--accent); }
  nav { display: none; }
  main { padding: 0; max-width: none; }
  section { break-before: page; }
  section:first-of-type { break-before: auto; }
  tr, .figure { break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _cell(cell: Cell, tag: str = "td") -> str:
    text = "<br>".join(escape(line) for line in cell.text.split("\n"))
    if cell.flag is None:
        return f"<{tag}>{text}</{tag}>"
    background = FLAG_COLOURS[cell.flag]
    symbol = FLAG_SYMBOLS[cell.flag]
    mark = f"{symbol}&nbsp;" if symbol else ""
    return (f'<{tag} class="flag" style="background:{background};color:{text_colour(background)}">'
            f"{mark}{text}</{tag}>")


def _table(table: Table) -> str:
    parts = [f"<h3>{escape(table.title)}</h3>"] if table.title else []
    if not table.rows:
        parts.append(f'<p class="note">{escape(table.empty)}</p>')
        return "".join(parts)
    total = sum(table.widths)
    head = "".join(f'<th style="width:{100 * w / total:.1f}%">{escape(c)}</th>'
                   for c, w in zip(table.columns, table.widths, strict=True))
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in table.rows)
    parts.append(f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
    if table.more:
        parts.append(f'<p class="more">{escape(table.more)}</p>')
    return "".join(parts)


def _figures(figures: Figures) -> str:
    items = "".join(f'<div class="figure"><div class="label">{escape(label)}</div>'
                    f'<div class="value">{escape(value)}</div><div class="detail">{escape(detail)}</div></div>'
                    for label, value, detail in figures.items)
    return f'<div class="figures">{items}</div>'


def _legend() -> str:
    items = [f'<span><span class="swatch" style="background:{FLAG_COLOURS[f]};color:{text_colour(FLAG_COLOURS[f])}">'
             f"{FLAG_SYMBOLS[f]}</span>{escape(FLAG_LABELS[f])}</span>" for f in (2, 1, 0, -1, -2)]
    items.append(f'<span><span class="swatch" style="background:{NOT_SCORED_COLOUR}">{NOT_SCORED}</span>'
                 "not scored</span>")
    return f'<div class="legend">{"".join(items)}</div>'


def _heatmap(heatmap: Heatmap) -> str:
    head = "".join(f'<th class="kri" title="{escape(name)}"><div>{escape(kri)} {escape(name)}</div></th>'
                   for kri, name in heatmap.kris)
    rows = []
    for site, rank in heatmap.sites:
        cells = []
        for kri, name in heatmap.kris:
            flag = heatmap.flags.get((site, kri))
            if flag is None:
                cells.append(f'<td style="background:{NOT_SCORED_COLOUR}" title="Site {escape(site)}, '
                             f'{escape(name)}: not scored">{NOT_SCORED}</td>')
                continue
            colour = FLAG_COLOURS[flag]
            cells.append(f'<td style="background:{colour};color:{text_colour(colour)}" title="Site {escape(site)}, '
                         f'{escape(name)}: {FLAG_LABELS[flag]}">{FLAG_SYMBOLS[flag]}</td>')
        label = f"{rank}. {site}" if rank is not None else site
        rows.append(f'<tr><th class="site">{escape(label)}</th>{"".join(cells)}</tr>')
    more = f'<p class="more">{escape(heatmap.more)}</p>' if heatmap.more else ""
    return (f'{_legend()}<div class="heatmap-wrap"><table class="heatmap"><thead><tr><th></th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>{more}')


def _bars(bars: Bars) -> str:
    """Horizontal bars (value filled, target outlined) as inline SVG."""
    if not bars.rows:
        return ""
    top = max(max(value, target or 0) for _, value, target in bars.rows) or 1
    label_w, bar_w, row_h = 90, 520, 26
    height = row_h * len(bars.rows) + 30
    shapes = []
    for i, (label, value, target) in enumerate(bars.rows):
        y = 24 + i * row_h
        shapes.append(f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end" font-size="12">{escape(label)}</text>')
        if target:
            shapes.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w * target / top:.1f}" height="16" '
                          'fill="#ffffff" stroke="#1f4e79" stroke-dasharray="4 2"/>')
        shapes.append(f'<rect x="{label_w}" y="{y + 5}" width="{bar_w * value / top:.1f}" height="10" fill="#1f4e79"/>')
        words = f"{value:,}" + (f" of {target:,} ({100 * value / target:.0f}%)" if target else "")
        end = label_w + bar_w * max(value, target or 0) / top
        shapes.append(f'<text x="{end + 6:.1f}" y="{y + 14}" font-size="12">{escape(words)}</text>')
    legend = (f'<rect x="{label_w}" y="4" width="14" height="8" fill="#1f4e79"/>'
              f'<text x="{label_w + 18}" y="12" font-size="11">{escape(bars.value_label)}</text>'
              f'<rect x="{label_w + 100}" y="2" width="22" height="12" fill="#fff" stroke="#1f4e79" '
              f'stroke-dasharray="4 2"/><text x="{label_w + 128}" y="12" font-size="11">{escape(bars.target_label)}</text>')
    return (f"<h3>{escape(bars.title)}</h3>"
            f'<svg role="img" aria-label="{escape(bars.title)}" width="{label_w + bar_w + 180}" height="{height}">'
            f'{legend}{"".join(shapes)}</svg>')


_TREND_W, _TREND_H = 420, 244
_PLOT = {"left": 48, "top": 44, "width": 360, "height": 160}
"""A trend chart's size and plot area, in SVG pixels (it scales to its column, up to 560 pixels wide)."""
_CHAR_W = 5.8
"""The width of a character of the 10-pixel legend, about (to wrap the legend)."""


def _marker(style: TrendStyle, x: float, y: float, attributes: str = "", inner: str = "") -> str:
    """A point's marker centred on (x, y): circle, square or triangle in the series' colour, outlined for
    contrast; ``inner`` goes inside the element (a tooltip)."""
    if style.marker == "square":
        tag, shape = "rect", f'x="{x - 3.6:.1f}" y="{y - 3.6:.1f}" width="7.2" height="7.2"'
    elif style.marker == "triangle":
        tag, shape = "polygon", f'points="{x:.1f},{y - 4.8:.1f} {x - 4.5:.1f},{y + 3.2:.1f} {x + 4.5:.1f},{y + 3.2:.1f}"'
    else:
        tag, shape = "circle", f'cx="{x:.1f}" cy="{y:.1f}" r="3.8"'
    common = f'{shape} fill="{style.colour}" stroke="#ffffff" stroke-width="1" {attributes}'.rstrip()
    return f"<{tag} {common}>{inner}</{tag}>" if inner else f"<{tag} {common}/>"


def _stroke(style: TrendStyle) -> str:
    dash = f' stroke-dasharray="{style.dash[0]:g} {style.dash[1]:g}"' if style.dash else ""
    return f'fill="none" stroke="{style.colour}" stroke-width="1.8"{dash}'


def _runs(points: list[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """The unbroken runs of a line (a missing value breaks it)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point is None:
            runs.append([])
        else:
            runs[-1].append(point)
    return [run for run in runs if run]


def _trend(trend: Trend) -> str:
    """One trend chart as inline SVG. Each series is a ``<g data-series>``; each point carries ``data-cut``
    and ``data-value`` (its exact value), a tooltip and, as text beside it, its value."""
    f = frame(trend, **_PLOT)
    bottom, right = f.top + f.height, f.left + f.width
    parts = []
    for tick in f.ticks:
        y = f.y(tick)
        parts.append(f'<line x1="{f.left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ea"/>'
                     f'<text x="{f.left - 5}" y="{y + 3.5:.1f}" text-anchor="end" font-size="10" fill="#5f6368">'
                     f"{tick:g}</text>")
    parts.append(f'<line x1="{f.left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#5f6368"/>')
    for i in f.tick_cuts:
        parts.append(f'<text x="{f.xs[i]:.1f}" y="{bottom + 14}" text-anchor="middle" font-size="9.5" '
                     f'fill="#5f6368">{escape(trend.cuts[i])}</text>')
    middle = f.top + f.height / 2
    parts.append(f'<text x="12" y="{middle:.1f}" transform="rotate(-90 12 {middle:.1f})" text-anchor="middle" '
                 f'font-size="10" fill="#5f6368">{escape(trend.y_label)}</text>')
    legend_x, legend_y = 8.0, 10.0
    for series in trend.series:
        style = TREND_STYLES[series.style]
        width = 30 + _CHAR_W * len(series.name)
        if legend_x > 8 and legend_x + width > _TREND_W:  # no room left on this line: the next one
            legend_x, legend_y = 8.0, legend_y + 14
        sample = f'<line x1="{legend_x}" x2="{legend_x + 22}" y1="{legend_y}" y2="{legend_y}" {_stroke(style)}/>'
        if style.marker:
            sample += _marker(style, legend_x + 11, legend_y)
        parts.append(f'{sample}<text x="{legend_x + 26}" y="{legend_y + 3.5}" font-size="10">{escape(series.name)}</text>')
        legend_x += width + 10
    for series in trend.series:
        style = TREND_STYLES[series.style]
        points = [None if v is None else (x, f.y(v)) for x, v in zip(f.xs, series.values, strict=True)]
        group = [f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in run)}" {_stroke(style)}/>'
                 for run in _runs(points)]
        for i, (x, low, high) in enumerate(zip(f.xs, series.low, series.high, strict=False)):
            if low is not None and high is not None:
                group.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{f.y(low):.1f}" y2="{f.y(high):.1f}" '
                             f'stroke="{style.colour}" stroke-width="1.2"/>'
                             f'<line x1="{x - 3:.1f}" x2="{x + 3:.1f}" y1="{f.y(high):.1f}" y2="{f.y(high):.1f}" '
                             f'stroke="{style.colour}"/><line x1="{x - 3:.1f}" x2="{x + 3:.1f}" y1="{f.y(low):.1f}" '
                             f'y2="{f.y(low):.1f}" stroke="{style.colour}"/>')
        if style.marker:
            for i, (point, value) in enumerate(zip(points, series.values, strict=True)):
                if point is None:
                    continue
                label = series.labels[i] if series.labels else ""
                tip = f"<title>{escape(series.name)} at {escape(trend.cuts[i])}: {escape(label)}</title>"
                attributes = f'class="point" data-cut="{escape(trend.cuts[i])}" data-value="{value!r}"'
                group.append(_marker(style, *point, attributes, tip))
                if label and f.labelled(i):
                    group.append(f'<text x="{point[0] + 6:.1f}" y="{point[1] - 6:.1f}" font-size="10" '
                                 f'fill="#1a1a1a">{escape(label)}</text>')
        parts.append(f'<g data-series="{escape(series.name)}" data-style="{series.style}">{"".join(group)}</g>')
    return (f'<figure class="trend"><figcaption>{escape(trend.title)}</figcaption>'
            f'<svg class="trend" role="img" aria-label="{escape(trend.title)}" viewBox="0 0 {_TREND_W} {_TREND_H}" '
            f'width="{_TREND_W}" height="{_TREND_H}" data-y-max="{f.ticks[-1]!r}" data-plot-top="{f.top}" '
            f'data-plot-height="{f.height}">{"".join(parts)}</svg></figure>')


def _trends(block: Trends) -> str:
    title = f"<h3>{escape(block.title)}</h3>" if block.title else ""
    return (f'{title}<div class="trends" style="grid-template-columns:repeat({block.per_row},minmax(0,1fr))">'
            f'{"".join(_trend(chart) for chart in block.charts)}</div>')


_BLOCKS = {Table: _table, Figures: _figures, Heatmap: _heatmap, Bars: _bars, Trends: _trends}


def _block(block: object) -> str:
    if isinstance(block, Text):
        tag = "h3" if block.kind == "heading" else "p"
        return f'<{tag} class="{block.kind}">{escape(block.text)}</{tag}>'
    return _BLOCKS[type(block)](block)


def _section(section: Section) -> str:
    body = "".join(_block(b) for b in section.blocks)
    return (f'<section id="{section.key}"><h2>{escape(section.title)}</h2>'
            f'<p class="intro">{escape(section.intro)}</p>{body}</section>')


def render_html(report: OversightReport) -> str:
    """The report as one HTML document (a string) that needs nothing from the network.

    Examples
    --------
    >>> from rbqm.report.layout import SECTIONS
    >>> "Site risk heatmap" in SECTIONS.values()
    True
    """
    sections = layout_report(report)
    title, subtitle = header_lines(report)
    nav = "".join(f'<a href="#{s.key}">{escape(s.title)}</a>' for s in sections)
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            f"<title>{escape(title)} at {report.cut_date.isoformat()}</title><style>{_CSS}</style></head><body>"
            f'<header class="top"><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>'
            f"<nav>{nav}</nav><main>{''.join(_section(s) for s in sections)}</main>"
            f"<footer>{escape(subtitle)} Made for a sponsor oversight meeting; the numbers come from rbqm's "
            "analysis of the study at the cut (see Methods and definitions).</footer></body></html>\n")
