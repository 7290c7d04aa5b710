"""From a central monitoring finding to action and outcome, end to end, on SQLite and PostgreSQL.

A synthetic study in which 60% of the subjects site 1003 randomises have fabricated labs and vital
signs, and its clean twin (same seed), are cut monthly; the study takes its cuts from one or the
other (timeline.TIMELINE), so the fabrication is there at cuts 2, 3 and 5 and gone at cuts 1 and 4.
The analysis runs the whole CSM battery at every cut (with the data inconsistency score from 2
site-label permutations at the latest). The low-variability finding at site 1003 becomes a signal;
actions.yaml suggests targeted SDV and a for-cause visit, naming the steadiest subjects (who are the
fabricated ones); the quality lead reviews it, the monitor plans the SDV, starts it and closes it;
the signal is resolved when the finding is gone, its outcome is improved, it reopens when the
fabrication is back, and then its outcome is worsened (a stronger finding than when it was actioned).
Every change is refused to a role that may not make it and leaves exactly the audit records expected.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

import polars as pl
import pytest

from rbqm.actions import plan_visits, suggest_actions
from rbqm.analysis import Analysis, analyze_study
from rbqm.derive import derive_tables
from rbqm.io import scan_study
from rbqm.outcomes import signal_outcomes, summarize_outcomes
from rbqm.signals import CSM_ALPHA, CSM_RED, derive_signals
from rbqm.store.actions import action_baselines, add_action, list_actions, update_action
from rbqm.store.signals import get_signal, sync_signals, update_signal
from synthetic import AnomalySpec, SynthConfig, build_trial
from tests.signals.timeline import TIMELINE, chain_is_whole, records_of, refused, trail, twin_study, upto
from tests.store.conftest import LEAD, MONITOR, VIEWER

SITE = "1003"
SIGNAL = f"csm:low_variability:LB+VS@{SITE}"
DESIGN = {"sites": 10, "subjects": 600, "countries": 2, "seed": 5, "months": 12}
FABRICATION = AnomalySpec(type="fabricated_subjects", magnitude=0.6, sites=(SITE,), start=0.0)
SUBJECT = re.compile(r"RBQM-SYN-01-\d{4}-\d{4}")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return twin_study(tmp_path_factory.mktemp("e2e-csm"), DESIGN, FABRICATION)


@pytest.fixture(scope="module")
def analysis(study) -> Analysis:
    return analyze_study(study, permutations=2)


@pytest.fixture(scope="module")
def derived(analysis) -> pl.DataFrame:
    return derive_signals(analysis)


@pytest.fixture(scope="module")
def fabricated() -> set[str]:
    """The subjects whose results the injected trial fabricated (its internal records)."""
    records = build_trial(SynthConfig(**DESIGN, cuts=len(TIMELINE), anomalies=(FABRICATION,)))
    return set(records.subjects.filter(pl.col("fabricated"))["USUBJID"])


def _finding(analysis: Analysis, cut) -> dict:
    """The low-variability finding of the site at a cut."""
    return analysis.csm.filter(pl.col("cut_date") == cut, pl.col("test") == "low_variability",
                               pl.col("site_id") == SITE).row(0, named=True)


def test_the_finding_is_a_signal_only_while_the_fabrication_is_there(analysis, derived):
    c1, c2, c3, c4, c5 = analysis.cut_dates
    q = {cut: _finding(analysis, cut)["q_value"] for cut in analysis.cut_dates}
    assert q[c1] >= CSM_ALPHA and q[c4] >= CSM_ALPHA
    assert max(q[c2], q[c3], q[c5]) < CSM_RED
    rows = derived.filter(pl.col("signal_id") == SIGNAL).select("cut_date", "severity", "state", "consecutive_cuts")
    assert rows.rows() == [(c2, "red", "new", 1), (c3, "red", "persisting", 2), (c4, "red", "resolved", 0),
                           (c5, "red", "new", 1)]
    # the data inconsistency score ranks the site first at the latest cut
    latest = analysis.site_risk.filter(pl.col("cut_date") == c5)
    assert latest.filter(pl.col("dis_rank") == 1)["site_id"].to_list() == [SITE]


def test_csm_signal_to_action_to_outcome_and_reopening(store, people, study, analysis, derived, fabricated):
    c1, c2, c3, c4, c5 = analysis.cut_dates
    at = lambda cut: derived.filter(pl.col("cut_date") <= cut)
    outcome = lambda cut: signal_outcomes(
        analysis, action_baselines(store, VIEWER, study_id=analysis.study_id), as_of=cut)
    strength = lambda cut: -math.log10(_finding(analysis, cut)["q_value"])

    # cut 1 (clean): no signal for the site's low variability
    assert SIGNAL not in sync_signals(store, MONITOR, at(c1)).added
    # cut 2: the fabrication shows -> a new red signal, described by the CSM finding
    refused(store, lambda: sync_signals(store, VIEWER, at(c2)))
    assert SIGNAL in sync_signals(store, MONITOR, at(c2)).added
    info = get_signal(store, VIEWER, SIGNAL)
    assert (info.status, info.kind, info.indicator, info.site_id, info.severity, info.first_cut) == (
        "new", "csm", "low_variability:LB+VS", SITE, "red", c2)
    description = _finding(analysis, c2)["description"].rstrip(".")
    assert records_of(store, SIGNAL)[0].reason == (
        f"flagged at cut {c2.isoformat()}: {description}: red, new for 1 consecutive cut.")

    # the suggestions of actions.yaml's low_variability rule: targeted SDV and (red) a for-cause visit,
    # both naming the site's steadiest subjects, who are the fabricated ones
    tables = derive_tables(scan_study(study / "cuts" / c2.isoformat()), as_of=c2)
    suggested = suggest_actions(upto(analysis, c2), at(c2), tables=tables)
    mine = suggested.filter(pl.col("signal_id") == SIGNAL)
    assert mine["action"].to_list() == ["for_cause_visit", "targeted_sdv"]  # same priority: by action
    assert mine["where_to_look"].n_unique() == 1
    first = mine.row(1, named=True)
    assert first["where_to_look"].startswith("Subjects with the steadiest results from visit to visit (")
    named = SUBJECT.findall(first["where_to_look"])
    assert len(named) == 5 and set(named) <= fabricated
    assert first["why"] == f"{at(c2).filter(pl.col('signal_id') == SIGNAL)['summary'][0]} Verify the named " \
                           "subjects' results against source documents and lab reports."
    plan = plan_visits(suggested)
    assert plan.row(0, named=True)["site_id"] == SITE and plan.row(0, named=True)["visit"] == "on-site"

    # the quality lead reviews it; the monitor plans the suggested SDV of the named subjects
    refused(store, lambda: update_signal(store, VIEWER, SIGNAL, status="under_review", reason="x"))
    update_signal(store, LEAD, SIGNAL, status="under_review", owner=MONITOR, reason="fabrication suspected",
                  comment="compare with the lab's own reports")
    sdv = {"action": first["action"], "description": first["where_to_look"], "owner": MONITOR,
           "due_date": c2 + timedelta(days=14), "reason": first["why"]}
    refused(store, lambda: add_action(store, VIEWER, SIGNAL, **sdv))
    action = add_action(store, MONITOR, SIGNAL, **sdv)
    assert (action.action, action.planned_cut, action.status) == ("targeted_sdv", c2, "planned")
    assert get_signal(store, VIEWER, SIGNAL).status == "action_planned"
    assert outcome(c2)["outcome"].to_list() == ["too_early"]

    # cut 3: still there; the SDV starts
    assert SIGNAL in sync_signals(store, MONITOR, at(c3)).refreshed
    refused(store, lambda: update_action(store, VIEWER, action.id, status="in_progress", reason="x"))
    update_action(store, MONITOR, action.id, status="in_progress", reason="visit booked")
    assert get_signal(store, VIEWER, SIGNAL).status == "in_progress"
    # more fabricated subjects, more data: q fell from 7e-19 to 5e-21, past the margin (a tenfold change)
    still = outcome(c3).row(0, named=True)
    assert strength(c3) - strength(c2) >= 1
    assert (still["compared_cut"], still["level"], still["outcome"]) == (c3, 2, "worsened")

    # cut 4: the finding is gone; the SDV is done, the signal resolved, the outcome improved
    report = sync_signals(store, MONITOR, at(c4))
    assert SIGNAL not in report.added + report.refreshed + report.reopened
    update_action(store, MONITOR, action.id, status="done", outcome="results re-entered from the lab reports",
                  reason="verified")
    refused(store, lambda: update_signal(store, VIEWER, SIGNAL, status="resolved", reason="x"))
    update_signal(store, MONITOR, SIGNAL, status="resolved", reason="not flagged at cut 4")
    improved = outcome(c4).row(0, named=True)
    assert {k: improved[k] for k in ("signal_id", "kind", "source", "planned_cut", "baseline_level",
                                     "compared_cut", "level", "outcome")} == {
        "signal_id": SIGNAL, "kind": "csm", "source": "linked action", "planned_cut": c2, "baseline_level": 2,
        "compared_cut": c4, "level": 0, "outcome": "improved"}
    assert improved["baseline_strength"] == pytest.approx(strength(c2))
    assert improved["strength"] == pytest.approx(strength(c4))
    assert improved["note"] == (f"red at {c2.isoformat()} (strength {round(strength(c2), 2)}); not flagged at "
                                f"{c4.isoformat()} (strength {round(strength(c4), 2)}).")
    summary = summarize_outcomes(outcome(c4))
    assert (summary.improved, summary.assessed, summary.share_improved) == (1, 1, 1.0)

    # cut 5: back -> reopened automatically; against cut 2 it is now a stronger finding: worsened
    refused(store, lambda: sync_signals(store, VIEWER, at(c5)))
    assert sync_signals(store, MONITOR, at(c5)).reopened == (SIGNAL,)
    info = get_signal(store, VIEWER, SIGNAL)
    assert (info.status, info.severity, info.last_cut, info.owner) == ("new", "red", c5, MONITOR)
    assert strength(c5) - strength(c2) >= 1
    again = outcome(c5).row(0, named=True)
    assert (again["compared_cut"], again["level"], again["outcome"]) == (c5, 2, "worsened")
    assert [(a.action, a.status) for a in list_actions(store, VIEWER, signal_id=SIGNAL)] == [("targeted_sdv", "done")]

    # the audit trail: every change, in order, by whom, from which status to which
    assert trail(store, SIGNAL) == [
        ("signal.add", MONITOR, None, "new"),
        ("signal.update", LEAD, "new", "under_review"),
        ("signal_action.add", MONITOR, None, "planned"),
        ("signal.update", MONITOR, "under_review", "action_planned"),
        ("signal.refresh", MONITOR, "action_planned", "action_planned"),
        ("signal_action.update", MONITOR, "planned", "in_progress"),
        ("signal.update", MONITOR, "action_planned", "in_progress"),
        ("signal_action.update", MONITOR, "in_progress", "done"),
        ("signal.update", MONITOR, "in_progress", "resolved"),
        ("signal.reopen", MONITOR, "resolved", "new"),
    ]
    records = records_of(store, SIGNAL)
    assert records[1].new_value["comment"] == "compare with the lab's own reports"
    assert records[2].new_value["description"] == first["where_to_look"]
    assert records[-1].reason == f"reappeared at cut {c5.isoformat()}"
    assert chain_is_whole(store)
