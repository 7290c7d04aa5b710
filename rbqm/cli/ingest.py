"""``rbqm ingest`` and ``rbqm cuts``: study exports into immutable data-cut snapshots in the data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rbqm.cli._app import app, echo_table, parse_date, user_errors
from rbqm.cli.validate import AsOf, MappingFile

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (default $RBQM_DATA_DIR, else ./data).")]
cuts_app = typer.Typer(help="List, show or delete a study's data-cut snapshots.", no_args_is_help=True)
app.add_typer(cuts_app, name="cuts")


@app.command("ingest")
def ingest_command(
    study_dir: Annotated[Path, typer.Argument(help="The study export (a folder of SDTM / EDC tables).")],
    study: Annotated[str, typer.Option("--study", help="Study id: the snapshot goes to DATA_DIR/STUDY/cuts/.")],
    as_of: AsOf = None,
    mapping: MappingFile = None,
    data_dir: DataDir = None,
) -> None:
    """Validate a study export and store it as the snapshot of its data cut (errors: exit 2, nothing written)."""
    from rbqm.ingest import ingest_study

    with user_errors():  # a failed validation prints its whole report
        snapshot = ingest_study(study_dir, study, root=data_dir, as_of=parse_date(as_of, "--as-of"),
                                mapping_file=mapping)
    typer.echo(f"Ingested {study} at {snapshot.cut} into {snapshot.path}.")
    echo_table([(name, f"{rows:,} rows") for name, rows in snapshot.rows.items()])
    if snapshot.report.warnings:
        typer.echo(f"{snapshot.report.warnings} warning(s):")
        typer.echo("\n".join(snapshot.report.render()[1:]))


@cuts_app.command("list")
def cuts_list(study: Annotated[str, typer.Argument(help="Study id.")], data_dir: DataDir = None) -> None:
    """The snapshots of a study, oldest first."""
    from rbqm.ingest import list_snapshots

    with user_errors():
        snapshots = list_snapshots(data_dir, study)
    for row in snapshots.iter_rows(named=True):
        typer.echo(f"{row['cut_date']}  {row['subjects'] or 0:>7,} subjects  {row['tables']:>3} tables  "
                   f"{row['rows']:>12,} rows  ingested {row['ingested_at'] or '-'}")


@cuts_app.command("show")
def cuts_show(study: Annotated[str, typer.Argument(help="Study id.")],
              cut: Annotated[str, typer.Argument(help="Cut date (YYYY-MM-DD).")], data_dir: DataDir = None) -> None:
    """One snapshot's manifest: source, files with SHA-256, rows, mapping, warnings."""
    from rbqm.ingest import data_dir as resolve, snapshot_path

    with user_errors():
        path = snapshot_path(resolve(data_dir), study, parse_date(cut, "CUT"))
        manifest = path / "manifest.json"
        if not manifest.is_file():
            from rbqm.errors import RbqmError
            raise RbqmError(f"{path}: no such snapshot (rbqm cuts list {study})")
    typer.echo(manifest.read_text())


@cuts_app.command("delete")
def cuts_delete(
    study: Annotated[str, typer.Argument(help="Study id.")],
    cut: Annotated[str, typer.Argument(help="Cut date (YYYY-MM-DD).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation (for scripts).")] = False,
    data_dir: DataDir = None,
) -> None:
    """Delete one snapshot (asks for confirmation unless --yes)."""
    from rbqm.ingest import delete_snapshot

    try:
        sure = yes or typer.confirm(f"Delete the snapshot of {study} at {cut}? This cannot be undone.")
    except typer.Abort:  # no terminal to answer on
        sure = False
    if not sure:
        typer.secho("Nothing deleted (pass --yes to delete without asking).", err=True)
        raise typer.Exit(2)
    with user_errors():
        path = delete_snapshot(data_dir, study, cut)
    typer.echo(f"Deleted {path}.")
