"""``rbqm synth OUT_DIR``: generate a synthetic multinational trial with labelled problems."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from rbqm.cli._app import app, echo_table, user_errors
from rbqm.io import FORMATS


@app.command("synth")
def synth_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the study into (must be new or empty).")],
    sites: Annotated[int, typer.Option(help="Number of sites.")] = 60,
    subjects: Annotated[int, typer.Option(help="Number of enrolled subjects (screen failures come on top).")] = 1500,
    countries: Annotated[int, typer.Option(help="Number of countries.")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives identical files.")] = 1,
    months: Annotated[int, typer.Option(help="Study duration from first site activation to the last data cut.")] = 24,
    cuts: Annotated[int, typer.Option(help="Number of monthly data cuts written under OUT_DIR/cuts/.")] = 0,
    anomalies: Annotated[str, typer.Option(help="default, none, or the path of an anomaly YAML file.")] = "default",
    fmt: Annotated[str, typer.Option("--format", help=f"File format: {', '.join(FORMATS)}.")] = "parquet",
    start: Annotated[str, typer.Option(help="Study start date (ISO 8601).")] = "2024-01-08",
    study_id: Annotated[str, typer.Option(help="STUDYID of the generated study.")] = "RBQM-SYN-01",
    overwrite: Annotated[bool, typer.Option(help="Replace OUT_DIR if it already holds files.")] = False,
) -> None:
    """Generate a synthetic trial (SDTM domains and EDC tables) plus truth.csv of injected anomalies."""
    from rbqm.errors import DefinitionError, RbqmError
    from synthetic import SynthConfig, generate_study, load_anomalies

    with user_errors():
        try:
            start_date = date.fromisoformat(start)
        except ValueError as exc:
            raise RbqmError(f"--start must be an ISO 8601 date such as 2024-01-08, got {start!r}") from exc
        cfg = SynthConfig(sites=sites, subjects=subjects, countries=countries, seed=seed, months=months,
                          cuts=cuts, start=start_date, study_id=study_id, anomalies=load_anomalies(anomalies),
                          fmt=fmt)
        try:
            study = generate_study(cfg, out_dir, overwrite=overwrite)
        except DefinitionError as exc:  # e.g. an unknown site in the anomaly file
            raise DefinitionError(f"{anomalies}: {exc}") from exc
    typer.echo(f"Wrote study {cfg.study_id} to {study.folder} ({cfg.start} to {cfg.end}, {fmt}).")
    echo_table([(name, f"{rows:,} rows") for name, rows in study.rows.items()])
    typer.echo(f"Data cuts: {', '.join(p.name for p in study.cuts) or 'none'}.")
    typer.echo(f"Injected anomalies: {study.truth.height} (see {study.folder / 'truth.csv'}).")
