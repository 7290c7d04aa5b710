"""The study's own risk register in the store: template import, edits, review decisions; every
change audited and permitted by role; optimistic versions."""

from __future__ import annotations

from datetime import date

import pytest

from rbqm.permissions import PermissionDenied
from rbqm.risk import load_risk_register, review_proposals, score_register
from rbqm.store import audit
from rbqm.store import risks as store_risks
from rbqm.store.audit import check_chain
from rbqm.store.errors import ConflictError, NotFoundError, StoreError
from tests.store.conftest import ADMIN, LEAD, MONITOR, VIEWER

STUDY = "S1"
CUT = date(2025, 6, 1)


def _records(store, object_id: str):
    with store.read() as session:
        return audit.list_records(session, ADMIN, object_type="risk", object_id=object_id)


def test_template_import_is_audited_once_per_risk_and_idempotent(store, people):
    added = store_risks.import_template(store, LEAD, STUDY)
    assert added == tuple(r.id for r in load_risk_register().risks)
    assert store_risks.import_template(store, LEAD, STUDY) == ()
    stored = store_risks.list_risks(store, VIEWER, STUDY)
    assert [r.risk for r in stored] == list(load_risk_register().risks) and {r.version for r in stored} == {1}
    (record,) = _records(store, f"{STUDY}/risk0001")
    assert (record.actor, record.action, record.old_value) == (LEAD, "risk.add", None)
    assert record.new_value["likelihood"] == 2
    register = store_risks.study_register(store, VIEWER, STUDY)
    assert score_register(register).equals(score_register(load_risk_register()))
    assert store_risks.study_register(store, VIEWER, "OTHER") is None


def test_update_is_validated_audited_and_versioned(store, people):
    store_risks.import_template(store, ADMIN, STUDY)
    risk = store_risks.update_risk(store, LEAD, STUDY, "risk0004", reason="consent dates now in the EDC",
                                   indicators=["kri0004"], owner=LEAD, expected_version=1)
    assert risk.risk.indicators == ("kri0004",) and risk.risk.owner == LEAD and risk.version == 2
    record = _records(store, f"{STUDY}/risk0004")[-1]
    assert record.action == "risk.edit" and record.reason == "consent dates now in the EDC"
    assert record.old_value["indicators"] == [] and record.new_value["indicators"] == ["kri0004"]
    with pytest.raises(ConflictError, match="you read version 1, the store has version 2"):
        store_risks.update_risk(store, LEAD, STUDY, "risk0004", reason="x", impact=2, expected_version=1)
    with pytest.raises(StoreError, match="impact: Input should be less than or equal to 3"):
        store_risks.update_risk(store, LEAD, STUDY, "risk0004", reason="x", impact=4)
    with pytest.raises(StoreError, match="unknown indicator 'kri0999'"):
        store_risks.update_risk(store, LEAD, STUDY, "risk0004", reason="x", indicators=["kri0999"])
    with pytest.raises(StoreError, match="cannot change id"):
        store_risks.update_risk(store, LEAD, STUDY, "risk0004", reason="x", id="risk0099")
    with pytest.raises(StoreError, match="a reason is required"):
        store_risks.update_risk(store, LEAD, STUDY, "risk0004", reason=" ", impact=2)
    with pytest.raises(NotFoundError):
        store_risks.update_risk(store, LEAD, STUDY, "risk0099", reason="x", impact=2)
    unchanged = store_risks.update_risk(store, LEAD, STUDY, "risk0004", reason="same", owner=LEAD)
    assert unchanged.version == 2 and len(_records(store, f"{STUDY}/risk0004")) == 2


def test_add_risk_rejects_duplicates_and_unknown_categories(store, people):
    store_risks.import_template(store, ADMIN, STUDY)
    new = load_risk_register().risks[0].model_copy(update={"id": "risk0100", "name": "Unblinding"})
    assert store_risks.add_risk(store, LEAD, STUDY, new, reason="study-specific").version == 1
    with pytest.raises(ConflictError, match="already in the register"):
        store_risks.add_risk(store, LEAD, STUDY, new, reason="again")
    with pytest.raises(StoreError, match="unknown category 'blinding'"):
        store_risks.add_risk(store, LEAD, STUDY, new.model_copy(update={"id": "risk0101", "category": "blinding"}),
                             reason="x")


@pytest.mark.parametrize("actor", [MONITOR, VIEWER])
def test_only_quality_lead_and_admin_edit_and_review_and_nothing_is_written(store, people, actor):
    store_risks.import_template(store, ADMIN, STUDY)
    with store.read() as session:
        before = check_chain(session)
    with pytest.raises(PermissionDenied, match="may not risk.edit"):
        store_risks.update_risk(store, actor, STUDY, "risk0001", reason="x", likelihood=3)
    with pytest.raises(PermissionDenied, match="may not risk.review"):
        store_risks.decide_proposal(store, actor, STUDY, "risk0001", cut_date=CUT, proposed_likelihood=3,
                                    evidence="e", accept=True, reason="x")
    with store.read() as session:
        assert check_chain(session) == before
    assert store_risks.list_risks(store, actor, STUDY)[0].risk.likelihood == 2


def test_accepting_and_rejecting_review_proposals(store, people, ae_analysis):
    store_risks.import_template(store, ADMIN, STUDY)
    register = store_risks.study_register(store, LEAD, STUDY)
    proposals = {row["risk_id"]: row for row in review_proposals(register, ae_analysis).iter_rows(named=True)}
    cut = ae_analysis.cut_dates[-1]
    ae = proposals["risk0001"]
    risk = store_risks.decide_proposal(store, LEAD, STUDY, "risk0001", cut_date=cut,
                                       proposed_likelihood=ae["proposed_likelihood"], evidence=ae["evidence"],
                                       accept=True, reason="two sites confirmed at SDR", expected_version=1)
    assert (risk.risk.likelihood, risk.risk.score, risk.version) == (3, 27, 2)
    elig = proposals["risk0003"]
    kept = store_risks.decide_proposal(store, LEAD, STUDY, "risk0003", cut_date=cut,
                                       proposed_likelihood=elig["proposed_likelihood"], evidence=elig["evidence"],
                                       accept=False, reason="kri0014 counts screen-failure re-screens; known")
    assert (kept.risk.likelihood, kept.version) == (2, 1)
    with pytest.raises(ConflictError, match="was rejected by quinn already"):
        store_risks.decide_proposal(store, ADMIN, STUDY, "risk0003", cut_date=cut, proposed_likelihood=3,
                                    evidence="e", accept=True, reason="x")
    decisions = store_risks.list_decisions(store, VIEWER, STUDY)
    assert decisions.select("risk_id", "likelihood", "proposed_likelihood", "decision").rows() == [
        ("risk0001", 2, 3, "accepted"), ("risk0003", 2, 3, "rejected")]
    record = _records(store, f"{STUDY}/risk0001")[-1]
    assert record.action == "risk.review" and record.new_value["decision"] == "accepted"
    assert record.old_value["likelihood"] == 2 and record.new_value["likelihood"] == 3
    # the accepted likelihood is now 3: no proposal for it at the same evidence
    after = review_proposals(store_risks.study_register(store, LEAD, STUDY), ae_analysis)
    assert "risk0001" not in after["risk_id"].to_list()


def test_a_proposal_to_lower_is_decided_like_one_to_raise(store, people):
    store_risks.import_template(store, ADMIN, STUDY)
    with pytest.raises(StoreError, match="a reason is required"):
        store_risks.decide_proposal(store, LEAD, STUDY, "risk0010", cut_date=CUT, proposed_likelihood=1,
                                    evidence="quiet for 3 cuts", accept=True, reason="")
    risk = store_risks.decide_proposal(store, LEAD, STUDY, "risk0010", cut_date=CUT, proposed_likelihood=1,
                                       evidence="quiet for 3 cuts", accept=True, reason="no late data for a quarter")
    assert (risk.risk.likelihood, risk.risk.score, risk.version) == (1, 2, 2)
    record = _records(store, f"{STUDY}/risk0010")[-1]
    assert (record.actor, record.action, record.reason) == (LEAD, "risk.review", "no late data for a quarter")
    assert (record.old_value["likelihood"], record.new_value["likelihood"]) == (2, 1)
    assert record.new_value["decision"] == "accepted" and record.new_value["proposed_likelihood"] == 1
    decisions = store_risks.list_decisions(store, VIEWER, STUDY)
    assert decisions.select("risk_id", "likelihood", "proposed_likelihood", "decision").rows() == [
        ("risk0010", 2, 1, "accepted")]


@pytest.mark.parametrize("actor", [MONITOR, VIEWER])
def test_owner_rationale_and_controls_are_edited_only_by_permitted_roles(store, people, actor):
    store_risks.import_template(store, ADMIN, STUDY)
    changes = dict(owner=LEAD, rationale="new rationale", controls=["weekly AE reconciliation"])
    with pytest.raises(PermissionDenied, match="may not risk.edit"):
        store_risks.update_risk(store, actor, STUDY, "risk0001", reason="x", **changes)
    with pytest.raises(PermissionDenied, match="may not risk.edit"):
        store_risks.import_template(store, actor, "S2")
    risk = store_risks.update_risk(store, LEAD, STUDY, "risk0001", reason="quarterly review", **changes)
    assert (risk.risk.owner, risk.risk.rationale, risk.risk.controls) == (LEAD, "new rationale",
                                                                          ("weekly AE reconciliation",))
    record = _records(store, f"{STUDY}/risk0001")[-1]
    assert record.old_value["controls"][0].startswith("AE reconciliation")
    assert record.new_value["controls"] == ["weekly AE reconciliation"] and record.actor == LEAD
    with pytest.raises(StoreError, match="controls"):
        store_risks.update_risk(store, LEAD, STUDY, "risk0001", reason="x", controls=[])
