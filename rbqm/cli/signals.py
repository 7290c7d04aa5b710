"""``rbqm signals``: list, show and update signals, and the outcomes of the actioned ones.

``signals list`` derives the signals of a fresh analysis of STUDY_DIR and shows each with its
workflow status from the store (``--sync`` first records new and reappeared signals there);
``signals outcomes`` compares each actioned signal's indicator at the cut it was actioned with
the latest cut. ``rbqm actions`` (rbqm/cli/actions.py) plans and follows the linked actions.
See docs/signals.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from rbqm.cli._app import app, parse_date, user_errors
from rbqm.cli.user import Actor, DbUrl, open_cli_store, resolve_actor

signals_app = typer.Typer(help="Signals: list, show, update (workflow in the store), outcomes.",
                          no_args_is_help=True)
app.add_typer(signals_app, name="signals")

StudyDir = Annotated[Path, typer.Argument(exists=True, file_okay=False, help="The study folder.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def print_rows(rows: list[tuple[str, ...]]) -> None:
    """Print rows (the first is the header) as aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def study_analysis(study_dir: Path):
    """The analysis of every cut of ``study_dir`` and its derived signals."""
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
        analysis, derived = study_analysis(study_dir)
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
    print_rows(table)


@signals_app.command("show")
def show_command(signal_id: Annotated[str, typer.Argument(help="e.g. kri0010@1003")],
                 study: Annotated[str | None, typer.Option("--study", help="Study id (if several).")] = None,
                 as_json: AsJson = False, db: DbUrl = None, actor: Actor = None) -> None:
    """One signal's workflow: status, owner, due date, justification, comments, linked actions (signal.view)."""
    from rbqm.store import actions as store_actions
    from rbqm.store import signals as store_signals

    with user_errors(), open_cli_store(db) as store:
        who = resolve_actor(actor)
        info = store_signals.get_signal(store, who, signal_id, study_id=study)
        linked = store_actions.list_actions(store, who, study_id=info.study_id, signal_id=info.signal_id)
    data = {**info.to_dict(), "actions": [a.to_dict() for a in linked]}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key != "actions":
            typer.echo(f"{key:<14} {value if value is not None else ''}")
    for a in linked:
        typer.echo(f"action #{a.id:<6} {a.status}: {a.description} (owner {a.owner or '-'}, due "
                   f"{a.due_date or '-'}, planned at cut {a.planned_cut}){f'; outcome: {a.outcome}' if a.outcome else ''}")


@signals_app.command("update")
def update_command(
    signal_id: Annotated[str, typer.Argument(help="e.g. kri0010@1003")],
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded in the audit trail.")],
    status: Annotated[str | None, typer.Option("--status", help="new, under_review, action_planned, "
                                               "in_progress, resolved or closed_no_action (which may follow "
                                               "which: key_risk_indicators/signal_workflow.yaml).")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="An account's username.")] = None,
    due: Annotated[str | None, typer.Option("--due", help="Due date, YYYY-MM-DD.")] = None,
    justification: Annotated[str | None, typer.Option("--justification",
                                                      help="Required for closed_no_action.")] = None,
    comment: Annotated[str | None, typer.Option("--comment", help="Required by some changes (e.g. reopening); "
                                                "describes the action created for action_planned.")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study id (if several).")] = None,
    expect_version: Annotated[int | None, typer.Option("--expect-version", metavar="N")] = None,
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """Change a signal's status, owner or due date, or comment on it (signal.update; closing: signal.close)."""
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


@signals_app.command("outcomes")
def outcomes_command(study_dir: StudyDir, as_json: AsJson = False,
                     as_of: Annotated[str | None, typer.Option("--as-of", help="Use the cuts up to this date "
                                                               "only (YYYY-MM-DD).")] = None,
                     db: DbUrl = None, actor: Actor = None) -> None:
    """Did the actioned signals improve? Each one's indicator at its action's cut against the latest cut,
    and the share improved against the field's benchmark (signal.view)."""
    from rbqm.analysis import analyze_study
    from rbqm.outcomes import signal_outcomes, summarize_outcomes
    from rbqm.store.actions import action_baselines

    with user_errors():
        when = parse_date(as_of, "--as-of")
        analysis = analyze_study(study_dir)
        with open_cli_store(db) as store:
            baselines = action_baselines(store, resolve_actor(actor), study_id=analysis.study_id)
        outcomes = signal_outcomes(analysis, baselines, as_of=when)
        summary = summarize_outcomes(outcomes)
    if as_json:
        typer.echo(json.dumps({"outcomes": json.loads(outcomes.write_json()),
                               "summary": {**asdict(summary), "assessed": summary.assessed}}, indent=2))
        return
    if outcomes.height:
        print_rows([("SIGNAL", "ACTIONED AT", "COMPARED AT", "OUTCOME", "NOTE")]
                   + [(r["signal_id"], str(r["planned_cut"]), str(r["compared_cut"] or "-"), r["outcome"], r["note"])
                      for r in outcomes.iter_rows(named=True)])
    share = "n/a" if summary.share_improved is None else f"{summary.share_improved:.0%}"
    typer.echo(f"Improved: {summary.improved} of {summary.assessed} assessed ({share}); unchanged "
               f"{summary.unchanged}, worsened {summary.worsened}, too early {summary.too_early}. "
               f"Benchmark {summary.benchmark:.0%} ({summary.benchmark_source}).")
