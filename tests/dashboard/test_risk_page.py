"""The Risk assessment page through AppTest: the register with its indicators in words, the study level and
the gaps; a quality lead starts the study's register from the template, changes a risk and decides review
proposals (each with a required reason, stored and audited); a sponsor viewer sees it all read only.

The study has late data entry injected at sites 1003 and 1004 from its start and two data cuts, so the
review proposes raising the likelihood of risk0010 (late data entry) at the latest cut."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from rbqm.analysis import analyze_study
from rbqm.permissions import PermissionDenied
from rbqm.risk import assess_risks, load_risk_register
from rbqm.store import list_records, open_store
from rbqm.store import risks as store_risks
from synthetic import AnomalySpec, SynthConfig, generate_study

from .conftest import USER_OF, sign_in

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGE = "pages/risk.py"
IMPORT = "FormSubmitter:risk_import-Start the study's register from the template"
EDIT = "FormSubmitter:risk_edit-Save"
REVIEW = "FormSubmitter:risk_review-Record the decision"
LEAD, VIEWER = USER_OF["quality_lead"], USER_OF["sponsor_viewer"]


@pytest.fixture(autouse=True)
def _fresh_streamlit_cache() -> Iterator[None]:
    """Overrides conftest's: the same study for every test here, so the analysis is computed once."""
    yield


LATE_SITES = ("1003", "1004")


@pytest.fixture(scope="module")
def review_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with a 12-site study, late data entry at LATE_SITES and AE under-reporting at two sites."""
    data = tmp_path_factory.mktemp("risk_page") / "data"
    generate_study(SynthConfig(sites=12, subjects=480, countries=3, seed=3, months=12, cuts=2, anomalies=(
        AnomalySpec(type="ae_under_reporting", magnitude=0.8, sites=("1001", "1002"), start=0.0),
        AnomalySpec(type="late_data_entry", magnitude=5.0, sites=LATE_SITES, start=0.0))), data / "demo")
    return data


@pytest.fixture(scope="module")
def report(review_data: Path):
    """The engine's risk report of the study with the library's register (what the page must show)."""
    return assess_risks(load_risk_register(), analyze_study(review_data / "demo"))


@pytest.fixture
def demo_dir(review_data: Path, fresh_store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RBQM_DATA_DIR", str(review_data))
    return review_data


def open_page(role: str) -> AppTest:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=180), role).run()
    at = at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def forms(at: AppTest) -> set[str]:
    return {block.proto.form.form_id for block in at.get("form")}


TABLES = {"register": "controls", "proposals": "evidence", "gaps": "id"}
"""A column that tells the page's tables apart (AppTest does not expose a plain table's key)."""


def tables(at: AppTest, which: str) -> list:
    return [frame.value for frame in at.dataframe if TABLES[which] in frame.value.columns]


def table(at: AppTest, which: str):
    return tables(at, which)[0]


def records(url: str, study_id: str, action: str) -> list:
    store = open_store(url)
    try:
        with store.read() as session:
            return [r for r in list_records(session, "ada", object_type="risk") if r.action == action
                    and r.object_id.startswith(f"{study_id}/")]
    finally:
        store.close()


def with_store(url: str, call):
    store = open_store(url)
    try:
        return call(store)
    finally:
        store.close()


def test_the_register_study_level_gaps_and_downloads_match_the_engine(demo_dir: Path, report) -> None:
    at = open_page("sponsor_viewer")
    assert at.title[0].value == "Risk assessment"
    register = table(at, "register")
    assert register["risk_id"].tolist() == report.register["risk_id"].to_list()
    row = register[register["risk_id"] == "risk0001"].iloc[0]
    expected = report.register.row(by_predicate=pl.col("risk_id") == "risk0001", named=True)
    assert (row["factor"], row["score"], row["level"]) == ("Participant safety", 18, "▲▲ high")
    assert row["status"] == expected["status"] and row["status"].startswith("kri0001 ")
    assert row["controls"].startswith("AE reconciliation against source")
    overall = next(m for m in at.metric if m.label == "Overall study risk")
    assert report.study.level in overall.value
    risks_without, indicators_without = tables(at, "gaps")
    assert risks_without["id"].tolist() == ["risk0004"]
    unlinked = indicators_without["id"].tolist()
    assert unlinked == report.gaps.filter(pl.col("gap") == "indicator without risk")["id"].to_list()
    assert {"kri0005", "kri0011"} <= set(unlinked)
    assert len(at.get("download_button")) == 2
    book = zipfile.ZipFile(io.BytesIO(_workbook(report)))
    assert re.findall(r'<sheet name="([^"]+)"', book.read("xl/workbook.xml").decode()) == [
        "Study risk", "Register", "Gaps", "Review proposals"]


def _workbook(report) -> bytes:
    from rbqm.risk_export import workbook_bytes

    return workbook_bytes(report)


def test_a_sponsor_viewer_gets_no_form_and_the_store_refuses_its_edits(demo_dir: Path, fresh_store_url: str,
                                                                        report) -> None:
    with_store(fresh_store_url, lambda s: store_risks.import_template(s, LEAD, report.study_id))
    at = open_page("sponsor_viewer")
    assert not forms(at) and not at.text_area and not at.error
    assert any("Read only" in info.value for info in at.info)
    assert len(table(at, "register")) == len(load_risk_register().risks)
    with pytest.raises(PermissionDenied, match="may not risk.edit"):
        with_store(fresh_store_url, lambda s: store_risks.update_risk(s, VIEWER, report.study_id, "risk0001",
                                                                       reason="x", likelihood=3))
    assert records(fresh_store_url, report.study_id, "risk.edit") == []


def test_a_quality_lead_starts_the_register_and_changes_a_risk(demo_dir: Path, fresh_store_url: str, report) -> None:
    at = open_page("quality_lead")
    assert forms(at) == {"risk_import"} and any("no register of its own" in w.value for w in at.warning)
    at = at.button(key=IMPORT).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success[0].value == f"Started {report.study_id}'s register with {len(load_risk_register().risks)} risks."
    added = records(fresh_store_url, report.study_id, "risk.add")
    assert len(added) == len(load_risk_register().risks) and {r.actor for r in added} == {LEAD}
    assert "risk_edit" in forms(at)

    at.selectbox(key="risk_edit_id").set_value("risk0004").run()
    at.selectbox(key="risk_edit_impact").set_value(2)
    at.text_input(key="risk_edit_owner").input(LEAD)
    at.text_area(key="risk_edit_controls").input("Consent form check at every visit\n\nRe-consent tracker")
    at = at.button(key=EDIT).click().run()
    assert [e.value for e in at.error] == ["a reason is required: it is recorded in the audit trail"]
    assert records(fresh_store_url, report.study_id, "risk.edit") == []  # nothing written
    at.text_input(key="risk_edit_reason").input("consent monitored remotely now")
    at = at.button(key=EDIT).click().run()
    assert not at.error and at.success[0].value == "Saved risk0004: score 6 (version 2)."
    stored = {r.risk.id: r for r in with_store(fresh_store_url,
                                               lambda s: store_risks.list_risks(s, VIEWER, report.study_id))}
    risk = stored["risk0004"].risk
    assert (risk.impact, risk.owner, risk.controls) == (2, LEAD, ("Consent form check at every visit",
                                                                  "Re-consent tracker"))
    (record,) = records(fresh_store_url, report.study_id, "risk.edit")
    assert (record.actor, record.reason, record.old_value["impact"], record.new_value["impact"]) == (
        LEAD, "consent monitored remotely now", 3, 2)
    shown = table(at, "register")
    assert shown[shown["risk_id"] == "risk0004"].iloc[0]["owner"] == LEAD


def test_a_quality_lead_decides_proposals_with_a_reason(demo_dir: Path, fresh_store_url: str, report) -> None:
    late = report.proposals.row(by_predicate=pl.col("risk_id") == "risk0010", named=True)
    assert late["direction"] == "raise" and f"({', '.join(LATE_SITES)})" in late["evidence"]
    assert report.proposals.height >= 2, "the test study should give at least two review proposals"
    with_store(fresh_store_url, lambda s: store_risks.import_template(s, LEAD, report.study_id))
    at = open_page("quality_lead")
    assert {"risk_edit", "risk_review"} <= forms(at)
    shown = table(at, "proposals")
    assert shown[shown["risk_id"] == "risk0010"].iloc[0]["evidence"] == late["evidence"]
    assert set(shown["decision"]) == {"to decide"}
    first, second = report.proposals["risk_id"][:2]
    assert at.selectbox(key="risk_rev_id").value == first
    at.radio(key="risk_rev_decision").set_value("Reject")
    at = at.button(key=REVIEW).click().run()
    assert [e.value for e in at.error] == ["a reason is required: it is recorded in the audit trail"]
    assert records(fresh_store_url, report.study_id, "risk.review") == []
    at.radio(key="risk_rev_decision").set_value("Reject")
    at.text_area(key="risk_rev_reason").input("explained at the last site visit")
    at = at.button(key=REVIEW).click().run()
    assert not at.error and at.success[0].value.startswith(f"{first}: proposal rejected")
    proposals = table(at, "proposals")
    decided = proposals[proposals["risk_id"] == first].iloc[0]
    assert decided["decision"] == f"rejected by {LEAD}: explained at the last site visit"

    assert at.selectbox(key="risk_rev_id").value == second  # the decided proposal left the choice
    row = report.proposals.row(by_predicate=pl.col("risk_id") == second, named=True)
    at.text_area(key="risk_rev_reason").input("confirmed at source data review")
    at = at.button(key=REVIEW).click().run()
    assert not at.error, [e.value for e in at.error]
    stored = {r.risk.id: r.risk for r in with_store(fresh_store_url,
                                                    lambda s: store_risks.list_risks(s, VIEWER, report.study_id))}
    assert stored[second].likelihood == row["proposed_likelihood"]
    assert stored[first].likelihood == report.proposals.row(by_predicate=pl.col("risk_id") == first,
                                                            named=True)["likelihood"]
    decisions = with_store(fresh_store_url, lambda s: store_risks.list_decisions(s, VIEWER, report.study_id))
    assert decisions.select("risk_id", "decision", "decided_by").rows() == sorted(
        [(first, "rejected", LEAD), (second, "accepted", LEAD)])
    reviewed = records(fresh_store_url, report.study_id, "risk.review")
    assert [(r.object_id, r.new_value["decision"]) for r in reviewed] == [
        (f"{report.study_id}/{first}", "rejected"), (f"{report.study_id}/{second}", "accepted")]
