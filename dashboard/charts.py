"""Plotly figures for the dashboard pages: frames in (from ``dashboard/data.py``), figures out.

Colours come from ColorBrewer's RdBu diverging palette (colour-blind safe); every flag also has
its own text symbol or marker shape, so colour is never the only cue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl

from rbqm.overview import SITE_STATUSES

__all__ = ["FLAG_COLOURS", "FLAG_SYMBOLS", "FLAG_MARKERS", "FLAG_LABELS", "site_heatmap_figure",
           "selected_site", "HEATMAP_SCORES",
           "funnel_figure", "trend_figure", "qtl_trend_figure", "QTL_STATUS_STYLES", "qtl_status_style",
           "qtl_probability_figure", "qtl_oe_figure", "enrolment_figure", "flag_figure", "percent"]

FLAG_COLOURS = {-2: "#2166ac", -1: "#92c5de", 0: "#f7f7f7", 1: "#f4a582", 2: "#b2182b"}
"""Flag -> colour: blue below the others, red above, darker when red-flagged (RdBu, 5 classes)."""
FLAG_SYMBOLS = {-2: "▼▼", -1: "▼", 0: "", 1: "▲", 2: "▲▲"}
"""Flag -> text shown in a heatmap cell."""
FLAG_MARKERS = {-2: "triangle-down", -1: "triangle-down-open", 0: "circle-open", 1: "triangle-up-open",
                2: "triangle-up"}
"""Flag -> plotly marker symbol in the funnel plot."""
FLAG_LABELS = {-2: "red, low", -1: "amber, low", 0: "not flagged", 1: "amber, high", 2: "red, high"}
NOT_SCORED = "·"
"""Shown in a heatmap cell whose KRI was not scored (too few to score)."""
NOT_SCORED_COLOUR = "#d9d9d9"


QTL_STATUS_STYLES = {
    "within limits": "background-color: #f7f7f7; color: #1a1a1a",
    "secondary limit crossed": "background-color: #f4a582; color: #1a1a1a",
    "tolerance limit breached": "background-color: #b2182b; color: #ffffff",
}
"""QTL status -> cell style (the flag palette: amber for the secondary limit, red for the tolerance limit)."""


def qtl_status_style(shown: object) -> str:
    """The CSS for a status cell shown as in ``data.QTL_STATUS_SHOWN`` (mark + words); none when missing."""
    if not isinstance(shown, str):
        return ""
    return next((style for status, style in QTL_STATUS_STYLES.items() if shown.endswith(status)), "")


def _flag_colourscale() -> list[tuple[float, str]]:
    """A stepped colourscale over z = -2..2, one band per flag."""
    scale = []
    for i, flag in enumerate(range(-2, 3)):
        scale += [(i / 5, FLAG_COLOURS[flag]), ((i + 1) / 5, FLAG_COLOURS[flag])]
    return scale


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


HEATMAP_SCORES = {"risk_score": "Risk score", "dis": "Data inconsistency"}
"""Site-level scores shown as extra heatmap columns, when the site risk table has them: column -> label."""
_SCORE_COLOURSCALE = [(0.0, "#f2f0f7"), (1.0, "#54278f")]
"""Purples (ColorBrewer): a sequential scale that cannot be mistaken for the flags' red-blue one."""


def site_heatmap_figure(cells: pl.DataFrame, risk: pl.DataFrame) -> go.Figure:
    """Sites (rows, in the order of ``risk``) x KRIs (columns), coloured and marked by flag, then the
    site's scores of :data:`HEATMAP_SCORES` that ``risk`` has for some site (shaded by value, the number
    written in).

    Clicking a cell selects the site: an invisible marker sits on every cell (heatmap traces report no
    selection to Streamlit), carrying the site id as ``customdata``; see :func:`selected_site`. Columns sit
    at numeric positions (KRI i at i, the scores after a small gap) with the names as tick labels: on a
    category axis plotly misplaces a one-column heatmap.
    """
    sites = risk["site_id"].to_list()
    kris = cells.select("kri_id", "name").unique().sort("kri_id")
    kri_ids = kris["kri_id"].to_list()
    by_cell = {(row["group_id"], row["kri_id"]): row for row in cells.iter_rows(named=True)}
    z, text, hover = [], [], []
    for site in sites:
        z_row, text_row, hover_row = [], [], []
        for kri in kri_ids:
            row = by_cell.get((site, kri))
            flag = None if row is None else row["flag"]
            z_row.append(flag)
            text_row.append(NOT_SCORED if flag is None else FLAG_SYMBOLS[flag])
            if row is None:
                hover_row.append(f"Site {site}<br>{kri}: no result")
                continue
            hover_row.append(
                f"Site {site}<br><b>{row['name'] or kri}</b> ({kri})<br>"
                f"Metric: {_fmt(row['metric_shown'])} {row['metric_unit'] or ''}<br>"
                f"Score: {_fmt(row['score'])}<br>"
                f"Flag: {'not scored' if flag is None else f'{flag:+d} ({FLAG_LABELS[flag]})'}"
                + (f"<br>Note: {row['note']}" if row["note"] else "")
            )
        z.append(z_row)
        text.append(text_row)
        hover.append(hover_row)
    # the text as numpy arrays, not lists: plotly validates and copies a list element by element, which at
    # 1,000 sites took about a second of every run of the page (bench/dashboard.py); an array is taken whole.
    # (Numbers stay lists: plotly would send numeric arrays base64-encoded, which the tests do not read.)
    rows = np.array(sites, dtype=str)
    figure = go.Figure(
        go.Heatmap(
            z=z, x=list(range(len(kri_ids))), y=rows, text=np.array(text, dtype=str),
            texttemplate="%{text}",
            textfont={"size": 11}, hoverinfo="skip",
            colorscale=_flag_colourscale(), zmin=-2.5, zmax=2.5, xgap=2, ygap=2,
            colorbar={"title": {"text": "Flag"}, "tickvals": [-2, -1, 0, 1, 2],
                      "ticktext": [f"{FLAG_SYMBOLS[f] or '–'} {f:+d}" if f else "0" for f in range(-2, 3)]},
        )
    )
    scores = {column: label for column, label in HEATMAP_SCORES.items()
              if column in risk.columns and risk[column].is_not_null().any()}
    positions = [*range(len(kri_ids)), *(len(kri_ids) + 0.25 + j for j in range(len(scores)))]
    for position, (column, label) in zip(positions[len(kri_ids):], scores.items(), strict=True):
        values = risk[column].to_list()
        top = max((v for v in values if v is not None), default=0) or 1.0
        figure.add_trace(go.Heatmap(
            z=[[None if v is None else v / top] for v in values], x=[position], y=rows,
            zmin=0, zmax=1, name=label,
            text=np.array([["–" if v is None else f"{v:.1f}"] for v in values], dtype=str), texttemplate="%{text}",
            textfont={"size": 12}, colorscale=_SCORE_COLOURSCALE, showscale=False, xgap=2, ygap=2,
            hoverinfo="skip",
        ))
        for site, value, hover_row in zip(sites, values, hover, strict=True):
            hover_row.append(f"Site {site}<br><b>{label}</b>: {_fmt(value)}")
    figure.add_trace(go.Scatter(  # the click targets, one per cell, with the cell's hover text
        x=[position for _ in sites for position in positions], y=np.repeat(rows, len(positions)),
        customdata=np.repeat(rows, len(positions)), hovertext=np.array([h for row in hover for h in row], dtype=str),
        hovertemplate="%{hovertext}<extra></extra>", mode="markers", showlegend=False, name="sites",
        marker={"size": 18, "symbol": "square", "color": "rgba(0,0,0,0)"},
        selected={"marker": {"opacity": 0}}, unselected={"marker": {"opacity": 0}},
    ))
    figure.update_xaxes(type="linear", side="top", tickangle=-45, title=None, showgrid=False, zeroline=False,
                        range=[-0.5, positions[-1] + 0.5], tickvals=positions,
                        ticktext=[*kris["name"].fill_null("").to_list(), *scores.values()])
    figure.update_yaxes(type="category", autorange="reversed", title="Site", categoryorder="array",
                        categoryarray=sites, showgrid=False)
    figure.update_layout(plot_bgcolor=NOT_SCORED_COLOUR, height=max(320, 32 * len(sites) + 220),
                         margin={"t": 200, "l": 10, "r": 10, "b": 10}, hovermode="closest", hoverdistance=-1,
                         clickmode="event+select", dragmode=False)
    return figure


def selected_site(selection: Mapping[str, Any] | None) -> str | None:
    """The site of the first cell selected in :func:`site_heatmap_figure` (Streamlit's ``on_select``
    state: ``{"selection": {"points": [{"customdata": site, "y": site, ...}]}}``), else None."""
    points = ((selection or {}).get("selection") or {}).get("points") or []
    if not points:
        return None
    point = points[0]
    site = point.get("customdata", point.get("y"))
    if isinstance(site, list):  # plotly sends a point's customdata as a list when it has several values
        site = site[0] if site else None
    return None if site is None else str(site)


def funnel_figure(results: pl.DataFrame, bounds: pl.DataFrame, metric_unit: str) -> go.Figure:
    """Funnel plot: each group's metric against its denominator (log axis), marked by flag, with the
    bounds where the score crosses each threshold as labelled lines."""
    figure = go.Figure()
    for threshold in bounds["threshold"].unique().sort().to_list():
        line = bounds.filter(pl.col("threshold") == threshold)
        figure.add_trace(go.Scatter(
            x=line["denominator"].to_list(), y=line["metric_shown"].to_list(), mode="lines",
            name=f"bound: score {threshold:+g}",
            line={"dash": "dot" if abs(threshold) < 2.5 else "dash", "color": "#555", "width": 1},
            hovertemplate=f"score {threshold:+g}<br>denominator %{{x:.3g}}<br>metric %{{y:.3g}}<extra></extra>",
        ))
    scored = results.filter(pl.col("flag").is_not_null() & (pl.col("denominator") > 0))
    for flag in sorted(scored["flag"].unique().to_list()):
        points = scored.filter(pl.col("flag") == flag)
        figure.add_trace(go.Scatter(
            x=points["denominator"].to_list(), y=points["metric_shown"].to_list(), mode="markers",
            name=f"{flag:+d} {FLAG_LABELS[flag]}" if flag else FLAG_LABELS[0],
            text=points["group_id"].to_list(), customdata=points["score"].to_list(),
            marker={"symbol": FLAG_MARKERS[flag], "size": 11, "color": FLAG_COLOURS[flag] if flag else "#555",
                    "line": {"width": 1.5, "color": FLAG_COLOURS[flag] if flag else "#555"}},
            hovertemplate="%{text}<br>denominator %{x:.4g}<br>metric %{y:.4g}<br>score %{customdata:.3g}"
                          "<extra></extra>",
        ))
    figure.update_xaxes(type="log", title="Denominator (log scale)")
    figure.update_yaxes(title=metric_unit)
    figure.update_layout(legend={"title": {"text": "Flag / bound"}}, height=480)
    return figure


def trend_figure(trend: pl.DataFrame, group: str) -> go.Figure:
    """The score of one group over the data cuts."""
    figure = go.Figure(go.Scatter(
        x=[str(d) for d in trend["cut_date"].to_list()], y=trend["score"].to_list(), mode="lines+markers",
        name=group, text=[FLAG_LABELS.get(f, "not scored") if f is not None else "not scored"
                          for f in trend["flag"].to_list()],
        hovertemplate="cut %{x}<br>score %{y:.3g}<br>%{text}<extra></extra>",
    ))
    figure.update_xaxes(type="category", title="Data cut")
    figure.update_yaxes(title="Score", zeroline=True)
    figure.update_layout(height=320)
    return figure


def qtl_trend_figure(trend: pl.DataFrame) -> go.Figure:
    """One QTL over the data cuts: the estimate with its interval, the secondary and tolerance limits."""
    cuts = [str(d) for d in trend["cut_date"].to_list()]
    estimate = trend["estimate"]
    figure = go.Figure(go.Scatter(
        x=cuts, y=estimate.to_list(), mode="lines+markers", name="estimate",
        error_y={"type": "data", "symmetric": False,
                 "array": (trend["upper"] - estimate).to_list(), "arrayminus": (estimate - trend["lower"]).to_list()},
    ))
    figure.add_trace(go.Scatter(x=cuts, y=trend["secondary_limit"].to_list(), mode="lines", name="secondary limit",
                                line={"dash": "dot", "color": "#e08214"}))
    figure.add_trace(go.Scatter(x=cuts, y=trend["limit"].to_list(), mode="lines", name="tolerance limit",
                                line={"dash": "dash", "color": "#b2182b"}))
    figure.update_xaxes(type="category", title="Data cut")
    figure.update_yaxes(title="Estimate", rangemode="tozero")
    figure.update_layout(height=360)
    return figure


_QTL_STATUS_COLOURS = {"within limits": "#bababa", "secondary limit crossed": "#f4a582",
                       "tolerance limit breached": "#b2182b"}


def qtl_probability_figure(latest: pl.DataFrame) -> go.Figure:
    """Each QTL's posterior probability that the true study rate exceeds its tolerance limit (one bar per QTL,
    coloured by status and labelled with the probability and the status mark)."""
    shown = latest.filter(pl.col("probability_exceed").is_not_null()).sort("qtl_id", descending=True)
    figure = go.Figure(go.Bar(
        x=shown["probability_exceed"].to_list(), y=shown["qtl_id"].to_list(), orientation="h",
        marker={"color": [_QTL_STATUS_COLOURS.get(s, "#bababa") for s in shown["status"].to_list()],
                "line": {"color": "#404040", "width": 1}},
        text=[f"{p:.2f} {m}" for p, m in zip(shown["probability_exceed"].to_list(),
                                              shown["status_shown"].str.split(" ").list.first().to_list(),
                                              strict=True)],
        textposition="outside", customdata=shown["name"].to_list(),
        hovertemplate="%{y} · %{customdata}<br>P(true rate > tolerance limit) = %{x:.3f}<extra></extra>",
    ))
    figure.update_xaxes(range=[0, 1.15], title="P(true study rate > tolerance limit)", tickformat=".0%")
    figure.update_yaxes(type="category", title=None)
    figure.update_layout(height=max(240, 34 * shown.height + 90), margin={"t": 10, "b": 40})
    return figure


def qtl_oe_figure(oe: pl.DataFrame) -> go.Figure:
    """One QTL's observed minus expected events over the data cuts (``rbqm.qtl.oe_cuts``): the O - E points,
    the warning band, and the O - E at which the observed rate reaches the secondary and tolerance limits."""
    cuts = [str(d) for d in oe["cut_date"].to_list()]
    figure = go.Figure()
    for column, name, line in (("warn_lower", "warning band (1%)", {"dash": "dot", "color": "#888"}),
                               ("warn_upper", "warning band (99%)", {"dash": "dot", "color": "#888"}),
                               ("secondary_line", "secondary limit", {"dash": "dot", "color": "#e08214"}),
                               ("limit_line", "tolerance limit", {"dash": "dash", "color": "#b2182b"})):
        figure.add_trace(go.Scatter(x=cuts, y=oe[column].to_list(), mode="lines", name=name, line=line))
    figure.add_trace(go.Scatter(
        x=cuts, y=oe["o_minus_e"].to_list(), mode="lines+markers", name="observed - expected",
        line={"color": "#2166ac"}, marker={"size": 9}, text=oe["status"].fill_null("not judged").to_list(),
        customdata=list(zip(oe["observed"].to_list(), oe["expected"].to_list(), strict=True)),
        hovertemplate="cut %{x}<br>O - E = %{y:.3g}<br>observed %{customdata[0]:.4g}, expected "
                      "%{customdata[1]:.4g}<br>%{text}<extra></extra>",
    ))
    figure.add_hline(y=0, line={"color": "#404040", "width": 1})
    figure.update_xaxes(type="category", title="Data cut")
    figure.update_yaxes(title="Observed - expected events")
    figure.update_layout(height=360, margin={"t": 30})
    return figure


# --- study overview ---------------------------------------------------------------------------------

ENROLLED_COLOUR = "#4393c3"  # enrolment bars: a blue of the RdBu palette, away from the flag colours' ends
STATUS_STYLE = {  # site flag status -> (legend label, colour, fill pattern, text and pattern colour): not colour alone
    "red": (f"{FLAG_SYMBOLS[2]} red: {SITE_STATUSES['red']}", FLAG_COLOURS[2], "x", "#ffffff"),
    "amber": (f"{FLAG_SYMBOLS[1]} amber: {SITE_STATUSES['amber']}", FLAG_COLOURS[1], "/", "#1a1a1a"),
    "none": (f"no flag: {SITE_STATUSES['none']}", FLAG_COLOURS[0], "", "#1a1a1a"),
}


def percent(share: float | None) -> str:
    return "–" if share is None else f"{share:.0%}"


def plan_text(row: dict) -> str:
    """A country's label under its bar: its name, then enrolled against planned or why there is no plan."""
    if row["share_of_plan"] is None:
        return f"{row['country']}<br>{row['enrolled']} enrolled, {row['plan_note']}"
    note = f"<br>{row['plan_note']}" if row["plan_note"] else ""
    return (f"{row['country']}<br>{row['enrolled']} of {row['planned']} planned "
            f"({percent(row['share_of_plan'])}){note}")


def enrolment_figure(countries: pl.DataFrame) -> go.Figure:
    """Enrolled subjects per country (bars, the count inside) with the planned enrolment as a black tick where
    there is one; each country's share of plan is written under its bar."""
    names = countries["country"].to_list()
    figure = go.Figure(go.Bar(
        x=names, y=countries["enrolled"].to_list(), name="enrolled", marker={"color": ENROLLED_COLOUR},
        text=countries["enrolled"].to_list(), textposition="inside", insidetextanchor="start",
        insidetextfont={"color": "#ffffff"}, hovertemplate="%{x}<br>enrolled %{y}<extra></extra>",
    ))
    planned = countries.filter(pl.col("planned").is_not_null())
    figure.add_trace(go.Scatter(
        x=planned["country"].to_list(), y=planned["planned"].to_list(), mode="markers", name="plan (PLANNEDENR)",
        marker={"symbol": "line-ew", "size": 44, "color": "#1a1a1a", "line": {"width": 4, "color": "#1a1a1a"}},
        hovertemplate="%{x}<br>planned %{y}<extra></extra>",
    ))
    figure.update_xaxes(type="category", title=None, tickvals=names,
                        ticktext=[plan_text(row) for row in countries.iter_rows(named=True)])
    figure.update_yaxes(title="Subjects", rangemode="tozero")
    figure.update_layout(height=400, margin={"t": 30}, legend={"orientation": "h", "y": -0.3})
    return figure


def flag_figure(counts: pl.DataFrame) -> go.Figure:
    """Sites by flag status at each cut up to the chosen one: stacked bars, each status its colour and pattern."""
    cuts = [str(d) for d in counts["cut_date"].to_list()]
    figure = go.Figure()
    for status, column in (("red", "red_sites"), ("amber", "amber_sites"), ("none", "no_flag_sites")):
        label, colour, pattern, text = STATUS_STYLE[status]
        figure.add_trace(go.Bar(
            x=cuts, y=counts[column].to_list(), name=label, text=counts[column].to_list(), textposition="inside",
            insidetextfont={"color": text, "size": 14},
            marker={"color": colour, "line": {"color": "#404040", "width": 1},
                    "pattern": {"shape": pattern, "fillmode": "overlay", "fgcolor": text, "solidity": 0.15}},
            hovertemplate=f"cut %{{x}}<br>{status}: %{{y}} sites<extra></extra>",
        ))
    figure.update_xaxes(type="category", title="Data cut")
    figure.update_yaxes(title="Sites")
    figure.update_layout(barmode="stack", height=340, margin={"t": 30},
                         legend={"orientation": "h", "y": -0.3, "traceorder": "normal"})
    return figure
