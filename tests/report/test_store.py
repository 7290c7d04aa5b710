"""The report with the store's records: signal workflow, QTL limits and their history, breach log, risk register."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from rbqm.analysis import analyze_study
from rbqm.errors import RbqmError
from rbqm.report import make_report, read_store
from rbqm.report.layout import layout_report
from rbqm.risk import load_risk_register
from rbqm.signals import derive_signals
from rbqm.store import open_store
from rbqm.store import qtl as store_qtl
from rbqm.store import risks as store_risks
from rbqm.store import signals as store_signals

from .conftest import make_store


@pytest.fixture(scope="module")
def stored(tmp_path_factory, analysis, study):
    """A store with the study's signals recorded and worked on, a QTL limit set, breaches opened, a register."""
    store = open_store(make_store(tmp_path_factory.mktemp("store") / "rbqm.db"))
    derived = derive_signals(analysis)
    store_signals.sync_signals(store, "ada", derived)
    latest = derived.filter(pl.col("cut_date") == analysis.cut_dates[-1], pl.col("state") != "resolved")
    worked, closed = latest["signal_id"][0], latest["signal_id"][1]
    store_signals.update_signal(store, "ada", worked, reason="triage", status="under_review", owner="ada",
                                due_date=date(2025, 1, 15))
    store_signals.update_signal(store, "ada", closed, reason="known cause", status="closed_no_action",
                                justification="site explained it: a known local practice")
    store_qtl.set_limit(store, "ada", analysis.study_id, "qtl0001", limit=0.3, secondary_limit=0.22,
                        rationale="historical rate 17% in phase II")
    limits = store_qtl.stored_limits(store, analysis.study_id)
    with_limits = analyze_study(study, csm=True, qtl_limits=limits)
    store_qtl.sync_breaches(store, "ada", analysis.study_id, with_limits.qtl)
    store_risks.import_template(store, "ada", analysis.study_id)
    yield store, with_limits, worked, closed
    store.close()


def test_the_report_shows_the_workflow_limits_breaches_and_register(stored, study):
    store, analysis, worked, closed = stored
    report = make_report(analysis, study_dir=study, store=store, actor="sam")  # a sponsor viewer may read it all
    assert report.store.used
    signals = report.signals.filter(pl.col("state") != "resolved")
    row = signals.filter(pl.col("signal_id") == worked).row(0, named=True)
    assert (row["status"], row["owner"], row["due_date"]) == ("under_review", "ada", date(2025, 1, 15))
    assert set(signals["status"]) >= {"new", "under_review", "closed_no_action"}
    assert row["overdue"]  # due 2025-01-15, not closed: overdue on any later day
    assert signals.filter(pl.col("signal_id") == closed)["status"].item() == "closed_no_action"
    qtl = report.qtl.filter(pl.col("qtl_id") == "qtl0001").row(0, named=True)
    assert (qtl["limits_from"], qtl["limit"], qtl["secondary_limit"]) == ("study", 0.3, 0.22)
    assert report.store.limit_history.select("qtl_id", "by", "old", "new").rows() == [
        ("qtl0001", "ada", "library", "secondary 0.22, tolerance 0.3")]
    breached = analysis.qtl.filter(pl.col("status") == "tolerance limit breached")["qtl_id"].unique().sort()
    assert report.store.breach_log["qtl_id"].unique().sort().to_list() == breached.to_list()
    assert report.risk is not None and report.risk.register.height == len(load_risk_register().risks)
    titles = {block.title for section in layout_report(report) for block in section.blocks
              if getattr(block, "title", None)}
    assert {"Breach log", "Limit history", "Register", "Review proposals", "Actioned signals, worsened first"} <= titles


def test_an_unknown_actor_cannot_read_the_store(stored, study):
    store, analysis, _, _ = stored
    with pytest.raises(RbqmError):
        read_store(store, "mallory", analysis.study_id)


def test_a_store_without_records_of_the_study_gives_empty_sections(tmp_path, analysis, study):
    store = open_store(make_store(tmp_path / "empty.db"))
    try:
        report = make_report(analysis, study_dir=study, store=store, actor="ada")
    finally:
        store.close()
    assert report.store.used and report.risk is None
    assert set(report.signals.filter(pl.col("state") != "resolved")["status"]) == {"not recorded"}
    assert report.store.breach_log.is_empty() and report.store.limit_history.is_empty()
