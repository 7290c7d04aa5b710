"""From signal to action, end to end, on SQLite and PostgreSQL.

A synthetic study whose site 1003 enters pages late, and its clean twin (same seed: the twins differ
only at site 1003), are cut monthly; the study below takes its cuts from one or the other, so the
problem appears at cut 2, persists at cut 3, is gone at cut 4 (the fix, simulated by the clean twin's
history) and comes back at cut 5. Replaying the cuts one at a time: the signal is recorded as new,
an action suggested for it (naming the oldest unentered pages) is planned, started and done, the
signal is resolved, its outcome counts as improved, and it reopens automatically when it reappears.
Every state change is tried first by a role that may not make it (refused, nothing written) and
leaves exactly the audit records expected. KRIs only (``csm=False``): the problem is a KRI's.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from rbqm.actions import suggest_actions
from rbqm.analysis import Analysis, analyze_study
from rbqm.derive import derive_tables
from rbqm.io import scan_study
from rbqm.outcomes import signal_outcomes, summarize_outcomes
from rbqm.signals import derive_signals
from rbqm.store.actions import action_baselines, add_action, list_actions, update_action
from rbqm.store.signals import get_signal, sync_signals, update_signal
from synthetic import AnomalySpec
from tests.signals.conftest import LATE_SITE
from tests.signals.timeline import chain_is_whole, records_of, refused, trail, twin_study, upto
from tests.store.conftest import MONITOR, VIEWER

SIGNAL = f"kri0010@{LATE_SITE}"
DESIGN = {"sites": 10, "subjects": 600, "countries": 2, "seed": 5, "months": 12}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study whose cuts come from the injected trial or its clean twin (timeline.TIMELINE)."""
    late = AnomalySpec(type="late_data_entry", magnitude=6.0, sites=(LATE_SITE,), start=0.0)
    return twin_study(tmp_path_factory.mktemp("e2e"), DESIGN, late)


@pytest.fixture(scope="module")
def analysis(study) -> Analysis:
    return analyze_study(study, csm=False)


@pytest.fixture(scope="module")
def derived(analysis) -> pl.DataFrame:
    return derive_signals(analysis)


def test_the_injected_problem_is_a_signal_only_while_present(derived, analysis):
    states = dict(derived.filter(pl.col("signal_id") == SIGNAL).select("cut_date", "state").rows())
    _, c2, c3, c4, c5 = analysis.cut_dates
    assert states == {c2: "new", c3: "persisting", c4: "resolved", c5: "new"}


def test_signal_to_action_to_outcome_and_reopening(store, people, study, analysis, derived):
    c1, c2, c3, c4, c5 = analysis.cut_dates
    at = lambda cut: derived.filter(pl.col("cut_date") <= cut)
    outcome = lambda cut: signal_outcomes(
        analysis, action_baselines(store, VIEWER, study_id=analysis.study_id), as_of=cut)

    # cut 1 (before the problem): no signal for the site's late entry
    assert SIGNAL not in sync_signals(store, MONITOR, at(c1)).added
    # cut 2: the problem appears -> a new signal
    refused(store, lambda: sync_signals(store, VIEWER, at(c2)))
    assert SIGNAL in sync_signals(store, MONITOR, at(c2)).added
    info = get_signal(store, VIEWER, SIGNAL)
    assert (info.status, info.first_cut, info.last_cut) == ("new", c2, c2)

    # the suggested action names the oldest unentered pages; the monitor plans it
    tables = derive_tables(scan_study(study / "cuts" / c2.isoformat()), as_of=c2)
    suggested = suggest_actions(upto(analysis, c2), at(c2), tables=tables).filter(pl.col("signal_id") == SIGNAL)
    first = suggested.row(0, named=True)
    assert first["action"] == "remote_review" and first["where_to_look"].startswith("Oldest unentered pages")
    oldest = (tables.with_sites("pages").filter(pl.col("SITEID") == LATE_SITE, ~pl.col("entered"))
              .sort("days_to_entry", descending=True).collect().row(0, named=True))
    assert f"{oldest['USUBJID']} {oldest['FORM']} visit {int(oldest['VISITNUM'])}" in first["where_to_look"]
    plan = {"action": first["action"], "description": first["where_to_look"], "owner": MONITOR,
            "due_date": c2 + timedelta(days=21), "reason": first["why"]}
    refused(store, lambda: add_action(store, VIEWER, SIGNAL, **plan))
    action = add_action(store, MONITOR, SIGNAL, **plan)
    assert (action.planned_cut, get_signal(store, VIEWER, SIGNAL).status) == (c2, "action_planned")
    assert outcome(c2)["outcome"].to_list() == ["too_early"]

    # cut 3: still there; the action starts
    assert SIGNAL in sync_signals(store, MONITOR, at(c3)).refreshed
    refused(store, lambda: update_action(store, VIEWER, action.id, status="in_progress", reason="x"))
    update_action(store, MONITOR, action.id, status="in_progress", reason="site visit booked")
    assert get_signal(store, VIEWER, SIGNAL).status == "in_progress"

    # cut 4: gone (the site caught up); the action is done, the signal resolved, the outcome improved
    report = sync_signals(store, MONITOR, at(c4))
    assert SIGNAL not in report.added + report.refreshed + report.reopened
    update_action(store, MONITOR, action.id, status="done", outcome="backlog entered", reason="entered")
    refused(store, lambda: update_signal(store, VIEWER, SIGNAL, status="resolved", reason="x"))
    refused(store, lambda: update_signal(store, MONITOR, SIGNAL, status="closed_no_action", justification="j",
                                          reason="x"))
    update_signal(store, MONITOR, SIGNAL, status="resolved", reason="no longer flagged at cut 4")
    improved = outcome(c4).row(0, named=True)
    assert (improved["signal_id"], improved["planned_cut"], improved["compared_cut"], improved["level"],
            improved["outcome"]) == (SIGNAL, c2, c4, 0, "improved")
    summary = summarize_outcomes(outcome(c4))
    assert (summary.improved, summary.assessed, summary.share_improved) == (1, 1, 1.0)

    # cut 5: back again -> reopened automatically
    refused(store, lambda: sync_signals(store, VIEWER, at(c5)))
    assert sync_signals(store, MONITOR, at(c5)).reopened == (SIGNAL,)
    info = get_signal(store, VIEWER, SIGNAL)
    assert (info.status, info.last_cut) == ("new", c5)
    assert outcome(c5)["compared_cut"].to_list() == [c5]
    assert [a.status for a in list_actions(store, VIEWER, signal_id=SIGNAL)] == ["done"]

    # the audit trail: every change, in order, by whom, from which status to which
    assert trail(store, SIGNAL) == [
        ("signal.add", MONITOR, None, "new"),
        ("signal_action.add", MONITOR, None, "planned"),
        ("signal.update", MONITOR, "new", "action_planned"),
        ("signal.refresh", MONITOR, "action_planned", "action_planned"),
        ("signal_action.update", MONITOR, "planned", "in_progress"),
        ("signal.update", MONITOR, "action_planned", "in_progress"),
        ("signal_action.update", MONITOR, "in_progress", "done"),
        ("signal.update", MONITOR, "in_progress", "resolved"),
        ("signal.reopen", MONITOR, "resolved", "new"),
    ]
    assert records_of(store, SIGNAL)[-1].reason == f"reappeared at cut {c5.isoformat()}"
    assert chain_is_whole(store)
