"""rbqm signals / rbqm actions on the command line: JSON equals the engine; update and permissions."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from rbqm.actions import suggest_actions
from rbqm.cli import app
from rbqm.store import open_store, users
from tests.store.conftest import password_of

runner = CliRunner()


def _db(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'rbqm.db'}"
    store = open_store(url)
    with store.write() as session:
        users.add_user(session, "root", "ada", role="admin", password=password_of("ada"))
        users.add_user(session, "ada", "monty", role="central_monitor", password=password_of("monty"))
        users.add_user(session, "ada", "vera", role="sponsor_viewer", password=password_of("vera"))
    store.close()
    return url


def test_list_sync_update_show(tmp_path, late_study, late_signals):
    db = _db(tmp_path)
    out = runner.invoke(app, ["signals", "list", str(late_study), "--sync", "--json", "--db", db, "--actor", "monty"])
    assert out.exit_code == 0, out.output
    rows = {r["signal_id"]: r for r in json.loads(out.output)}
    latest = late_signals.filter(pl.col("cut_date") == pl.col("cut_date").max())
    assert set(rows) == set(latest["signal_id"])
    assert rows["kri0010@1003"]["status"] == "new" and rows["kri0010@1003"]["state"] == "persisting"
    out = runner.invoke(app, ["signals", "update", "kri0010@1003", "--status", "action_planned", "--owner", "monty",
                              "--due", "2025-08-01", "--reason", "plan", "--db", db, "--actor", "monty"])
    assert out.exit_code == 0, out.output
    assert "action_planned, owner monty, due 2025-08-01" in out.output
    out = runner.invoke(app, ["signals", "update", "kri0010@1003", "--status", "resolved", "--reason", "x",
                              "--db", db, "--actor", "vera"])
    assert out.exit_code == 2 and "may not signal.update" in out.output
    out = runner.invoke(app, ["signals", "update", "kri0010@1003", "--status", "closed_no_action", "--reason", "x",
                              "--db", db, "--actor", "monty"])
    assert out.exit_code == 2 and "justification" in out.output
    out = runner.invoke(app, ["signals", "show", "kri0010@1003", "--json", "--db", db, "--actor", "vera"])
    assert out.exit_code == 0 and json.loads(out.output)["status"] == "action_planned"


def test_actions_suggest_json_equals_engine(late_study, late_analysis, late_signals):
    out = runner.invoke(app, ["actions", "suggest", str(late_study), "--json"])
    assert out.exit_code == 0, out.output
    engine = suggest_actions(late_analysis, late_signals, study_dir=late_study)
    assert pl.read_json(out.output.encode()).rows() == engine.rows()
    plan = runner.invoke(app, ["actions", "suggest", str(late_study), "--plan"])
    assert plan.exit_code == 0 and plan.output.splitlines()[1].split()[1] == "1003"
