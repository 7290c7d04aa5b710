"""``rbqm user`` and ``rbqm audit``: output, exit codes, parity with the engine, no password echoed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rbqm.cli  # noqa: F401  (registers every command)
from rbqm.cli._app import app
from rbqm.store import audit, open_store, users
from tests.store.conftest import ADMIN, LEAD, MONITOR, VIEWER, password_of, tamper

SECRET = "Cli-Secret-Passphrase-0042"


@pytest.fixture
def cli(store_url, monkeypatch):
    """Run ``rbqm`` on the test store, acting as nobody in particular unless --actor is given."""
    monkeypatch.delenv("RBQM_PASSWORD", raising=False)
    monkeypatch.setenv("RBQM_USER", "someone")
    runner = CliRunner()

    def invoke(*args, input=None, env=None):
        return runner.invoke(app, [*map(str, args), "--db", store_url], input=input, env=env)

    return invoke


def test_bootstrap_admin_from_environment_then_admin_adds_others(cli, store, monkeypatch):
    result = cli("user", "add", ADMIN, "--role", "admin", env={"RBQM_PASSWORD": SECRET})
    assert result.exit_code == 0, result.output
    assert result.stdout == "Added ada (admin), the store's first admin.\n"
    result = cli("user", "add", VIEWER, "--role", "sponsor viewer", "--actor", ADMIN,
                 env={"RBQM_PASSWORD": password_of(VIEWER)})
    assert (result.exit_code, result.stdout) == (0, "Added vera (sponsor_viewer).\n")
    with store.read() as session:
        assert users.authenticate(session, ADMIN, SECRET).role == "admin"
        first = audit.list_records(session, ADMIN)[0]
    assert (first.actor, first.object_id) == ("someone", ADMIN)  # $RBQM_USER acted


def test_password_is_prompted_twice_and_never_echoed(cli, store):
    result = cli("user", "add", ADMIN, "--role", "admin", input=f"{SECRET}\n{SECRET}\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("Password for ada") == 1 and "Repeat for confirmation" in result.output
    assert SECRET not in result.output
    with store.read() as session:
        assert users.authenticate(session, ADMIN, SECRET)


def test_mismatched_prompts_ask_again_then_give_up_with_exit_2(cli, store):
    result = cli("user", "add", ADMIN, "--role", "admin", input=f"{SECRET}\nsomething else\n")
    assert result.exit_code == 2
    assert "do not match" in result.output
    assert "Error: no password for ada: set RBQM_PASSWORD or answer the prompt" in result.stderr
    with store.read() as session:
        assert not users.has_users(session)


def test_first_user_must_be_admin(cli):
    result = cli("user", "add", VIEWER, "--role", "sponsor_viewer", env={"RBQM_PASSWORD": SECRET})
    assert result.exit_code == 2
    assert "Error: the store has no users yet: the first account must be an admin" in result.stderr


def test_list_json_equals_engine(cli, store, people):
    result = cli("user", "list", "--json", "--actor", LEAD)
    assert result.exit_code == 0, result.output
    with store.read() as session:
        assert json.loads(result.stdout) == [u.to_dict() for u in users.list_users(session, LEAD)]


def test_list_table(cli, people):
    result = cli("user", "list", "--actor", ADMIN)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["USERNAME", "ROLE", "STATUS", "VERSION", "UPDATED", "(UTC)"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["ada", "admin", "active", "1"], ["monty", "central_monitor", "active", "1"],
        ["quinn", "quality_lead", "active", "1"], ["vera", "sponsor_viewer", "active", "1"]]


def test_disable_enable_set_role_and_password(cli, store, people):
    assert cli("user", "disable", MONITOR, "--reason", "left", "--actor", ADMIN).stdout == \
        "monty: central_monitor, disabled, version 2.\n"
    assert cli("user", "enable", MONITOR, "--reason", "back", "--actor", ADMIN).stdout == \
        "monty: central_monitor, active, version 3.\n"
    assert cli("user", "set-role", MONITOR, "quality-lead", "--reason", "promoted", "--actor", ADMIN,
               "--expect-version", "3").stdout == "monty: quality_lead, active, version 4.\n"
    result = cli("user", "set-password", MONITOR, "--actor", ADMIN, env={"RBQM_PASSWORD": SECRET})
    assert result.exit_code == 0 and SECRET not in result.output
    with store.read() as session:
        assert users.authenticate(session, MONITOR, SECRET).version == 5


def test_reason_is_required_for_changes(cli, people):
    result = cli("user", "disable", MONITOR, "--actor", ADMIN)
    assert result.exit_code == 2 and "--reason" in result.output


@pytest.mark.parametrize("args, message", [
    (["user", "list", "--actor", MONITOR],
     "monty (role central_monitor) may not user.view: only admin, quality_lead may"),
    (["user", "set-role", VIEWER, "admin", "--reason", "x", "--actor", VIEWER],
     "vera (role sponsor_viewer) may not user.set_role: only admin may"),
    (["user", "disable", ADMIN, "--reason", "x", "--actor", LEAD],
     "quinn (role quality_lead) may not user.disable: only admin may"),
    (["user", "list"], "'someone' is not a user of this store"),
    (["user", "set-role", MONITOR, "owner", "--reason", "x", "--actor", ADMIN], "unknown role 'owner'"),
    (["user", "set-role", MONITOR, "admin", "--reason", "x", "--actor", ADMIN, "--expect-version", "7"],
     "you read version 7, the store has version 1"),
    (["user", "enable", "ghost", "--reason", "x", "--actor", ADMIN], "no user 'ghost'"),
])
def test_user_errors_exit_2_with_one_line(cli, people, args, message):
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_audit_verify_and_export(cli, store, people, tmp_path):
    result = cli("audit", "verify", "--actor", VIEWER)
    with store.read() as session:
        head = audit.verify_chain(session, ADMIN).head_hash
        expected = audit.export_records(session, ADMIN, fmt="json")
    assert (result.exit_code, result.stdout) == (0, f"Audit trail intact: 4 records; head #4 {head}.\n")
    assert cli("audit", "export", "--format", "json", "--actor", VIEWER).stdout == expected
    out = tmp_path / "trail.csv"
    result = cli("audit", "export", "--format", "csv", "--out", out, "--actor", VIEWER)
    assert result.exit_code == 0 and out.read_text().startswith("id,at,actor,action,")
    assert len(out.read_text().splitlines()) == 5
    assert cli("audit", "export", "--format", "xml", "--actor", VIEWER).exit_code == 2


def test_audit_verify_exits_2_naming_the_broken_record(cli, store, people):
    tamper(store, "UPDATE audit_records SET reason = 'edited' WHERE id = 3")
    result = cli("audit", "verify", "--actor", ADMIN)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: audit trail broken at record #3: its content was altered")


def test_database_url_from_environment_and_default_file(tmp_path, monkeypatch):
    """--db, else $RBQM_DATABASE_URL, else DATA_DIR/rbqm.db with DATA_DIR = $RBQM_DATA_DIR."""
    runner = CliRunner()
    env = {"RBQM_PASSWORD": SECRET, "RBQM_USER": ADMIN, "RBQM_DATABASE_URL": None,
           "RBQM_DATA_DIR": str(tmp_path / "data")}
    assert runner.invoke(app, ["user", "add", ADMIN, "--role", "admin"], env=env).exit_code == 0
    assert (tmp_path / "data" / "rbqm.db").is_file()
    other = tmp_path / "team.db"
    env["RBQM_DATABASE_URL"] = f"sqlite:///{other}"
    assert runner.invoke(app, ["user", "add", "bea", "--role", "admin"], env=env).exit_code == 0
    store = open_store(f"sqlite:///{other}")
    with store.read() as session:
        assert [u.username for u in users.list_users(session, "bea")] == ["bea"]
    store.close()


def test_console_script_runs_user_and_audit(tmp_path):
    """The installed command, as a user runs it (exit codes through the real process)."""
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "RBQM_DATA_DIR": str(tmp_path),
           "RBQM_USER": ADMIN, "RBQM_PASSWORD": SECRET}
    command = [sys.executable, "-m", "rbqm"]
    added = subprocess.run([*command, "user", "add", ADMIN, "--role", "admin"], env=env, capture_output=True,
                           text=True, cwd=Path(__file__).parents[2])
    assert added.returncode == 0, added.stderr
    verified = subprocess.run([*command, "audit", "verify", "--actor", "nobody"], env=env,
                              capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert verified.returncode == 2 and "'nobody' is not a user" in verified.stderr
