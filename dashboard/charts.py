"""Plotly figures for the dashboard pages: frames in (from ``dashboard/data.py``), figures out.

Colours come from ColorBrewer's RdBu diverging palette (colour-blind safe); every flag also has
its own text symbol or marker shape, so colour is never the only cue.
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

__all__ = ["FLAG_COLOURS", "FLAG_SYMBOLS", "FLAG_MARKERS", "FLAG_LABELS", "site_heatmap_figure",
           "funnel_figure", "trend_figure", "qtl_trend_figure", "QTL_STATUS_STYLES", "qtl_status_style"]

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


def site_heatmap_figure(cells: pl.DataFrame, risk: pl.DataFrame) -> go.Figure:
    """Sites (rows, by risk rank, rank 1 on top) x KRIs (columns), coloured and marked by flag."""
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
    figure = go.Figure(
        go.Heatmap(
            z=z, x=kri_ids, y=sites, text=text, texttemplate="%{text}", textfont={"size": 13},
            hovertext=hover, hovertemplate="%{hovertext}<extra></extra>",
            colorscale=_flag_colourscale(), zmin=-2.5, zmax=2.5, xgap=2, ygap=2,
            colorbar={"title": {"text": "Flag"}, "tickvals": [-2, -1, 0, 1, 2],
                      "ticktext": [f"{FLAG_SYMBOLS[f] or '–'} {f:+d}" if f else "0" for f in range(-2, 3)]},
        )
    )
    figure.update_xaxes(type="category", side="top", tickangle=-45, title=None,
                        tickvals=kri_ids, ticktext=kris["name"].fill_null("").to_list())
    figure.update_yaxes(type="category", autorange="reversed", title="Site (by risk rank)")
    figure.update_layout(plot_bgcolor=NOT_SCORED_COLOUR, height=max(320, 32 * len(sites) + 220),
                         margin={"t": 200, "l": 10, "r": 10, "b": 10})
    return figure


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
