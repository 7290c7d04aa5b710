"""``rbqm info STUDY_DIR``: what a study folder holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rbqm.cli._app import app, echo_table, user_errors
from rbqm.study import list_cuts, summarize_study


@app.command("info")
def info_command(
    study_dir: Annotated[Path, typer.Argument(help="A study folder (docs/data-format.md).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Show a study folder's size: subjects, sites, countries, rows per table and data cuts."""
    with user_errors():
        summary = summarize_study(study_dir)
        cuts = [p.name for p in list_cuts(study_dir)]
    if as_json:
        typer.echo(json.dumps({
            "study_id": summary.study_id, "screened": summary.screened, "enrolled": summary.enrolled,
            "sites": summary.sites, "countries": summary.countries, "first_consent": summary.first_consent,
            "last_date": summary.last_date, "tables": summary.tables, "cuts": cuts,
        }, indent=2))
        return
    echo_table([
        ("study", summary.study_id),
        ("subjects screened", summary.screened),
        ("subjects enrolled", summary.enrolled),
        ("sites", summary.sites),
        ("countries", summary.countries),
        ("first consent", summary.first_consent),
        ("latest date", summary.last_date),
        ("data cuts", ", ".join(cuts) or "none"),
    ])
    typer.echo("")
    echo_table([(f"{name} rows", f"{rows:,}") for name, rows in summary.tables.items()])
