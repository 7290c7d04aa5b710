"""``rbqm analyze STUDY_DIR --out OUT_DIR``: KRIs per site and country, funnel bounds and site risk
(with the data inconsistency score), QTLs, central statistical monitoring, and the signals and
suggested actions derived from them."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rbqm.cli._app import app, echo_table, user_errors

from rbqm.analysis import PERMUTATIONS

if TYPE_CHECKING:
    import polars as pl


@app.command("analyze")
def analyze_command(
    study_dir: Annotated[Path, typer.Argument(help="A study folder; its data cuts (cuts/YYYY-MM-DD) are analysed too.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for results, bounds, site_risk, qtl, csm, signals and "
                                                    "actions (Parquet and CSV).")],
    as_of: Annotated[str | None, typer.Option(help="Analyse the study folder at this date only (ISO 8601).")] = None,
    kri_dir: Annotated[Path | None, typer.Option(help="A folder of KRI and QTL definitions instead of the shipped library.")] = None,
    csm: Annotated[bool, typer.Option("--csm/--no-csm", help="Run central statistical monitoring too.")] = True,
    permutations: Annotated[str, typer.Option(
        "--permutations", metavar="B",
        help="Site-label permutations behind the data inconsistency score (dis in site_risk, latest cut); "
             "each reruns the CSM battery. auto: 20 for up to 100 sites, fewer above (2 from 1,000 sites); "
             "0: no score.")] = PERMUTATIONS,
    db: Annotated[str | None, typer.Option("--db", metavar="URL",
                                           help="Use the study's QTL limits from this store (rbqm qtl set-limit).")] = None,
) -> None:
    """KRIs per site and country, QTLs and central statistical monitoring, at every data cut."""
    from rbqm.actions import suggest_actions
    from rbqm.analysis import analyze_study, study_id_of, write_analysis
    from rbqm.errors import RbqmError
    from rbqm.signals import derive_signals

    with user_errors():
        try:
            cut = date.fromisoformat(as_of) if as_of else None
        except ValueError as exc:
            raise RbqmError(f"--as-of must be an ISO 8601 date such as 2025-06-30, got {as_of!r}") from exc
        limits = None
        if db is not None:
            from rbqm.cli.user import open_cli_store
            from rbqm.store.qtl import stored_limits

            with open_cli_store(db) as store:
                limits = stored_limits(store, study_id_of(study_dir)) or None
        if permutations != "auto" and not (permutations.isdigit() and permutations.isascii()):
            raise RbqmError(f"--permutations must be 'auto' or a whole number, 0 or more (0: no data inconsistency "
                            f"score), got {permutations}")
        analysis = analyze_study(study_dir, as_of=cut, kri_dir=kri_dir, csm=csm, qtl_limits=limits,
                                 permutations=permutations if permutations == "auto" else int(permutations))
        signals = derive_signals(analysis, kri_dir=kri_dir)
        actions = suggest_actions(analysis, signals, study_dir=study_dir, kri_dir=kri_dir)
        write_analysis(analysis, out, extra={"signals": signals, "actions": actions})
    latest = analysis.results.filter(analysis.results["cut_date"] == analysis.cut_dates[-1])
    site = latest.filter(latest["level"] == "site")
    typer.echo(f"Analysed {analysis.study_id} at {len(analysis.cut_dates)} data cut(s), "
               f"latest {analysis.cut_dates[-1]}; wrote {out}.")
    echo_table([
        ("KRIs", latest["kri_id"].n_unique()),
        ("site results", site.height),
        ("red site flags", int((site["flag"].abs() == 2).sum())),
        ("amber site flags", int((site["flag"].abs() == 1).sum())),
        ("not computable", int(site["note"].str.starts_with("not computable").sum())),
        ("QTLs breached", int((analysis.qtl.filter(analysis.qtl["cut_date"] == analysis.cut_dates[-1])["status"]
                               == "tolerance limit breached").sum())),
        ("open signals", signals.filter((signals["cut_date"] == analysis.cut_dates[-1])
                                         & (signals["state"] != "resolved")).height),
        ("suggested actions", actions.height),
        ("CSM findings q < 0.05", int((analysis.csm.filter(analysis.csm["cut_date"] == analysis.cut_dates[-1])
                                       ["q_value"] < 0.05).sum())),
        ("most inconsistent site", _most_inconsistent(analysis.site_risk, analysis.cut_dates[-1])),
    ])


def _most_inconsistent(site_risk: pl.DataFrame, cut: date) -> str:
    """The site ranked 1 by the data inconsistency score at ``cut``, with its score."""
    top = site_risk.filter((site_risk["cut_date"] == cut) & (site_risk["dis_rank"] == 1))
    if top.height == 0:
        return "no data inconsistency score (--permutations 0 or --no-csm)"
    return f"{top['site_id'][0]} (dis {top['dis'][0]:.2f}, p = {10 ** -top['dis'][0]:.3g})"
