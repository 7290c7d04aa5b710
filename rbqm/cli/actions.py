"""``rbqm actions``: suggest targeted actions for a study's signals, and plan and follow the actions
linked to a signal in the store (add, list, update). See docs/signals.md.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer

from rbqm.cli._app import app, parse_date, user_errors
from rbqm.cli.signals import AsJson, StudyDir, print_rows, study_analysis
from rbqm.cli.user import Actor, DbUrl, ExpectVersion, Reason, open_cli_store, resolve_actor

actions_app = typer.Typer(help="Actions: suggest for a study's signals; add, list and update linked actions.",
                          no_args_is_help=True)
app.add_typer(actions_app, name="actions")

Study = Annotated[str | None, typer.Option("--study", help="Study id (if several).")]
Owner = Annotated[str | None, typer.Option("--owner", help="An account's username.")]
Due = Annotated[str | None, typer.Option("--due", help="Due date, YYYY-MM-DD.")]


@actions_app.command("suggest")
def suggest_command(study_dir: StudyDir, as_json: AsJson = False, plan: Annotated[bool, typer.Option(
        "--plan", help="Print the sites ranked for the next visit instead.")] = False) -> None:
    """Targeted actions for the signals at the study's latest cut, highest priority first."""
    from rbqm.actions import plan_visits, suggest_actions

    with user_errors():
        analysis, derived = study_analysis(study_dir)
        result = suggest_actions(analysis, derived, study_dir=study_dir)
        if plan:
            result = plan_visits(result)
    if as_json:
        typer.echo(result.write_json())
        return
    if plan:
        print_rows([("RANK", "SITE", "VISIT", "PRIORITY", "SIGNALS", "RED")]
                   + [(str(r["rank"]), r["site_id"], r["visit"], f"{r['priority']:.2f}", str(r["signals"]),
                       str(r["red"])) for r in result.iter_rows(named=True)])
        return
    for r in result.iter_rows(named=True):
        typer.echo(f"[{r['priority']:.2f}] {r['signal_id']} ({r['severity']}, {r['state']}): {r['label']}\n"
                   f"    why: {r['why']}\n    where: {r['where_to_look']}")


@actions_app.command("add")
def add_command(
    signal_id: Annotated[str, typer.Argument(help="e.g. kri0010@1003")],
    reason: Reason,
    action: Annotated[str, typer.Option("--action", help="An action id of key_risk_indicators/actions.yaml "
                                        "(remote_review, targeted_sdv, ...) or other.")] = "other",
    description: Annotated[str | None, typer.Option(
        "--description", help="What exactly (subjects, pages); required for other.")] = None,
    owner: Owner = None, due: Due = None, study: Study = None, db: DbUrl = None, actor: Actor = None,
) -> None:
    """Plan an action for a signal; a new or under-review signal becomes action_planned (signal.update)."""
    from rbqm.store.actions import add_action

    with user_errors():
        due_date = parse_date(due, "--due")
        with open_cli_store(db) as store:
            info = add_action(store, resolve_actor(actor), signal_id, study_id=study, action=action,
                              description=description, owner=owner, due_date=due_date, reason=reason)
    typer.echo(f"Action #{info.id} for {info.signal_id}: {info.description} ({info.status}, owner "
               f"{info.owner or '-'}, due {info.due_date or '-'}).")


@actions_app.command("list")
def list_command(study: Study = None,
                 signal: Annotated[str | None, typer.Option("--signal", help="Only this signal's actions.")] = None,
                 overdue: Annotated[bool, typer.Option("--overdue", help="Only open actions past due.")] = False,
                 as_json: AsJson = False, db: DbUrl = None, actor: Actor = None) -> None:
    """The actions linked to signals, with status, owner and due date; overdue ones marked (signal.view)."""
    from rbqm.store.actions import list_actions

    with user_errors(), open_cli_store(db) as store:
        rows = list_actions(store, resolve_actor(actor), study_id=study, signal_id=signal)
    today = date.today()
    if overdue:
        rows = [a for a in rows if a.overdue(today)]
    if as_json:
        typer.echo(json.dumps([{**a.to_dict(), "overdue": a.overdue(today)} for a in rows], indent=2))
        return
    if not rows:
        typer.echo("No actions.")
        return
    print_rows([("ID", "SIGNAL", "STATUS", "OWNER", "DUE", "", "ACTION")]
               + [(str(a.id), a.signal_id, a.status, a.owner or "", str(a.due_date or ""),
                   "OVERDUE" if a.overdue(today) else "", a.description) for a in rows])


@actions_app.command("update")
def update_command(
    action_id: Annotated[int, typer.Argument(help="The action's id (rbqm actions list).")],
    reason: Reason,
    status: Annotated[str | None, typer.Option("--status", help="planned, in_progress, done or cancelled "
                                               "(done and cancelled need --outcome).")] = None,
    outcome: Annotated[str | None, typer.Option("--outcome", help="What the action found or changed, "
                                                "or why it stopped.")] = None,
    owner: Owner = None, due: Due = None, expect_version: ExpectVersion = None, db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """Change a linked action's status, owner, due date or outcome note; its signal follows (signal.update)."""
    from rbqm.store.actions import update_action

    with user_errors():
        due_date = parse_date(due, "--due")
        with open_cli_store(db) as store:
            info = update_action(store, resolve_actor(actor), action_id, reason=reason, status=status,
                                 owner=owner, due_date=due_date, outcome=outcome, expected_version=expect_version)
    typer.echo(f"Action #{info.id} for {info.signal_id}: {info.status}, owner {info.owner or '-'}, due "
               f"{info.due_date or '-'}, version {info.version}.")
