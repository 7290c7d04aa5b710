"""``rbqm risk``: the risk register scored, linked to the latest cut's indicators, with gaps and
review proposals (rbqm.risk.assess_risks; docs/risk.md).

* ``show|export STUDY_DIR``: the register is the study's own register in the store when ``--db`` is
  given and the store holds one for the study, else the library template (``key_risk_indicators/
  risk*.yaml``, or ``--library DIR``); ``export --format csv|md|xlsx``. The review rule is the
  library's ``risk_review.yaml`` (``--min-sites`` overrides one of its numbers).
* ``import-template STUDY_ID``, ``update STUDY_ID RISK_ID``: start and edit the study's register
  (risk.edit); ``decide STUDY_DIR RISK_ID --accept|--reject``: decide the current proposal (risk.review).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from rbqm.cli._app import app, user_errors
from rbqm.cli.user import Actor, DbUrl, ExpectVersion, Reason, open_cli_store, resolve_actor

risk_app = typer.Typer(help="Risk assessment: the register, its indicators, gaps and review.",
                       no_args_is_help=True)
app.add_typer(risk_app, name="risk")

StudyDir = Annotated[Path, typer.Argument(exists=True, file_okay=False, help="The study folder.")]
Library = Annotated[Path | None, typer.Option(
    "--library", file_okay=False, help="A folder of risk, KRI and QTL definitions instead of the shipped library.")]
MinSites = Annotated[int | None, typer.Option(
    "--min-sites", min=1, help="Propose raising a likelihood when a risk's indicators give evidence at this many "
                               "sites at consecutive cuts (default: min_sites of risk_review.yaml).")]


def _report(study_dir: Path, library: Path | None, min_sites: int | None, db: str | None = None,
            actor: str | None = None):
    """The risk report of STUDY_DIR and the store's decisions on its proposals (None without ``db``): the
    stored register when ``db`` is given and holds one, else the template."""
    from rbqm.analysis import analyze_study
    from rbqm.risk import assess_risks, load_review_rule, load_risk_register

    rule = load_review_rule(library, **({} if min_sites is None else {"min_sites": min_sites}))
    analysis = analyze_study(study_dir, kri_dir=library)
    register, decisions = None, None
    if db is not None:
        from rbqm.store import risks as store_risks

        with open_cli_store(db) as store:
            register = store_risks.study_register(store, resolve_actor(actor), analysis.study_id, library=library)
            decisions = store_risks.list_decisions(store, resolve_actor(actor), analysis.study_id)
    register = register or load_risk_register(library)
    return assess_risks(register, analysis, kri_dir=library, rule=rule), decisions


@risk_app.command("show")
def show_command(study_dir: StudyDir, library: Library = None, min_sites: MinSites = None,
                 as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
                 db: DbUrl = None, actor: Actor = None) -> None:
    """The register with scores, levels and each risk's indicators at the latest cut; gaps; proposals."""
    with user_errors():
        report, _ = _report(study_dir, library, min_sites, db, actor)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
        return
    typer.echo(f"{report.study_id} at {report.cut_date}: overall study risk {report.study.level} "
               f"(weighted score {report.study.score:.2f})")
    typer.echo("")
    for row in report.register.iter_rows(named=True):
        typer.echo(f"{row['risk_id']}  {row['level']:<6}  {row['score']:>2} = I{row['impact']} x "
                   f"L{row['likelihood']} x D{row['detectability']}  {row['name']} [{row['category']}]")
        typer.echo(f"    {row['status']}")
    typer.echo("")
    typer.echo("Review proposals:" if report.proposals.height else "Review proposals: none")
    for row in report.proposals.iter_rows(named=True):
        typer.echo(f"  {row['risk_id']} ({row['direction']}): likelihood {row['likelihood']} -> "
                   f"{row['proposed_likelihood']} "
                   f"(score {row['score']} -> {row['proposed_score']}, {row['proposed_level']}). {row['evidence']}")
    typer.echo("Gaps:" if report.gaps.height else "Gaps: none")
    for row in report.gaps.iter_rows(named=True):
        typer.echo(f"  {row['gap']}: {row['id']} ({row['name']})")


@risk_app.command("export")
def export_command(study_dir: StudyDir,
                   out: Annotated[Path, typer.Option("--out", help="The file to write.")],
                   fmt: Annotated[Literal["csv", "md", "xlsx"], typer.Option(
                       "--format", help="csv: the register, one row per risk; md: a section of the "
                                        "oversight report (register, proposals, gaps); xlsx: a workbook with "
                                        "sheets Study risk, Register, Gaps and Review proposals (with the "
                                        "decisions, given --db).")] = "csv",
                   library: Library = None, min_sites: MinSites = None, db: DbUrl = None,
                   actor: Actor = None) -> None:
    """Write the register (CSV), the risk assessment section of the oversight report (Markdown) or all of it (Excel)."""
    from rbqm.risk import flat_register, report_markdown
    from rbqm.risk_export import write_workbook

    with user_errors():
        report, decisions = _report(study_dir, library, min_sites, db, actor)
        if not out.parent.is_dir():
            from rbqm.errors import RbqmError

            raise RbqmError(f"--out {out}: the folder {out.parent} does not exist")
    if fmt == "csv":
        flat_register(report).write_csv(out)
    elif fmt == "md":
        out.write_text(report_markdown(report), encoding="utf-8")
    else:
        write_workbook(report, out, decisions=decisions)
    typer.echo(f"Wrote {out} ({report.register.height} risks, {report.proposals.height} review proposals).")


@risk_app.command("import-template")
def import_template_command(study_id: Annotated[str, typer.Argument(help="The study id (STUDYID).")],
                            library: Library = None, reason: Annotated[str, typer.Option(
                                "--reason", help="Recorded in the audit trail.")] = "started from the library template",
                            db: DbUrl = None, actor: Actor = None) -> None:
    """Start (or complete) the study's register in the store from the library template (risk.edit)."""
    from rbqm.risk import load_risk_register
    from rbqm.store import risks as store_risks

    with user_errors(), open_cli_store(db) as store:
        added = store_risks.import_template(store, resolve_actor(actor), study_id, load_risk_register(library),
                                            reason=reason)
    typer.echo(f"Added {len(added)} risks to {study_id}'s register" + (f": {', '.join(added)}." if added else "."))


@risk_app.command("update")
def update_command(study_id: Annotated[str, typer.Argument(help="The study id (STUDYID).")],
                   risk_id: Annotated[str, typer.Argument(help="e.g. risk0001")],
                   reason: Reason,
                   impact: Annotated[int | None, typer.Option("--impact", min=1, max=3)] = None,
                   likelihood: Annotated[int | None, typer.Option("--likelihood", min=1, max=3)] = None,
                   detectability: Annotated[int | None, typer.Option(
                       "--detectability", min=1, max=3, help="3 = hard to detect.")] = None,
                   owner: Annotated[str | None, typer.Option("--owner")] = None,
                   indicator: Annotated[list[str] | None, typer.Option(
                       "--indicator", help="Replace the indicators (repeat the option).")] = None,
                   expect_version: ExpectVersion = None, library: Library = None,
                   db: DbUrl = None, actor: Actor = None) -> None:
    """Change a risk of the study's register: ratings, owner or indicators (risk.edit)."""
    from rbqm.risk import risk_level
    from rbqm.store import risks as store_risks

    changes = {k: v for k, v in {"impact": impact, "likelihood": likelihood, "detectability": detectability,
                                 "owner": owner, "indicators": indicator}.items() if v is not None}
    with user_errors(), open_cli_store(db) as store:
        stored = store_risks.update_risk(store, resolve_actor(actor), study_id, risk_id, reason=reason,
                                         expected_version=expect_version, library=library, **changes)
    typer.echo(f"{risk_id}: score {stored.risk.score} ({risk_level(stored.risk.score)}), version {stored.version}.")


@risk_app.command("decide")
def decide_command(study_dir: StudyDir, risk_id: Annotated[str, typer.Argument(help="e.g. risk0001")],
                   reason: Reason,
                   accept: Annotated[bool, typer.Option("--accept/--reject",
                                                        help="Accept (re-score) or reject the proposal.")],
                   library: Library = None, min_sites: MinSites = None, expect_version: ExpectVersion = None,
                   db: DbUrl = None, actor: Actor = None) -> None:
    """Accept or reject the latest cut's re-scoring proposal (raise or lower) for a risk of the stored register
    (risk.review)."""
    import polars as pl

    from rbqm.errors import RbqmError
    from rbqm.store import risks as store_risks

    with user_errors():
        report, _ = _report(study_dir, library, min_sites, db, actor)
        proposal = report.proposals.filter(pl.col("risk_id") == risk_id)
        if proposal.is_empty():
            raise RbqmError(f"no review proposal for {risk_id} at {report.study_id}'s latest cut "
                            f"({report.cut_date}); see rbqm risk show")
        row = proposal.row(0, named=True)
        with open_cli_store(db) as store:
            stored = store_risks.decide_proposal(
                store, resolve_actor(actor), report.study_id, risk_id, cut_date=report.cut_date,
                proposed_likelihood=row["proposed_likelihood"], evidence=row["evidence"], accept=accept,
                reason=reason, expected_version=expect_version)
    typer.echo(f"{risk_id}: proposal to {row['direction']} the likelihood {'accepted' if accept else 'rejected'}; "
               f"likelihood {stored.risk.likelihood}, "
               f"score {stored.risk.score}, version {stored.version}.")
