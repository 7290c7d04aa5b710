"""rbqm signals / rbqm actions on the command line: JSON equals the engine; the workflow, linked
actions, outcomes and permissions; user errors exit 2 with one line."""

from __future__ import annotations

import json
from datetime import date, timedelta

import polars as pl
import pytest
from typer.testing import CliRunner

from rbqm.actions import plan_visits, suggest_actions
from rbqm.analysis import analyze_study
from rbqm.cli import app
from rbqm.outcomes import signal_outcomes
from rbqm.signals import derive_signals
from rbqm.store import open_store, users
from rbqm.store.actions import action_baselines, list_actions
from tests.store.conftest import password_of

runner = CliRunner()
SIGNAL = "kri0010@1003"


@pytest.fixture(scope="module")
def cli_engine(cli_study):
    analysis = analyze_study(cli_study)
    return analysis, derive_signals(analysis)


def _db(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'rbqm.db'}"
    store = open_store(url)
    with store.write() as session:
        users.add_user(session, "root", "ada", role="admin", password=password_of("ada"))
        users.add_user(session, "ada", "monty", role="central_monitor", password=password_of("monty"))
        users.add_user(session, "ada", "vera", role="sponsor_viewer", password=password_of("vera"))
    store.close()
    return url


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_signal_workflow_and_linked_actions(tmp_path, cli_study, cli_engine):
    analysis, derived = cli_engine
    db = _db(tmp_path)
    out = _run("signals", "list", str(cli_study), "--sync", "--json", "--db", db, "--actor", "monty")
    assert out.exit_code == 0, out.output
    rows = {r["signal_id"]: r for r in json.loads(out.output)}
    assert set(rows) == set(derived.filter(pl.col("cut_date") == pl.col("cut_date").max())["signal_id"])
    assert (rows[SIGNAL]["status"], rows[SIGNAL]["state"]) == ("new", "persisting")

    due = (date.today() - timedelta(days=1)).isoformat()
    out = _run("actions", "add", SIGNAL, "--action", "remote_review", "--owner", "monty", "--due", due,
               "--reason", "late entry", "--db", db, "--actor", "monty")
    assert out.exit_code == 0, out.output
    assert out.output.startswith(f"Action #1 for {SIGNAL}: Remote data review of the named subjects and forms "
                                 f"(planned, owner monty, due {due}).")
    out = _run("actions", "list", "--overdue", "--json", "--db", db, "--actor", "vera")
    listed = json.loads(out.output)
    store = open_store(db)
    engine = [a.to_dict() for a in list_actions(store, "vera")]
    assert [{k: v for k, v in a.items() if k != "overdue"} for a in listed] == engine
    assert [a["overdue"] for a in listed] == [True]
    out = _run("actions", "list", "--db", db, "--actor", "vera")
    assert "OVERDUE" in out.output.splitlines()[1]

    out = _run("actions", "update", "1", "--status", "done", "--reason", "r", "--db", db, "--actor", "monty")
    assert out.exit_code == 2 and "planned -> done needs an outcome note" in out.output
    out = _run("actions", "update", "1", "--status", "in_progress", "--reason", "started", "--db", db,
               "--actor", "monty")
    assert out.exit_code == 0 and "Action #1 for kri0010@1003: in_progress" in out.output
    out = _run("actions", "update", "1", "--status", "done", "--outcome", "12 pages entered", "--reason", "r",
               "--db", db, "--actor", "vera")
    assert out.exit_code == 2 and "may not signal.update" in out.output
    out = _run("actions", "add", SIGNAL, "--reason", "r", "--db", db, "--actor", "monty")
    assert out.exit_code == 2 and "an action 'other' needs a description" in out.output
    out = _run("actions", "add", SIGNAL, "--action", "pray", "--reason", "r", "--db", db, "--actor", "monty")
    assert out.exit_code == 2 and "unknown action 'pray'" in out.output

    out = _run("signals", "show", SIGNAL, "--json", "--db", db, "--actor", "vera")
    shown = json.loads(out.output)
    assert shown["status"] == "in_progress"  # moved along with its action
    assert [(a["id"], a["status"]) for a in shown["actions"]] == [(1, "in_progress")]
    out = _run("signals", "update", SIGNAL, "--status", "closed_no_action", "--justification", "j",
               "--reason", "x", "--db", db, "--actor", "monty")
    assert out.exit_code == 2 and "may not signal.close: only admin, quality_lead may" in out.output
    out = _run("signals", "update", SIGNAL, "--status", "new", "--reason", "x", "--db", db, "--actor", "ada")
    assert out.exit_code == 2
    assert out.output.strip() == (f"Error: signal {analysis.study_id}/{SIGNAL}: it is in_progress: it may go to "
                                  "resolved or action_planned, not new")
    out = _run("signals", "update", SIGNAL, "--status", "resolved", "--reason", "entered", "--db", db,
               "--actor", "monty")
    assert out.exit_code == 0 and f"{SIGNAL}: resolved" in out.output

    out = _run("signals", "outcomes", str(cli_study), "--json", "--db", db, "--actor", "vera")
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    expected = signal_outcomes(analysis, action_baselines(store, "vera", study_id=analysis.study_id))
    store.close()
    assert result["outcomes"] == json.loads(expected.write_json()) and len(result["outcomes"]) == 1
    assert result["summary"]["too_early"] == 1 and result["summary"]["benchmark"] == 0.83
    out = _run("signals", "outcomes", str(cli_study), "--db", db, "--actor", "vera")
    assert out.output.splitlines()[-1].startswith("Improved: 0 of 0 assessed (n/a); unchanged 0, worsened 0, "
                                                  "too early 1. Benchmark 83%")


def test_actions_suggest_json_and_plan_equal_the_engine(cli_study, cli_engine):
    analysis, derived = cli_engine
    engine = suggest_actions(analysis, derived, study_dir=cli_study)
    out = _run("actions", "suggest", str(cli_study), "--json")
    assert out.exit_code == 0, out.output
    assert pl.read_json(out.output.encode()).rows() == engine.rows()
    plan = _run("actions", "suggest", str(cli_study), "--plan")
    assert plan.exit_code == 0
    assert [line.split()[1] for line in plan.output.splitlines()[1:]] == plan_visits(engine)["site_id"].to_list()
