"""``rbqm validate STUDY_DIR``: every problem in a study folder, with file, column and row."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rbqm.cli._app import app, parse_date, user_errors

AsOf = Annotated[str | None, typer.Option("--as-of", help="Data cut (ISO 8601); default: the latest date in the data.")]
MappingFile = Annotated[Path | None, typer.Option("--mapping", help="A mapping YAML for a non-standard export.")]


@app.command("validate")
def validate_command(
    study_dir: Annotated[Path, typer.Argument(help="A study folder (docs/data-format.md).")],
    as_of: AsOf = None,
    mapping: MappingFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a study folder; exit 2 if it has errors (warnings alone exit 0)."""
    from rbqm.mapping import load_mapping
    from rbqm.validate import validate_study

    with user_errors():
        report = validate_study(study_dir, as_of=parse_date(as_of, "--as-of"),
                                mapping=load_mapping(mapping) if mapping else None)
    typer.echo(report.to_json() if as_json else "\n".join(report.render()))
    if not report.ok:
        raise typer.Exit(2)
