"""Risks linked to indicators: status at the latest cut, gaps, and review proposals on real data
(the review rule itself: test_review.py)."""

from __future__ import annotations

from datetime import date

import polars as pl

from rbqm.analysis import Analysis
from rbqm.csm import ALL_TESTS, CSM_COLUMNS
from rbqm.kri import load_definitions
from rbqm.qtl import load_qtl_definitions
from rbqm.risk import gaps, link_status, load_risk_register, review_proposals
from tests.risk.conftest import UNDER_REPORTING

CUT, EARLIER = date(2025, 6, 1), date(2025, 3, 1)


def _analysis(kri: list[tuple[date, str, str, int]] = (), qtl: list[tuple[str, str]] = (),
              csm: list[tuple[str, str, float, float]] = ()) -> Analysis:
    """An analysis from (cut, kri_id, site, flag), (qtl_id, status) and (test, site, q, effect) at CUT."""
    results = pl.DataFrame([{"study_id": "S", "cut_date": c, "level": "site", "group_id": s, "kri_id": k, "flag": f}
                            for c, k, s, f in kri],
                           schema={"study_id": pl.String, "cut_date": pl.Date, "level": pl.String,
                                   "group_id": pl.String, "kri_id": pl.String, "flag": pl.Int8})
    qtls = pl.DataFrame([{"study_id": "S", "cut_date": CUT, "qtl_id": q, "status": s} for q, s in qtl],
                        schema={"study_id": pl.String, "cut_date": pl.Date, "qtl_id": pl.String, "status": pl.String})
    findings = pl.DataFrame([{"study_id": "S", "cut_date": CUT, "site_id": s, "test": t, "variable": "AE",
                              "q_value": q, "effect": e} for t, s, q, e in csm], schema=CSM_COLUMNS)
    return Analysis("S", [EARLIER, CUT], results, pl.DataFrame(), pl.DataFrame(), qtls, findings)


def _status(analysis: Analysis, risk_id: str) -> dict:
    return link_status(load_risk_register(), analysis).filter(pl.col("risk_id") == risk_id).row(0, named=True)


def test_gaps_of_the_library_exactly():
    register = load_risk_register()
    frame = gaps(register, load_definitions(), load_qtl_definitions(), ALL_TESTS)
    # central-monitoring tests are added often: those no risk names are gaps too, after the KRIs and QTLs
    unlinked_tests = [("indicator without risk", t) for t in sorted(set(ALL_TESTS) - register.indicators)]
    assert frame.select("gap", "id").rows() == [
        ("risk without indicator", "risk0004"),
        ("indicator without risk", "kri0005"), ("indicator without risk", "kri0011"),
        ("indicator without risk", "kri0016"), ("indicator without risk", "kri0023"), *unlinked_tests]


def test_gaps_list_a_test_and_a_qtl_that_control_nothing():
    register = load_risk_register()
    linked_tests = sorted(register.indicators & set(ALL_TESTS))
    frame = gaps(register, [], load_qtl_definitions(), [*linked_tests, "new_test"])
    assert frame.filter(pl.col("gap") == "indicator without risk")["id"].to_list() == ["new_test"]


def test_status_counts_kri_flags_in_the_direction_of_concern_at_the_latest_cut_only():
    analysis = _analysis(kri=[(CUT, "kri0001", "1001", -2), (CUT, "kri0001", "1002", -2), (CUT, "kri0001", "1003", -1),
                              (CUT, "kri0001", "1004", 2),        # more AEs: not under-reporting (concern: low)
                              (EARLIER, "kri0001", "1009", -2),   # an earlier cut: ignored
                              (CUT, "kri0021", "1005", 0)],
                         csm=[("ae_under_reporting", "1003", 0.001, -1.0), ("ae_under_reporting", "1006", 0.2, -0.8),
                              ("ae_under_reporting", "1007", 0.001, 1.0)])  # over-reporting: not counted
    row = _status(analysis, "risk0001")
    assert row["status"] == ("kri0001 red at 2 sites, amber at 1; kri0021 no flag; "
                             "ae_under_reporting significant at 1 site")
    assert row["flagged_sites"] == ["1001", "1002", "1003"] and row["qtl_level"] == 0


def test_status_of_qtls_and_of_indicators_not_computed():
    analysis = _analysis(qtl=[("qtl0003", "within limits"), ("qtl0004", "tolerance limit breached")])
    row = _status(analysis, "risk0009")
    assert row["status"] == ("kri0006 not computed; kri0007 not computed; qtl0003 within limits; "
                             "qtl0004 tolerance limit breached")
    assert row["qtl_level"] == 2 and row["n_flagged_sites"] == 0
    assert _status(analysis, "risk0004")["status"] == "no indicator watches this risk"


def test_injected_ae_under_reporting_lights_up_the_linked_indicators_and_proposes_rescoring(ae_analysis):
    register = load_risk_register()
    row = link_status(register, ae_analysis).filter(pl.col("risk_id") == "risk0001").row(0, named=True)
    assert set(UNDER_REPORTING) <= set(row["flagged_sites"])
    assert "ae_under_reporting significant at 2 sites" in row["status"]
    assert row["status"].startswith("kri0001 red at")
    proposal = review_proposals(register, ae_analysis).filter(pl.col("risk_id") == "risk0001")
    assert proposal.select("likelihood", "proposed_likelihood", "proposed_score").row(0) == (2, 3, 27)
    assert "1001, 1002" in proposal["evidence"][0]


def test_no_ae_under_reporting_proposal_without_the_anomaly(clean_analysis):
    proposals = review_proposals(load_risk_register(), clean_analysis)
    assert "risk0001" not in proposals["risk_id"].to_list()
