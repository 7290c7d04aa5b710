"""Colours, symbols and words for flags and statuses, shared by the dashboard and the reports.

Colours come from ColorBrewer's RdBu diverging palette (colour-blind safe); every flag also has
its own symbol, so colour is never the only cue (the dashboard's heatmap and the report's use
the same ones).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["FLAG_COLOURS", "FLAG_SYMBOLS", "FLAG_LABELS", "NOT_SCORED", "NOT_SCORED_COLOUR", "QTL_STATUS_COLOURS",
           "QTL_STATUS_MARKS", "SEVERITY_COLOURS", "SEVERITY_MARKS", "TREND_STYLES", "TrendStyle", "text_colour"]

FLAG_COLOURS = {-2: "#2166ac", -1: "#92c5de", 0: "#f7f7f7", 1: "#f4a582", 2: "#b2182b"}
"""Flag -> colour: blue below the others, red above, darker when red-flagged (RdBu, 5 classes)."""
FLAG_SYMBOLS = {-2: "▼▼", -1: "▼", 0: "", 1: "▲", 2: "▲▲"}
"""Flag -> text shown in a heatmap cell."""
FLAG_LABELS = {-2: "red, low", -1: "amber, low", 0: "not flagged", 1: "amber, high", 2: "red, high"}
"""Flag -> words."""
NOT_SCORED = "·"
"""Shown in a heatmap cell whose KRI was not scored (too few to score)."""
NOT_SCORED_COLOUR = "#d9d9d9"

QTL_STATUS_COLOURS = {"within limits": "#f7f7f7", "secondary limit crossed": "#f4a582",
                      "tolerance limit breached": "#b2182b"}
"""QTL status -> colour (the flag palette: amber for the secondary limit, red for the tolerance limit)."""
QTL_STATUS_MARKS = {"within limits": "●", "secondary limit crossed": "▲", "tolerance limit breached": "▲▲"}
"""QTL status -> mark shown before the words (as the dashboard's QTL page)."""
SEVERITY_COLOURS = {"amber": "#f4a582", "red": "#b2182b"}
SEVERITY_MARKS = {"amber": "▲", "red": "▲▲"}
"""Signal severity -> colour and mark."""



class TrendStyle(NamedTuple):
    """How one series of a trend chart is drawn: colour, dash pattern (None: solid; else dash and gap
    lengths in points), marker (circle, square, triangle or None for a plain line)."""

    colour: str
    dash: tuple[float, float] | None
    marker: str | None


TREND_STYLES: dict[str, TrendStyle] = {
    "estimate": TrendStyle("#2166ac", None, "circle"),
    "secondary_limit": TrendStyle("#e08214", (1.5, 1.5), None),
    "tolerance_limit": TrendStyle("#b2182b", (5.0, 2.5), None),
    "red_sites": TrendStyle("#b2182b", None, "square"),
    "amber_sites": TrendStyle("#e08214", (5.0, 2.5), "triangle"),
}
"""Series kind -> style of the report's trend charts. Besides colour (RdBu's ends and an orange, as the
dashboard's QTL chart), every series differs in dash pattern or marker and is named in the legend, and
every point carries its value, so no reading depends on colour."""

_DARK = {"#2166ac", "#b2182b"}


def text_colour(background: str) -> str:
    """Black or white text, whichever reads on ``background`` (a colour of this palette).

    Examples
    --------
    >>> text_colour(FLAG_COLOURS[2]), text_colour(FLAG_COLOURS[1])
    ('#ffffff', '#1a1a1a')
    """
    return "#ffffff" if background in _DARK else "#1a1a1a"
