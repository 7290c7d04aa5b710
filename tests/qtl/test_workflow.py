"""The QTL workflow: a study's own limits (audited, with history and permissions), breach evaluations
across synthetic cuts, the breach log (CSV and report section) and ``rbqm qtl``; on SQLite and on
PostgreSQL (the ``store`` fixture of tests/store, reused by tests/qtl/conftest.py)."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from typer.testing import CliRunner

from rbqm.analysis import analyze_study
from rbqm.cli import app
from rbqm.permissions import PermissionDenied
from rbqm.qtl import (
    QTL_RESULT_COLUMNS, breach_log_csv, breach_log_markdown, load_qtl_definitions, qtl_trend, study_qtls,
)
from rbqm.store import ConflictError, StoreError
from rbqm.store import qtl as store_qtl
from rbqm.store.audit import check_chain, list_records
from synthetic import AnomalySpec, SynthConfig, generate_study
from tests.store.conftest import ADMIN, LEAD, MONITOR, VIEWER

STUDY = "RBQM-SYN-01"
pytestmark = pytest.mark.usefixtures("people")  # every test: a store of each backend, one account per role


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A study of four cuts whose eligibility violations (qtl0002) exceed the tolerance limit."""
    folder = tmp_path_factory.mktemp("qtl") / "study"
    anomaly = AnomalySpec(type="excess_eligibility_violations", magnitude=0.35, sites=("1001", "1002", "1003"),
                          start=0.0)
    generate_study(SynthConfig(sites=16, subjects=1600, countries=3, seed=5, months=18, cuts=4,
                               anomalies=(anomaly,)), folder)
    return folder, analyze_study(folder, csm=False)


def test_quality_lead_sets_and_changes_a_limit_audited_with_history(store):
    first = store_qtl.set_limit(store, LEAD, STUDY, "qtl0001", limit=0.3, secondary_limit=0.22,
                                rationale="phase II rate 17%")
    second = store_qtl.set_limit(store, LEAD, STUDY, "qtl0001", limit=0.28, secondary_limit=0.21,
                                 expected_rate=0.16, rationale="protocol amendment 2", expected_version=1)
    assert (first["version"], second["version"]) == (1, 2)
    history = store_qtl.limit_history(store, VIEWER, STUDY, "qtl0001")
    assert [(e.actor, e.action, e.reason) for e in history] == [
        (LEAD, "qtl.set_limit", "phase II rate 17%"), (LEAD, "qtl.set_limit", "protocol amendment 2")]
    assert history[0].old_value is None
    assert history[0].new_value == {"limit": 0.3, "secondary_limit": 0.22, "expected_rate": None, "method": None}
    assert history[1].old_value == history[0].new_value
    assert history[1].new_value == {"limit": 0.28, "secondary_limit": 0.21, "expected_rate": 0.16, "method": None}
    effective = {d.id: d for d in store_qtl.effective_definitions(store, STUDY, load_qtl_definitions())}
    assert (effective["qtl0001"].expected_rate, effective["qtl0001"].secondary_limit,
            effective["qtl0001"].tolerance_limit) == (0.16, 0.21, 0.28)
    assert effective["qtl0003"] == {d.id: d for d in load_qtl_definitions()}["qtl0003"]
    assert store_qtl.stored_limits(store, "OTHER") == {}


@pytest.mark.parametrize("who", [MONITOR, VIEWER])
def test_other_roles_cannot_set_limits_and_nothing_is_written(store, who):
    with store.read() as session:
        before = check_chain(session)
    with pytest.raises(PermissionDenied, match=f"{who} .* may not qtl.set_limit: only admin, quality_lead may"):
        store_qtl.set_limit(store, who, STUDY, "qtl0001", limit=0.3, secondary_limit=0.22, rationale="try")
    with store.read() as session:
        assert check_chain(session) == before
    assert store_qtl.stored_limits(store, STUDY) == {}


def test_stale_version_rationale_and_invalid_limits_are_refused(store):
    store_qtl.set_limit(store, LEAD, STUDY, "qtl0001", limit=0.3, secondary_limit=0.22, rationale="first")
    with pytest.raises(ConflictError, match="you read version 0, the store has version 1"):
        store_qtl.set_limit(store, ADMIN, STUDY, "qtl0001", limit=0.3, secondary_limit=0.2, rationale="race",
                            expected_version=0)
    with pytest.raises(StoreError, match="a rationale is required"):
        store_qtl.set_limit(store, LEAD, STUDY, "qtl0001", limit=0.3, secondary_limit=0.22, rationale=" ")
    with pytest.raises(StoreError, match="limits must increase"):
        store_qtl.set_limit(store, LEAD, STUDY, "qtl0001", limit=0.2, secondary_limit=0.22, rationale="x")
    with pytest.raises(StoreError, match="give --method proportion_exact or beta_binomial"):
        store_qtl.set_limit(store, LEAD, STUDY, "qtl0002", limit=0.06, secondary_limit=0.04, rationale="x")
    with pytest.raises(StoreError, match="unknown QTL 'qtl9999'"):
        store_qtl.set_limit(store, LEAD, STUDY, "qtl9999", limit=0.06, secondary_limit=0.04, rationale="x")
    assert [e.reason for e in store_qtl.limit_history(store, LEAD, STUDY, "qtl0001")] == ["first"]


def test_status_over_cuts_and_the_breach_workflow(store, study, tmp_path):
    _, analysis = study
    trend = qtl_trend(analysis.qtl)
    eligibility = trend.filter(pl.col("qtl_id") == "qtl0002")
    assert eligibility["status"].to_list() == ["tolerance limit breached"] * 4
    assert eligibility["change"].to_list() == ["first", "same", "same", "same"]
    assert trend.filter(pl.col("qtl_id") == "qtl0004")["change"].to_list()[:2] == ["first", "worse"]

    pending = store_qtl.pending_breaches(store, STUDY, analysis.qtl)
    opened = store_qtl.sync_breaches(store, MONITOR, STUDY, analysis.qtl)
    log = store_qtl.breach_log(store, STUDY)
    assert "qtl0002" in log["qtl_id"].to_list() and len(opened) == log.height
    assert sorted(zip(pending["qtl_id"], pending["cut_date"])) == sorted(zip(log["qtl_id"], log["first_cut"]))
    assert store_qtl.pending_breaches(store, STUDY, analysis.qtl).is_empty()
    row = log.filter(pl.col("qtl_id") == "qtl0002").row(0, named=True)
    assert (row["status"], row["first_cut"]) == ("open", analysis.cut_dates[0])
    first = analysis.qtl.filter(pl.col("qtl_id") == "qtl0002", pl.col("cut_date") == analysis.cut_dates[0])
    assert (row["estimate"], row["limit"]) == (first["estimate"].item(), first["limit"].item())
    assert store_qtl.sync_breaches(store, MONITOR, STUDY, analysis.qtl) == []  # already open: nothing new

    breach = row["breach_id"]
    with pytest.raises(StoreError, match="only an evaluated breach can be signed off"):
        store_qtl.sign_off_breach(store, LEAD, breach, reason="too early")
    with pytest.raises(PermissionDenied):
        store_qtl.evaluate_breach(store, VIEWER, breach, systemic=True, root_cause="x", capa="y", reason="z")
    evaluated = store_qtl.evaluate_breach(
        store, MONITOR, breach, systemic=True, root_cause="eligibility criterion 4 misread at three sites",
        capa="protocol clarification letter; retraining of sites 1001-1003", reason="evaluation meeting",
        expected_version=row["version"])
    assert evaluated["status"] == "evaluated" and evaluated["assessed_by"] == MONITOR
    with pytest.raises(PermissionDenied, match="may not qtl.sign_off"):
        store_qtl.sign_off_breach(store, MONITOR, breach, reason="self sign-off")
    signed = store_qtl.sign_off_breach(store, LEAD, breach, reason="QTL review board")
    assert (signed["status"], signed["signed_off_by"]) == ("signed_off", LEAD)
    with pytest.raises(StoreError, match="signed off"):
        store_qtl.evaluate_breach(store, MONITOR, breach, systemic=False, root_cause="x", capa="y", reason="z")
    # still breached after sign-off: the run is recorded, so nothing reopens
    assert store_qtl.sync_breaches(store, MONITOR, STUDY, analysis.qtl) == []

    log = store_qtl.breach_log(store, STUDY)
    path = breach_log_csv(log, tmp_path / "breaches.csv")
    csv = pl.read_csv(path)
    assert csv.filter(pl.col("qtl_id") == "qtl0002")["root_cause"].item().startswith("eligibility criterion 4")
    text = breach_log_markdown(log)
    assert text.startswith("## Important QTL deviations")
    assert "Eligibility violations (qtl0002)" in text
    assert "eligibility criterion 4 misread at three sites" in text and "retraining of sites 1001-1003" in text
    assert "systemic; assessed by monty" in text and f"**Sign-off:** {LEAD} on" in text


def _cuts_frame(statuses: dict[str, str], study_id: str = STUDY) -> pl.DataFrame:
    """compute_qtls' rows at four monthly cuts: per QTL, one letter a cut (W within, S secondary, B breached);
    the estimate at cut k is 0.1 k, so each cut's evidence is recognisable."""
    names = {"W": "within limits", "S": "secondary limit crossed", "B": "tolerance limit breached"}
    return pl.DataFrame([
        {"study_id": study_id, "cut_date": date(2025, k, 1), "qtl_id": qtl_id, "numerator": 10.0 * k,
         "denominator": 100.0, "estimate": 0.1 * k, "lower": 0.05 * k, "upper": 0.15 * k, "limit": 0.25,
         "secondary_limit": 0.2, "status": names[letter], "probability_exceed": 0.9, "method": "proportion_exact",
         "note": None}
        for qtl_id, letters in statuses.items() for k, letter in enumerate(letters, 1)], schema=QTL_RESULT_COLUMNS)


def test_a_breach_that_recovers_and_returns_opens_again_only_after_sign_off(store):
    frame = pl.concat([_cuts_frame({"qtl0001": "BBWB", "qtl0003": "WSBB", "qtl0006": "WSSW"}),
                       _cuts_frame({"qtl0001": "BBBB"}, study_id="OTHER")])  # another study: ignored
    pending = store_qtl.pending_breaches(store, STUDY, frame)
    # qtl0001's second run (cut 4) waits while the evaluation of its first run (cut 1) is not signed off
    assert pending.select("qtl_id", "cut_date", "estimate").rows() == [
        ("qtl0001", date(2025, 1, 1), pytest.approx(0.1)), ("qtl0003", date(2025, 3, 1), pytest.approx(0.3))]
    with pytest.raises(PermissionDenied, match="may not qtl.evaluate"):
        store_qtl.sync_breaches(store, VIEWER, STUDY, frame)
    assert store_qtl.breach_log(store, STUDY).is_empty()
    first, third = store_qtl.sync_breaches(store, MONITOR, STUDY, frame)
    assert store_qtl.sync_breaches(store, MONITOR, STUDY, frame) == []
    assert store_qtl.pending_breaches(store, STUDY, frame).is_empty()

    store_qtl.evaluate_breach(store, MONITOR, first, systemic=False, root_cause="one site", capa="retrain",
                              reason="meeting")
    assert store_qtl.pending_breaches(store, STUDY, frame).is_empty()  # evaluated is not closed
    store_qtl.sign_off_breach(store, LEAD, first, reason="board")
    again = store_qtl.pending_breaches(store, STUDY, frame)
    assert again.select("qtl_id", "cut_date", "estimate").rows() == [("qtl0001", date(2025, 4, 1), pytest.approx(0.4))]
    (fourth,) = store_qtl.sync_breaches(store, MONITOR, STUDY, frame)
    log = store_qtl.breach_log(store, STUDY)
    assert log.select("breach_id", "qtl_id", "first_cut", "status").rows() == [
        (first, "qtl0001", date(2025, 1, 1), "signed_off"), (third, "qtl0003", date(2025, 3, 1), "open"),
        (fourth, "qtl0001", date(2025, 4, 1), "open")]
    assert log["estimate"].to_list() == pytest.approx([0.1, 0.3, 0.4])
    with store.read() as session:
        opened = [(r.actor, r.object_id) for r in list_records(session, ADMIN, object_type="qtl_breach")
                  if r.action == "qtl.breach_open"]
    assert sorted(opened) == sorted((MONITOR, str(b)) for b in (first, third, fourth))


def test_stored_limits_change_the_status(store, study):
    folder, analysis = study
    store_qtl.set_limit(store, LEAD, STUDY, "qtl0002", limit=0.15, secondary_limit=0.1, method="proportion_exact",
                        rationale="known higher rate in this population")
    frame = study_qtls(folder, limits=store_qtl.stored_limits(store, STUDY))
    assert frame.drop("probability_exceed", "limit", "secondary_limit", "status", "method").filter(
        pl.col("qtl_id") != "qtl0002").equals(analysis.qtl.drop(
            "probability_exceed", "limit", "secondary_limit", "status", "method").filter(pl.col("qtl_id") != "qtl0002"))
    eligibility = frame.filter(pl.col("qtl_id") == "qtl0002")
    assert eligibility["status"].to_list() == ["secondary limit crossed"] * 4
    assert eligibility["limit"].to_list() == [0.15] * 4


def test_cli_prints_every_qtl_and_runs_the_workflow(store, study, tmp_path):
    folder, analysis = study
    db = ["--db", store.url]
    runner = CliRunner()
    result = runner.invoke(app, ["qtl", str(folder), *db])
    assert result.exit_code == 0, result.output
    for qtl_id in analysis.qtl["qtl_id"].unique():
        assert qtl_id in result.output
    assert "tolerance limit breached" in result.output and "BREACH > BREACH" in result.output

    result = runner.invoke(app, ["qtl", "set-limit", STUDY, "qtl0001", "--limit", "0.3", "--secondary", "0.22",
                                 "--rationale", "phase II", *db, "--actor", LEAD])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["qtl", "set-limit", STUDY, "qtl0001", "--limit", "0.3", "--secondary", "0.22",
                                 "--rationale", "try", *db, "--actor", VIEWER])
    assert result.exit_code == 2 and "may not qtl.set_limit" in result.output
    result = runner.invoke(app, ["qtl", "history", STUDY, "qtl0001", *db, "--actor", VIEWER])
    assert "phase II" in result.output and "0.22 / 0.3" in result.output
    result = runner.invoke(app, ["qtl", str(folder), *db, "--json"])
    rows = {r["qtl_id"]: r for r in __import__("json").loads(result.output)}
    assert (rows["qtl0001"]["limit"], rows["qtl0001"]["limits_from"]) == (0.3, "study")

    result = runner.invoke(app, ["qtl", "breaches", str(folder), "--sync", *db, "--actor", MONITOR])
    assert result.exit_code == 0, result.output
    breach = store_qtl.breach_log(store, STUDY).filter(pl.col("qtl_id") == "qtl0002")["breach_id"].item()
    result = runner.invoke(app, ["qtl", "sign-off", str(breach), "--reason", "early", *db, "--actor", LEAD])
    assert result.exit_code == 2 and "record its evaluation first: rbqm qtl evaluate" in result.output
    result = runner.invoke(app, ["qtl", "evaluate", str(breach), "--not-systemic", "--root-cause", "one site",
                                 "--capa", "retrain", "--reason", "review", *db, "--actor", MONITOR])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["qtl", "sign-off", str(breach), "--reason", "board", *db, "--actor", LEAD])
    assert result.exit_code == 0, result.output
    out = tmp_path / "log.md"
    result = runner.invoke(app, ["qtl", "breach-log", STUDY, "--format", "md", "--out", str(out), *db,
                                 "--actor", VIEWER])
    assert result.exit_code == 0, result.output
    assert "not systemic (isolated)" in out.read_text()
    result = runner.invoke(app, ["qtl", "breach-log", STUDY, "--format", "csv", *db, "--actor", VIEWER])
    assert "qtl0002" in result.output and "retrain" in result.output


def test_the_report_section_says_which_breaches_still_await_evaluation():
    from datetime import date as _date

    from rbqm.store.qtl import BREACH_LOG_COLUMNS

    rows = [{"breach_id": i, "study_id": "S1", "qtl_id": q, "first_cut": _date(2025, 1, i), "status": s,
             "method": "beta_binomial", "estimate": 0.2, "lower": 0.1, "upper": 0.3, "limit": 0.15,
             "secondary_limit": 0.1, "probability_exceed": 0.9, "version": 1}
            for i, (q, s) in enumerate([("qtl0001", "signed_off"), ("qtl0002", "open")], 1)]
    log = pl.DataFrame(rows, schema=BREACH_LOG_COLUMNS)
    text = breach_log_markdown(log, study_id="S1")
    assert "1 of them still await(s) evaluation (status open)" in text
    assert "Each was evaluated" not in text
    assert "Each was evaluated" in breach_log_markdown(log.filter(pl.col("status") != "open"), study_id="S1")
