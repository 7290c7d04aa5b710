"""``rbqm qtl``: the QTL status of a study with its own limits, the limits' history, and breach evaluations.

``rbqm qtl STUDY_DIR`` (short for ``rbqm qtl status STUDY_DIR``) prints the latest cut's table. The
other commands work on the store (``--db``, ``--actor``, as ``rbqm signals``). See docs/qtl.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from rbqm.cli._app import app, user_errors
from rbqm.cli.user import Actor, DbUrl, ExpectVersion, Reason, open_cli_store, resolve_actor

StudyDir = Annotated[Path, typer.Argument(exists=True, file_okay=False, help="The study folder.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class _StatusByDefault(TyperGroup):
    """``rbqm qtl STUDY_DIR`` runs ``rbqm qtl status STUDY_DIR``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["status", *args]
        return super().parse_args(ctx, args)


qtl_app = typer.Typer(cls=_StatusByDefault, no_args_is_help=True,
                      help="QTLs: status (rbqm qtl STUDY_DIR), limits and their history, breach evaluations.")
app.add_typer(qtl_app, name="qtl")


def _print_rows(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


_SHORT = {"within limits": "ok", "secondary limit crossed": "secondary", "tolerance limit breached": "BREACH"}


def _study_frame(study_dir: Path, db: str | None, sync: bool = False, actor: str | None = None):
    """The study id and QTLs at every cut with its stored limits (and its breaches opened when ``sync``)."""
    from rbqm.qtl import study_qtls
    from rbqm.store import qtl as store_qtl

    with open_cli_store(db) as store:
        first = study_qtls(study_dir)
        study_id = first["study_id"][0]
        limits = store_qtl.stored_limits(store, study_id)
        frame = study_qtls(study_dir, limits=limits) if limits else first
        if sync:
            store_qtl.sync_breaches(store, resolve_actor(actor), study_id, frame)
    return study_id, frame, limits


@qtl_app.command("status")
def status_command(study_dir: StudyDir, as_json: AsJson = False, db: DbUrl = None) -> None:
    """The QTL status table of the study's latest cut, with the limits in effect and the trend over cuts."""
    import polars as pl

    from rbqm.qtl import qtl_trend

    with user_errors():
        study_id, frame, limits = _study_frame(study_dir, db)
    trend = (qtl_trend(frame).group_by("qtl_id", maintain_order=True)
             .agg(trend=pl.col("status").replace_strict(_SHORT, default="n/a").str.join(" > ")))
    latest = (frame.filter(pl.col("cut_date") == pl.col("cut_date").max()).join(trend, on="qtl_id", how="left")
              .with_columns(limits_from=pl.col("qtl_id").is_in(list(limits))
                            .replace_strict({True: "study", False: "library"}, return_dtype=pl.String)))
    if as_json:
        typer.echo(latest.write_json())
        return
    cut = latest["cut_date"][0]
    typer.echo(f"{study_id}: QTLs at the data cut of {cut} ({frame['cut_date'].n_unique()} cut(s))")
    rows = [("QTL", "ESTIMATE [95%]", "SECONDARY", "TOLERANCE", "LIMITS", "STATUS", "P(EXCEED)", "TREND")]
    for r in latest.sort("qtl_id").iter_rows(named=True):
        estimate = (f"{_num(r['estimate'])} [{_num(r['lower'])}, {_num(r['upper'])}]" if r["estimate"] is not None
                    else r["note"] or "-")
        rows.append((r["qtl_id"], estimate, _num(r["secondary_limit"]), _num(r["limit"]), r["limits_from"],
                     r["status"] or "-", _num(r["probability_exceed"]), r["trend"] or ""))
    _print_rows(rows)


@qtl_app.command("set-limit")
def set_limit_command(
    study_id: Annotated[str, typer.Argument(help="The study id (STUDYID).")],
    qtl_id: Annotated[str, typer.Argument(help="e.g. qtl0002")],
    limit: Annotated[float, typer.Option("--limit", help="The tolerance limit.")],
    secondary: Annotated[float, typer.Option("--secondary", help="The secondary (warning) limit.")],
    rationale: Annotated[str, typer.Option("--rationale", help="Why: recorded in the audit trail.")],
    expected: Annotated[float | None, typer.Option("--expected", help="The expected rate.")] = None,
    method: Annotated[str | None, typer.Option("--method", help="proportion_exact, beta_binomial, ...")] = None,
    expect_version: ExpectVersion = None,
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """Set or change a study's limits of one QTL (qtl.set_limit: quality lead or admin)."""
    from rbqm.store import qtl as store_qtl

    with user_errors(), open_cli_store(db) as store:
        row = store_qtl.set_limit(store, resolve_actor(actor), study_id, qtl_id, limit=limit,
                                  secondary_limit=secondary, expected_rate=expected, method=method,
                                  rationale=rationale, expected_version=expect_version)
    typer.echo(f"{study_id}/{qtl_id}: secondary limit {row['secondary_limit']:g}, tolerance limit "
               f"{row['limit']:g}, version {row['version']}.")


@qtl_app.command("history")
def history_command(study_id: Annotated[str, typer.Argument()], qtl_id: Annotated[str, typer.Argument()],
                    as_json: AsJson = False, db: DbUrl = None, actor: Actor = None) -> None:
    """Every change of a study's limits of one QTL, from the audit trail (qtl.view)."""
    from rbqm.store import qtl as store_qtl

    with user_errors(), open_cli_store(db) as store:
        entries = store_qtl.limit_history(store, resolve_actor(actor), study_id, qtl_id)
    if as_json:
        typer.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    if not entries:
        typer.echo(f"{study_id}/{qtl_id}: the library's limits (never changed for this study).")
        return
    rows = [("AT", "BY", "OLD", "NEW", "RATIONALE")]
    for e in entries:
        show = lambda v: "library" if v is None else f"{v['secondary_limit']:g} / {v['limit']:g}"  # noqa: E731
        rows.append((e.at.strftime("%Y-%m-%d %H:%M"), e.actor, show(e.old_value), show(e.new_value), e.reason))
    _print_rows(rows)


def _print_breaches(log) -> None:
    if not log.height:
        typer.echo("No QTL breaches recorded.")
        return
    rows = [("ID", "QTL", "FIRST CUT", "ESTIMATE", "LIMIT", "STATUS", "SYSTEMIC", "VERSION")]
    for r in log.iter_rows(named=True):
        rows.append((str(r["breach_id"]), r["qtl_id"], str(r["first_cut"]), _num(r["estimate"]), _num(r["limit"]),
                     r["status"], "-" if r["systemic"] is None else str(r["systemic"]).lower(), str(r["version"])))
    _print_rows(rows)


@qtl_app.command("breaches")
def breaches_command(study_dir: StudyDir, sync: Annotated[bool, typer.Option(
        "--sync", help="Open evaluations for new breaches first (qtl.evaluate).")] = False,
                     as_json: AsJson = False, db: DbUrl = None, actor: Actor = None) -> None:
    """The study's breach evaluations (qtl.view)."""
    from rbqm.store import qtl as store_qtl

    with user_errors():
        who = resolve_actor(actor)
        study_id, _, _ = _study_frame(study_dir, db, sync=sync, actor=who)
        with open_cli_store(db) as store:
            log = store_qtl.list_breaches(store, who, study_id)
    if as_json:
        typer.echo(log.write_json())
        return
    _print_breaches(log)


@qtl_app.command("evaluate")
def evaluate_command(
    breach_id: Annotated[int, typer.Argument(help="From rbqm qtl breaches.")],
    systemic: Annotated[bool, typer.Option("--systemic/--not-systemic", help="Is the issue systemic?")],
    root_cause: Annotated[str, typer.Option("--root-cause")],
    capa: Annotated[str, typer.Option("--capa", help="Corrective and preventive action.")],
    reason: Reason,
    expect_version: ExpectVersion = None,
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """Record a breach's assessment: systemic or not, root cause, CAPA (qtl.evaluate)."""
    from rbqm.store import qtl as store_qtl

    with user_errors(), open_cli_store(db) as store:
        row = store_qtl.evaluate_breach(store, resolve_actor(actor), breach_id, systemic=systemic,
                                        root_cause=root_cause, capa=capa, reason=reason,
                                        expected_version=expect_version)
    typer.echo(f"breach #{row['breach_id']} ({row['qtl_id']}): {row['status']}, version {row['version']}.")


@qtl_app.command("sign-off")
def sign_off_command(breach_id: Annotated[int, typer.Argument()], reason: Reason,
                     expect_version: ExpectVersion = None, db: DbUrl = None, actor: Actor = None) -> None:
    """Sign off an evaluated breach (qtl.sign_off: quality lead or admin)."""
    from rbqm.store import qtl as store_qtl

    with user_errors(), open_cli_store(db) as store:
        row = store_qtl.sign_off_breach(store, resolve_actor(actor), breach_id, reason=reason,
                                        expected_version=expect_version)
    typer.echo(f"breach #{row['breach_id']} ({row['qtl_id']}): signed off by {row['signed_off_by']}.")


@qtl_app.command("breach-log")
def breach_log_command(
    study_id: Annotated[str, typer.Argument()],
    fmt: Annotated[str, typer.Option("--format", help="csv or md.")] = "md",
    out: Annotated[Path | None, typer.Option("--out", help="Write to FILE (default: print).")] = None,
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """The breach log as CSV or as the report's "Important QTL deviations" section (qtl.view)."""
    from rbqm.errors import RbqmError
    from rbqm.qtl import breach_log_csv, breach_log_markdown
    from rbqm.store import qtl as store_qtl

    with user_errors():
        if fmt not in ("csv", "md"):
            raise RbqmError(f"--format must be csv or md, got {fmt!r}")
        with open_cli_store(db) as store:
            log = store_qtl.list_breaches(store, resolve_actor(actor), study_id)
        if fmt == "csv":
            if out is None:
                typer.echo(log.write_csv(), nl=False)
            else:
                breach_log_csv(log, out)
        else:
            text = breach_log_markdown(log, study_id=study_id)
            if out is None:
                typer.echo(text)
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text, encoding="utf-8")
    if out is not None:
        typer.echo(f"Wrote {out}.")
