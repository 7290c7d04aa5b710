"""``rbqm report STUDY_DIR --out FILE``: the oversight report of a study's data cut as HTML or PDF.

The format follows the suffix (.html or .pdf); give ``--out`` twice for both from one analysis.
With ``--db URL`` the report also shows the store's records (signal workflow, QTL limits, breach
log, risk register) and the QTLs are judged against the study's own limits. See docs/report.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rbqm.cli._app import app, parse_date, user_errors
from rbqm.cli.user import Actor, DbUrl, open_cli_store, resolve_actor


def _check_outputs(outputs: list[Path]) -> None:
    """Every output has a known suffix and an existing folder (before the analysis, which takes time)."""
    from rbqm.errors import RbqmError
    from rbqm.report import report_format

    if not outputs:
        raise RbqmError("--out is required: a file ending in .html or .pdf (give it twice for both)")
    for out in outputs:
        report_format(out)
        if not out.parent.is_dir():
            raise RbqmError(f"{out}: cannot write the report: folder {out.parent} does not exist")
        if out.is_dir():
            raise RbqmError(f"{out}: cannot write the report: it is a folder")


@app.command("report")
def report_command(
    study_dir: Annotated[Path, typer.Argument(help="A study folder; the report describes one of its data cuts.")],
    out: Annotated[list[Path], typer.Option(
        "--out", help="The report file: .html (self-contained page) or .pdf. Repeat for both.")],
    cut: Annotated[str | None, typer.Option(
        "--cut", metavar="DATE", help="The data cut to report (ISO 8601; default the latest).")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Top sites described, and rows of long tables.")] = 10,
    kri_dir: Annotated[Path | None, typer.Option(
        help="A folder of KRI, QTL and risk definitions instead of the shipped library.")] = None,
    csm: Annotated[bool, typer.Option("--csm/--no-csm", help="Run central statistical monitoring.")] = True,
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """The oversight report of a data cut: study status, QTLs, risk heatmap, top sites, signals, actions,
    central monitoring, risk register and methods."""
    from rbqm.analysis import analyze_study, study_id_of
    from rbqm.report import build_report, read_store, write_report
    from rbqm.study import list_cuts

    with user_errors():
        _check_outputs(out)
        when = parse_date(cut, "--cut")
        has_cuts = bool(list_cuts(study_dir))
        limits, records = None, None
        if db is not None:
            from rbqm.store.qtl import stored_limits

            study_id = study_id_of(study_dir)
            with open_cli_store(db) as store:
                limits = stored_limits(store, study_id) or None
                records = read_store(store, resolve_actor(actor), study_id, library=kri_dir)
        analysis = analyze_study(study_dir, as_of=None if has_cuts else when, kri_dir=kri_dir, csm=csm,
                                 qtl_limits=limits)
        report = build_report(analysis, study_dir=study_dir, cut=when if has_cuts else None, top=top,
                              records=records, kri_dir=kri_dir)
        for path in out:
            write_report(report, path)
    for path in out:
        typer.echo(f"Wrote {path}.")
    typer.echo(f"Oversight report of {report.study_id} at the data cut of {report.cut_date}"
               + (f" (previous cut {report.previous_cut})" if report.previous_cut else " (first cut)")
               + ("; with the store's records." if records is not None else "; without the store (--db URL)."))
