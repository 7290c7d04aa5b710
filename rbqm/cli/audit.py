"""``rbqm audit``: verify the audit trail's hash chain, export it as CSV or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rbqm.cli._app import app, user_errors
from rbqm.cli.user import Actor, DbUrl, open_cli_store, resolve_actor

audit_app = typer.Typer(help="The audit trail: verify its hash chain, export it.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def verify_command(db: DbUrl = None, actor: Actor = None) -> None:
    """Recompute the hash chain; exit 2 naming the first broken record (altered, removed or reordered)."""
    from rbqm.store import verify_chain

    with user_errors(), open_cli_store(db) as store, store.read() as session:
        status = verify_chain(session, resolve_actor(actor))
    typer.echo(f"Audit trail intact: {status.records} records; head #{status.head_id} {status.head_hash}.")


@audit_app.command("export")
def export_command(
    fmt: Annotated[Literal["csv", "json"], typer.Option("--format", help="csv or json.")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.",
                                             dir_okay=False)] = None,
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """Export the whole audit trail, oldest first, with each record's hashes."""
    from rbqm.store import export_records

    with user_errors(), open_cli_store(db) as store, store.read() as session:
        text = export_records(session, resolve_actor(actor), fmt=fmt)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"Wrote the audit trail to {out} ({fmt}).", err=True)
