"""rbqm.signals: the injected late data entry becomes a stable signal, new then persisting."""

from __future__ import annotations

from datetime import date

import polars as pl

from rbqm.analysis import Analysis
from rbqm.csm import CSM_COLUMNS
from rbqm.signals import SIGNAL_COLUMNS, SIGNAL_STATES, derive_signals


def test_contract(late_signals):
    assert late_signals.schema == pl.Schema(SIGNAL_COLUMNS)
    assert set(late_signals["state"]) <= set(SIGNAL_STATES)
    assert set(late_signals["severity"]) <= {"amber", "red"}
    assert late_signals.select(pl.struct("signal_id", "cut_date").is_unique().all()).item()
    assert late_signals["summary"].str.ends_with(".").all()


def test_injected_late_entry_is_new_then_persisting(late_signals, late_analysis):
    rows = late_signals.filter(pl.col("signal_id") == "kri0010@1003").sort("cut_date")
    assert rows["cut_date"].to_list() == late_analysis.cut_dates
    assert rows["state"].to_list() == ["new", "persisting", "persisting", "persisting"]
    assert rows["consecutive_cuts"].to_list() == [1, 2, 3, 4]
    assert rows["first_cut"].unique().to_list() == [late_analysis.cut_dates[0]]
    assert rows["summary"][0].startswith("Late data entry at site 1003")


def test_signal_ids_of_each_kind(late_signals):
    ids = set(late_signals["signal_id"])
    assert any(i.startswith("qtl") and i.endswith("@study") for i in ids)
    assert any(i.startswith("csm:digit_preference:") for i in ids)


def _analysis(flags: list[int | None], q: list[float]) -> Analysis:
    cuts = [date(2025, m, 1) for m in range(1, len(flags) + 1)]
    results = pl.DataFrame({"study_id": "S", "cut_date": cuts, "level": "site", "group_id": "7",
                            "kri_id": "kri0001", "score": [0.0] * len(cuts), "flag": flags},
                           schema_overrides={"flag": pl.Int8})
    csm = pl.DataFrame({"study_id": "S", "cut_date": cuts, "site_id": "7", "test": "digit_preference",
                        "variable": "VS:SYSBP", "statistic": 1.0, "p_value": q, "q_value": q, "effect": 0.1,
                        "description": "Systolic BP ends in 0 too often."}, schema=CSM_COLUMNS)
    return Analysis("S", cuts, results, pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), csm)


def test_every_state_and_resolved_once():
    out = derive_signals(_analysis([1, 2, 1, 1, 0, 0, -1], [0.5] * 7)).sort("cut_date")
    assert out["state"].to_list() == ["new", "escalated", "de-escalated", "persisting", "resolved", "new"]
    assert out["severity"].to_list() == ["amber", "red", "amber", "amber", "amber", "amber"]
    assert out["consecutive_cuts"].to_list() == [1, 2, 3, 4, 0, 1]
    assert out["first_cut"].unique().to_list() == [date(2025, 1, 1)]


def test_csm_threshold_and_id():
    out = derive_signals(_analysis([0, 0, 0], [0.2, 0.03, 0.004])).sort("cut_date")
    assert out["signal_id"].unique().to_list() == ["csm:digit_preference:VS:SYSBP@7"]
    assert out.select("severity", "state").rows() == [("amber", "new"), ("red", "escalated")]


def test_the_same_check_in_two_domains_gives_two_signals():
    """date_order checks visits (SV) and dosing (EX) before consent under one name: two signals, not one."""
    cut = date(2025, 1, 1)
    csm = pl.DataFrame({"study_id": "S", "cut_date": cut, "site_id": "7", "test": "date_order",
                        "variable": ["SV:BEFORE_CONSENT", "EX:BEFORE_CONSENT"], "statistic": 1.0,
                        "p_value": 0.001, "q_value": 0.001, "effect": 0.1,
                        "description": ["Visits before consent.", "Doses before consent."]}, schema=CSM_COLUMNS)
    analysis = Analysis("S", [cut], pl.DataFrame(schema={"study_id": pl.String, "cut_date": pl.Date,
                                                         "level": pl.String, "group_id": pl.String,
                                                         "kri_id": pl.String, "score": pl.Float64,
                                                         "flag": pl.Int8}),
                        pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), csm)
    out = derive_signals(analysis)
    assert sorted(out["signal_id"]) == ["csm:date_order:EX:BEFORE_CONSENT@7", "csm:date_order:SV:BEFORE_CONSENT@7"]
    assert out["state"].to_list() == ["new", "new"]
