"""The review rule over the cuts: raise on persistent or broad evidence or a QTL breach, lower after quiet
cuts, the noise rule, the rule file, and the decisions joined to the proposals."""

from __future__ import annotations

from datetime import date, datetime, timezone

import polars as pl
import pytest

from rbqm.analysis import Analysis
from rbqm.csm import CSM_COLUMNS
from rbqm.errors import DefinitionError
from rbqm.risk import (PROPOSAL_COLUMNS, ReviewRule, load_review_rule, load_risk_register, review_proposals,
                       review_queue, risk_history)
from rbqm.store.risks import DECISION_COLUMNS
from tests.risk.conftest import UNDER_REPORTING

A, B, C = date(2025, 4, 1), date(2025, 5, 1), date(2025, 6, 1)

Kri = tuple[date, str, str, int]


def _analysis(cuts: list[date], kri: list[Kri] = (), qtl: list[tuple[date, str, str]] = (),
              csm: list[tuple[date, str, str, float, float]] = ()) -> Analysis:
    """An analysis of ``cuts`` from (cut, kri_id, site, flag), (cut, qtl_id, status), (cut, test, site, q, effect)."""
    results = pl.DataFrame([{"cut_date": c, "level": "site", "group_id": s, "kri_id": k, "flag": f} for c, k, s, f in kri],
                           schema={"cut_date": pl.Date, "level": pl.String, "group_id": pl.String, "kri_id": pl.String,
                                   "flag": pl.Int8})
    qtls = pl.DataFrame([{"cut_date": c, "qtl_id": q, "status": s} for c, q, s in qtl],
                        schema={"cut_date": pl.Date, "qtl_id": pl.String, "status": pl.String})
    findings = pl.DataFrame([{"study_id": "S", "cut_date": c, "site_id": s, "test": t, "variable": "AE", "q_value": q,
                              "effect": e} for c, t, s, q, e in csm], schema=CSM_COLUMNS)
    return Analysis("S", cuts, results, pl.DataFrame(), pl.DataFrame(), qtls, findings)


def _proposal(analysis: Analysis, risk_id: str, rule: ReviewRule | None = None) -> dict | None:
    rows = review_proposals(load_risk_register(), analysis, rule=rule).filter(pl.col("risk_id") == risk_id)
    return rows.row(0, named=True) if rows.height else None


def _red(cut: date, *sites: str, kri: str = "kri0001") -> list[Kri]:
    return [(cut, kri, site, -2) for site in sites]


# --- raising -----------------------------------------------------------------------------------------


def test_the_shipped_rule():
    assert load_review_rule() == ReviewRule(min_sites=2, persist_cuts=2, burst_sites=4, amber_indicators=2,
                                            quiet_cuts=3)


def test_evidence_at_two_sites_once_is_noise_but_persisting_over_two_cuts_raises():
    once = _analysis([A, B, C], kri=[*_red(B, "1009"), *_red(C, "1001", "1002")])
    assert _proposal(once, "risk0001") is None
    persisting = _analysis([A, B, C], kri=[*_red(B, "1001", "1009"), *_red(C, "1001", "1002")])
    row = _proposal(persisting, "risk0001")
    assert {k: row[k] for k in ("direction", "likelihood", "proposed_likelihood", "score", "proposed_score",
                                "level", "proposed_level")} == {
        "direction": "raise", "likelihood": 2, "proposed_likelihood": 3, "score": 18, "proposed_score": 27,
        "level": "high", "proposed_level": "high"}
    assert ("judged likelihood 2, but its indicators give evidence at 2 sites (1001, 1002) at this cut and at 2 or "
            "more sites at each of the last 2 cuts: kri0001 red at 2 sites") in row["evidence"]
    # the same evidence with a rule that needs one cut only: raised at once
    assert _proposal(once, "risk0001", ReviewRule(persist_cuts=1))["proposed_likelihood"] == 3


def test_a_single_cut_cannot_show_persistence():
    assert _proposal(_analysis([C], kri=_red(C, "1001", "1002", "1003")), "risk0001") is None


def test_evidence_at_burst_sites_raises_at_once():
    three = _analysis([B, C], kri=_red(C, "1001", "1002", "1003"))
    assert _proposal(three, "risk0001") is None
    four = _analysis([B, C], kri=_red(C, "1001", "1002", "1003", "1004"))
    row = _proposal(four, "risk0001")
    assert row["direction"] == "raise"
    assert "evidence at 4 sites (1001, 1002, 1003, 1004) at this cut:" in row["evidence"]


def test_one_amber_flag_is_not_evidence_but_two_indicators_or_a_csm_finding_at_a_site_are():
    amber = [(cut, "kri0001", site, -1) for cut in (B, C) for site in ("1001", "1002")]
    assert _proposal(_analysis([B, C], kri=amber), "risk0001") is None
    history = risk_history(load_risk_register(), _analysis([B, C], kri=amber)).filter(pl.col("risk_id") == "risk0001")
    assert history["n_flagged_sites"].to_list() == [2, 2] and history["n_evidence_sites"].to_list() == [0, 0]
    # amber on a second indicator of the risk (kri0021) at 1001, a significant CSM finding at 1002
    corroborated = _analysis([B, C], kri=[*amber, *((cut, "kri0021", "1001", -1) for cut in (B, C))],
                             csm=[(cut, "ae_under_reporting", "1002", 0.03, -0.5) for cut in (B, C)])
    history = risk_history(load_risk_register(), corroborated).filter(pl.col("risk_id") == "risk0001")
    assert history["evidence_sites"].to_list() == [["1001", "1002"], ["1001", "1002"]]
    assert _proposal(corroborated, "risk0001")["proposed_likelihood"] == 3
    # a site reporting more AEs (effect > 0) is not evidence of under-reporting
    over = _analysis([B, C], kri=amber, csm=[(cut, "ae_under_reporting", site, 0.001, 0.9)
                                             for cut in (B, C) for site in ("1001", "1002")])
    assert _proposal(over, "risk0001") is None


def test_a_qtl_breach_raises_at_once_a_secondary_crossing_does_not():
    breach = _analysis([C], qtl=[(C, "qtl0004", "tolerance limit breached")])
    row = _proposal(breach, "risk0009")
    assert (row["likelihood"], row["proposed_likelihood"], row["score"], row["proposed_score"],
            row["proposed_level"]) == (2, 3, 6, 9, "medium")
    assert "a QTL has its tolerance limit breached" in row["evidence"]
    assert _proposal(_analysis([C], qtl=[(C, "qtl0004", "secondary limit crossed")]), "risk0009") is None


def test_no_raise_beyond_3(tmp_path):
    import shutil
    from pathlib import Path

    import yaml

    library = Path(__file__).resolve().parents[2] / "key_risk_indicators"
    for path in library.glob("*.yaml"):
        shutil.copy(path, tmp_path)
    raw = yaml.safe_load((tmp_path / "risk0001.yaml").read_text()) | {"likelihood": 3}
    (tmp_path / "risk0001.yaml").write_text(yaml.safe_dump(raw))
    analysis = _analysis([B, C], kri=[*_red(B, "1001", "1002"), *_red(C, "1001", "1002")])
    assert "risk0001" not in review_proposals(load_risk_register(tmp_path), analysis)["risk_id"].to_list()


# --- lowering ------------------------------------------------------------------------------------------


def _quiet(cuts: list[date], kri: str = "kri0008") -> list[Kri]:
    """kri0008 (a risk0010 indicator) computed without a flag at two sites at every cut."""
    return [(cut, kri, site, 0) for cut in cuts for site in ("1001", "1002")]


def test_three_quiet_cuts_lower_the_likelihood():
    row = _proposal(_analysis([A, B, C], kri=_quiet([A, B, C])), "risk0010")
    assert {k: row[k] for k in ("direction", "likelihood", "proposed_likelihood", "score", "proposed_score",
                                "proposed_level")} == {"direction": "lower", "likelihood": 2, "proposed_likelihood": 1,
                                                       "score": 4, "proposed_score": 2, "proposed_level": "low"}
    assert ("and none of its indicators has flagged at any site, nor a QTL crossed a limit, at the last 3 cuts "
            "(2025-04-01 to 2025-06-01): kri0008 no flag; kri0009 not computed") in row["evidence"]
    # a low query rate is not kri0008's concern (high): still quiet
    low = _analysis([A, B, C], kri=[*_quiet([A, B, C]), (B, "kri0008", "1003", -2)])
    assert _proposal(low, "risk0010")["direction"] == "lower"


def test_two_quiet_cuts_are_not_enough_unless_the_rule_says_so():
    two = _analysis([B, C], kri=_quiet([B, C]))
    assert _proposal(two, "risk0010") is None
    assert _proposal(two, "risk0010", ReviewRule(quiet_cuts=2))["direction"] == "lower"
    # only the last quiet_cuts cuts count: a flag before them does not stop the proposal
    earlier = _analysis([date(2025, 3, 1), A, B, C], kri=[(date(2025, 3, 1), "kri0008", "1001", 2), *_quiet([A, B, C])])
    assert _proposal(earlier, "risk0010")["direction"] == "lower"


@pytest.mark.parametrize("noise", [
    [(B, "kri0008", "1001", 1)],           # one amber flag at the middle cut (in kri0008's direction of concern)
    [(B, "kri0019", "1002", 1)],           # another indicator of the risk
])
def test_any_flag_in_the_quiet_cuts_stops_lowering(noise):
    assert _proposal(_analysis([A, B, C], kri=[*_quiet([A, B, C]), *noise]), "risk0010") is None


def test_no_lowering_without_a_computed_indicator_a_qtl_crossing_or_below_1():
    not_computed = _analysis([A, B, C], kri=_quiet([A, C]))   # nothing of risk0010 computed at B
    assert _proposal(not_computed, "risk0010") is None
    qtl = _analysis([A, B, C], kri=_quiet([A, B, C], "kri0006"), qtl=[(B, "qtl0004", "secondary limit crossed")])
    assert _proposal(qtl, "risk0009") is None
    # risk0002 is judged likelihood 1: quiet, but nothing lower; risk0004 has no indicator
    quiet_all = _analysis([A, B, C], kri=_quiet([A, B, C], "kri0002"))
    proposals = review_proposals(load_risk_register(), quiet_all)
    assert {"risk0002", "risk0004"}.isdisjoint(proposals["risk_id"].to_list())
    assert proposals.schema == PROPOSAL_COLUMNS


def test_an_analysis_without_cuts_has_no_proposals():
    empty = Analysis("S", [], pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), pl.DataFrame(),
                     pl.DataFrame(schema=CSM_COLUMNS))
    assert review_proposals(load_risk_register(), empty).is_empty()


# --- the rule file ----------------------------------------------------------------------------------------


def test_the_rule_file_of_a_library_folder_is_used(tmp_path):
    (tmp_path / "risk_review.yaml").write_text("min_sites: 2\npersist_cuts: 2\nburst_sites: 4\n"
                                               "amber_indicators: 2\nquiet_cuts: 2\n")
    assert load_review_rule(tmp_path).quiet_cuts == 2
    assert load_review_rule(tmp_path / "missing-folder-uses-the-shipped-rule").quiet_cuts == 3


@pytest.mark.parametrize(("text", "message"), [
    ("min_sites: 2\nquiet: 3\n", "quiet: Extra inputs are not permitted"),
    ("min_sites: 0\n", "min_sites: Input should be greater than or equal to 1"),
    ("min_sites: 5\nburst_sites: 4\n", "burst_sites (4) must be at least min_sites (5)"),
    ("- 2\n", "needs a mapping"),
])
def test_a_bad_rule_file_names_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "risk_review.yaml"
    path.write_text(text)
    with pytest.raises(DefinitionError) as info:
        load_review_rule(tmp_path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_bad_override_is_a_definition_error():
    with pytest.raises(DefinitionError, match="burst_sites"):
        load_review_rule(min_sites=9)


# --- with injected anomalies ------------------------------------------------------------------------------


def test_injected_ae_under_reporting_persists_over_two_cuts_and_proposes_raising(ae_analysis):
    history = risk_history(load_risk_register(), ae_analysis).filter(pl.col("risk_id") == "risk0001")
    assert history.height == 2
    for sites in history["evidence_sites"]:
        assert set(UNDER_REPORTING) <= set(sites)
    row = _proposal(ae_analysis, "risk0001")
    assert (row["direction"], row["likelihood"], row["proposed_likelihood"], row["proposed_score"]) == ("raise", 2, 3, 27)


# --- decisions joined to the proposals --------------------------------------------------------------------


def test_review_queue_shows_this_cuts_decisions_and_the_latest_earlier_one_in_the_same_direction():
    proposals = pl.DataFrame({"risk_id": ["risk0001", "risk0003", "risk0010"],
                              "direction": ["raise", "raise", "lower"]})
    at = datetime(2025, 6, 2, 9, 0, tzinfo=timezone.utc)
    decisions = pl.DataFrame([
        ("S", "risk0001", A, 2, 3, "rejected", "one site only", "e", "quinn", at),
        ("S", "risk0001", B, 2, 3, "rejected", "explained at SDR", "e", "ada", at),
        ("S", "risk0010", B, 3, 2, "rejected", "not yet", "e", "quinn", at),    # lower 3 -> 2: same direction
        ("S", "risk0010", A, 1, 2, "accepted", "raise once", "e", "quinn", at),  # a raise: not shown for a lowering
        ("S", "risk0003", C, 2, 3, "accepted", "confirmed", "e", "quinn", at),
    ], schema=DECISION_COLUMNS, orient="row")
    queue = review_queue(proposals, decisions, C)
    assert queue.select("risk_id", "decision", "decided_by", "earlier").rows() == [
        ("risk0001", None, None, f"rejected at {B} by ada: explained at SDR"),
        ("risk0010", None, None, f"rejected at {B} by quinn: not yet"),
        ("risk0003", "accepted", "quinn", None)]
    assert review_queue(proposals, pl.DataFrame(schema=DECISION_COLUMNS), C)["decision"].null_count() == 3
