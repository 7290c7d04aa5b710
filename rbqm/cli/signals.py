"""``rbqm signals``: list, show and update signals; ``rbqm actions suggest``: what to do about them.

``signals list`` derives the signals of a fresh analysis of STUDY_DIR and shows each with its
workflow status from the store (``--sync`` first records new and reappeared signals there).
See docs/signals.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rbqm.cli._app import app, parse_date, user_errors
from rbqm.cli.user import Actor, DbUrl, open_cli_store, resolve_actor

signals_app = typer.Typer(help="Signals: list, show, update (workflow in the store).", no_args_is_help=True)
actions_app = typer.Typer(help="Suggested actions for signals.", no_args_is_help=True)
app.add_typer(signals_app, name="signals")
app.add_typer(actions_app, name="actions")

StudyDir = Annotated[Path, typer.Argument(exists=True, file_okay=False, help="The study folder.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _print_rows(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _analysis(study_dir: Path):
    from rbqm.analysis import analyze_study
    from rbqm.signals import derive_signals

    analysis = analyze_study(study_dir)
    return analysis, derive_signals(analysis)


@signals_app.command("list")
def list_command(study_dir: StudyDir, as_json: AsJson = False, sync: Annotated[bool, typer.Option(
        "--sync", help="Record new and reappeared signals in the store first (signal.update).")] = False,
                 db: DbUrl = None, actor: Actor = None) -> None:
    """The signals at the study's latest cut with their workflow status (signal.view)."""
    import polars as pl

    from rbqm.store import signals as store_signals

    with user_errors():
        who = resolve_actor(actor)
        analysis, derived = _analysis(study_dir)
        with open_cli_store(db) as store:
            if sync:
                store_signals.sync_signals(store, who, derived)
            stored = {(s.study_id, s.signal_id): s for s in store_signals.list_signals(store, who)}
    latest = derived.filter(pl.col("cut_date") == analysis.cut_dates[-1])
    rows = []
    for row in latest.iter_rows(named=True):
        info = stored.get((row["study_id"], row["signal_id"]))
        rows.append({**{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()},
                     "status": info.status if info else "not recorded", "owner": info.owner if info else None,
                     "version": info.version if info else None})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = [("SIGNAL", "SEVERITY", "STATE", "CUTS", "STATUS", "OWNER")]
    table += [(r["signal_id"], r["severity"], r["state"], str(r["consecutive_cuts"]), r["status"], r["owner"] or "")
              for r in rows]
    _print_rows(table)


@signals_app.command("show")
def show_command(signal_id: Annotated[str, typer.Argument(help="e.g. kri0010@1003")],
                 study: Annotated[str | None, typer.Option("--study", help="Study id (if several).")] = None,
                 as_json: AsJson = False, db: DbUrl = None, actor: Actor = None) -> None:
    """One signal's workflow: status, owner, due date, justification, comments (signal.view)."""
    from rbqm.store import signals as store_signals

    with user_errors(), open_cli_store(db) as store:
        info = store_signals.get_signal(store, resolve_actor(actor), signal_id, study_id=study)
    data = info.to_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        typer.echo(f"{key:<14} {value if value is not None else ''}")


@signals_app.command("update")
def update_command(
    signal_id: Annotated[str, typer.Argument(help="e.g. kri0010@1003")],
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded in the audit trail.")],
    status: Annotated[str | None, typer.Option("--status", help="new, under_review, action_planned, "
                                               "in_progress, resolved or closed_no_action.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="An account's username.")] = None,
    due: Annotated[str | None, typer.Option("--due", help="Due date, YYYY-MM-DD.")] = None,
    justification: Annotated[str | None, typer.Option("--justification",
                                                      help="Required for closed_no_action.")] = None,
    comment: Annotated[str | None, typer.Option("--comment")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study id (if several).")] = None,
    expect_version: Annotated[int | None, typer.Option("--expect-version", metavar="N")] = None,
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """Change a signal's status, owner or due date, or comment on it (signal.update)."""
    from rbqm.store import signals as store_signals

    with user_errors():
        due_date = parse_date(due, "--due")
        with open_cli_store(db) as store:
            info = store_signals.update_signal(store, resolve_actor(actor), signal_id, reason=reason, study_id=study,
                                               status=status, owner=owner, due_date=due_date,
                                               justification=justification, comment=comment,
                                               expected_version=expect_version)
    typer.echo(f"{info.signal_id}: {info.status}, owner {info.owner or '-'}, due {info.due_date or '-'}, "
               f"version {info.version}.")


@actions_app.command("suggest")
def suggest_command(study_dir: StudyDir, as_json: AsJson = False, plan: Annotated[bool, typer.Option(
        "--plan", help="Print the sites ranked for the next visit instead.")] = False) -> None:
    """Targeted actions for the signals at the study's latest cut, highest priority first."""
    from rbqm.actions import plan_visits, suggest_actions

    with user_errors():
        analysis, derived = _analysis(study_dir)
        result = suggest_actions(analysis, derived, study_dir=study_dir)
        if plan:
            result = plan_visits(result)
    if as_json:
        typer.echo(result.write_json())
        return
    if plan:
        _print_rows([("RANK", "SITE", "VISIT", "PRIORITY", "SIGNALS", "RED")]
                    + [(str(r["rank"]), r["site_id"], r["visit"], f"{r['priority']:.2f}", str(r["signals"]),
                        str(r["red"])) for r in result.iter_rows(named=True)])
        return
    for r in result.iter_rows(named=True):
        typer.echo(f"[{r['priority']:.2f}] {r['signal_id']} ({r['severity']}, {r['state']}): {r['label']}\n"
                   f"    why: {r['why']}\n    where: {r['where_to_look']}")
