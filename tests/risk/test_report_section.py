"""The risk register section of the oversight report (rbqm.report.layout): the study level, the register, the
review proposals in both directions and the gaps."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import polars as pl

from rbqm.analysis import Analysis
from rbqm.csm import CSM_COLUMNS
from rbqm.report.layout import Figures, Table, _risks
from rbqm.risk import assess_risks, load_risk_register

CUTS = [date(2025, 4, 1), date(2025, 5, 1), date(2025, 6, 1)]


def test_the_section_shows_level_register_proposals_in_both_directions_and_gaps():
    # kri0008 (risk0010) quiet at three cuts: lower; kri0001 (risk0001) red at two sites at two cuts: raise
    quiet = [(c, "kri0008", s, 0) for c in CUTS for s in ("1001", "1002")]
    red = [(c, "kri0001", s, -2) for c in CUTS[1:] for s in ("1001", "1002")]
    results = pl.DataFrame([{"cut_date": c, "level": "site", "group_id": s, "kri_id": k, "flag": f}
                            for c, k, s, f in quiet + red], schema_overrides={"flag": pl.Int8})
    analysis = Analysis("S", CUTS, results, pl.DataFrame(), pl.DataFrame(), pl.DataFrame(),
                        pl.DataFrame(schema=CSM_COLUMNS))
    risk = assess_risks(load_risk_register(), analysis)
    section = _risks(SimpleNamespace(risk=risk, store=SimpleNamespace(used=True)))
    figures = next(b for b in section.blocks if isinstance(b, Figures))
    assert ("Overall study risk", "medium", "weighted score 10.67 of 27") in figures.items
    tables = {b.title: b for b in section.blocks if isinstance(b, Table)}
    assert set(tables) == {"Register", "Review proposals", "Gaps"}
    proposals = [[c.text for c in row] for row in tables["Review proposals"].rows]
    assert [row[:3] for row in proposals] == [["risk0001", "raise: 2 to 3", "18 to 27"],
                                              ["risk0010", "lower: 2 to 1", "4 to 2"]]
    gaps = [[c.text for c in row] for row in tables["Gaps"].rows]
    assert gaps[0] == ["risk without indicator", "risk0004", "Informed consent process failures"]
    assert ["indicator without risk", "kri0011", "Data change rate"] in gaps
