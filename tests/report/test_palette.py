"""The report's palette is the dashboard's: the same colours and symbols for the same flags."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rbqm.report import palette

CHARTS = Path(__file__).resolve().parents[2] / "dashboard" / "charts.py"


def test_the_dashboard_heatmap_uses_the_same_colours_and_symbols():
    spec = importlib.util.spec_from_file_location("dashboard_charts", CHARTS)
    charts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(charts)
    for name in ("FLAG_COLOURS", "FLAG_SYMBOLS", "FLAG_LABELS", "NOT_SCORED", "NOT_SCORED_COLOUR"):
        assert getattr(charts, name) == getattr(palette, name), name


def test_every_flag_has_a_distinct_colour_and_symbol():
    flags = range(-2, 3)
    assert len({palette.FLAG_COLOURS[f] for f in flags}) == 5
    assert len({palette.FLAG_SYMBOLS[f] for f in flags}) == 5
    assert {palette.text_colour(palette.FLAG_COLOURS[f]) for f in (-2, 2)} == {"#ffffff"}
