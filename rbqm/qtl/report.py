"""QTL reporting: the status trend over cuts, the study's QTLs with its own limits, and the breach log.

* :func:`qtl_trend` -- each QTL's status at each cut and how it changed since the previous cut;
* :func:`study_qtls` -- ``compute_qtls`` over every cut of a study folder, with the study's limits;
* :func:`breach_log_csv` and :func:`breach_log_markdown` -- the breach log (``rbqm.store.qtl.breach_log``)
  as CSV and as the "Important QTL deviations" section of a clinical study report (ICH E3 9.6).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path

import polars as pl

from rbqm.qtl.compute import QTL_STATUSES, compute_qtls
from rbqm.qtl.definition import QtlDefinition, load_qtl_definitions

__all__ = ["TREND_COLUMNS", "qtl_trend", "study_qtls", "breach_log_csv", "breach_log_markdown"]

TREND_COLUMNS = {"study_id": pl.String, "qtl_id": pl.String, "cut_date": pl.Date, "estimate": pl.Float64,
                 "status": pl.String, "previous_status": pl.String, "change": pl.String}
"""The columns of :func:`qtl_trend`."""


def qtl_trend(qtl: pl.DataFrame) -> pl.DataFrame:
    """Each QTL's status at each cut, with the previous cut's and the change between them.

    Parameters
    ----------
    qtl
        ``compute_qtls`` results of one or more cuts (``Analysis.qtl``): ``study_id``, ``qtl_id``,
        ``cut_date``, ``estimate`` and ``status``.

    Returns
    -------
    polars.DataFrame
        ``TREND_COLUMNS``, sorted by study, QTL and cut. ``change`` is ``"first"`` at a QTL's first
        cut, then ``"worse"``, ``"better"`` or ``"same"`` (statuses ordered as ``QTL_STATUSES``), and
        null when either status is missing (not computable).

    Examples
    --------
    >>> from datetime import date
    >>> frame = pl.DataFrame({"study_id": ["S"] * 3, "qtl_id": ["qtl0002"] * 3,
    ...                       "cut_date": [date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)],
    ...                       "estimate": [0.02, 0.04, 0.05],
    ...                       "status": ["within limits", "secondary limit crossed", "tolerance limit breached"]})
    >>> qtl_trend(frame)["change"].to_list()
    ['first', 'worse', 'worse']
    """
    rank = pl.col("status").replace_strict(dict(zip(QTL_STATUSES, range(3))), default=None, return_dtype=pl.Int8)
    previous = rank.shift(1).over("study_id", "qtl_id", order_by="cut_date")
    first = pl.col("cut_date") == pl.col("cut_date").min().over("study_id", "qtl_id")
    return (qtl.lazy().sort("study_id", "qtl_id", "cut_date")
            .with_columns(previous_status=pl.col("status").shift(1).over("study_id", "qtl_id", order_by="cut_date"),
                          change=pl.when(first).then(pl.lit("first"))
                          .when(rank > previous).then(pl.lit("worse"))
                          .when(rank < previous).then(pl.lit("better"))
                          .when(rank == previous).then(pl.lit("same")))
            .select(pl.col(c).cast(t) for c, t in TREND_COLUMNS.items()).collect())


def study_qtls(study_dir: Path, *, limits: Mapping[str, Mapping[str, float | str | None]] | None = None,
               kri_dir: Path | None = None) -> pl.DataFrame:
    """``compute_qtls`` at every data cut of a study folder (oldest first; the folder itself when it has
    no ``cuts/``), judged against ``limits`` (the study's own, see ``rbqm.qtl.compute.with_limits``).

    The QTL part of ``rbqm.analysis.analyze_study``, without the KRIs and central monitoring.
    """
    from rbqm.derive import as_of_date, derive_tables
    from rbqm.errors import StudyFormatError
    from rbqm.io import scan_study
    from rbqm.study import list_cuts

    study_dir = Path(study_dir)
    folders = list_cuts(study_dir) or [study_dir]
    definitions = load_qtl_definitions(kri_dir)
    frames = []
    for folder in folders:
        tables = scan_study(folder)
        cut: date | None = date.fromisoformat(folder.name) if folder != study_dir else as_of_date(tables)
        if cut is None:
            raise StudyFormatError(f"{folder}: no dates in the data")
        ids = tables["dm"].select(pl.col("STUDYID").drop_nulls().unique()).collect().to_series().to_list()
        study_id = ids[0] if len(ids) == 1 else study_dir.name
        frames.append(compute_qtls(derive_tables(tables, as_of=cut), definitions, study_id=study_id,
                                   cut_date=cut, limits=limits))
    return pl.concat(frames)


def breach_log_csv(log: pl.DataFrame, path: Path) -> Path:
    """Write the breach log (``rbqm.store.qtl.breach_log``) as CSV (UTF-8, timestamps in ISO 8601)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log.write_csv(path)
    return path


def _pct(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.1f}%" if kind == "binary" else f"{value:.3g}"


def breach_log_markdown(log: pl.DataFrame, *, definitions: list[QtlDefinition] | None = None,
                        study_id: str | None = None) -> str:
    """The breach log as an "Important QTL deviations" section for the clinical study report (ICH E3 9.6).

    One subsection per breach: the parameter, the tolerance limit, the observed value with its 95%
    interval at detection and the date, the probability of exceeding the limit, the assessment
    (systemic or not, root cause), the corrective and preventive action, and the sign-off. A study
    without breaches gets a sentence saying so.

    Examples
    --------
    >>> from rbqm.store.qtl import BREACH_LOG_COLUMNS
    >>> print(breach_log_markdown(pl.DataFrame(schema=BREACH_LOG_COLUMNS), study_id="S1"))
    ## Important QTL deviations
    <BLANKLINE>
    No quality tolerance limit of study S1 was breached.
    <BLANKLINE>
    """
    library = {d.id: d for d in (definitions or load_qtl_definitions())}
    study = study_id or (log["study_id"][0] if log.height else "")
    lines = ["## Important QTL deviations", ""]
    if not log.height:
        return "\n".join([*lines, f"No quality tolerance limit of study {study} was breached.", ""])
    pending = int((log["status"] == "open").sum())
    evaluated = ("Each was evaluated and its corrective and preventive action recorded as below." if not pending
                 else f"{pending} of them still await(s) evaluation (status open); the others were evaluated "
                      "and their corrective and preventive actions recorded as below.")
    lines += [f"{log.height} breach(es) of quality tolerance limits in study {study}, in order of detection. "
              + evaluated, "",
              "| # | Parameter | Tolerance limit | Observed (95% interval) | Detected | Systemic | Status |",
              "|---|---|---|---|---|---|---|"]
    rows = log.sort("first_cut", "qtl_id").to_dicts()
    for i, r in enumerate(rows, 1):
        d = library.get(r["qtl_id"])
        kind, name = (d.kind, d.name) if d else ("binary", r["qtl_id"])
        systemic = "-" if r["systemic"] is None else ("yes" if r["systemic"] else "no")
        lines.append(f"| {i} | {name} ({r['qtl_id']}) | {_pct(r['limit'], kind)} | {_pct(r['estimate'], kind)} "
                     f"({_pct(r['lower'], kind)}-{_pct(r['upper'], kind)}) | {r['first_cut']} | {systemic} | "
                     f"{r['status'].replace('_', ' ')} |")
    lines.append("")
    for i, r in enumerate(rows, 1):
        d = library.get(r["qtl_id"])
        kind, name = (d.kind, d.name) if d else ("binary", r["qtl_id"])
        unit = f" ({d.metric_unit})" if d and d.kind == "rate" else ""
        prob = "-" if r["probability_exceed"] is None else f"{r['probability_exceed']:.2f}"
        assessed = (f"{r['assessed_by']} on {r['assessed_at']:%Y-%m-%d}" if r["assessed_by"] else "not yet evaluated")
        signed = (f"{r['signed_off_by']} on {r['signed_off_at']:%Y-%m-%d}" if r["signed_off_by"]
                  else "not yet signed off")
        systemic = ("not yet assessed" if r["systemic"] is None
                    else "systemic" if r["systemic"] else "not systemic (isolated)")
        lines += [
            f"### {i}. {name} ({r['qtl_id']})", "",
            f"- **Parameter:** {name}{unit}; method {r['method']}.",
            f"- **Limits:** tolerance limit {_pct(r['limit'], kind)}, secondary limit "
            f"{_pct(r['secondary_limit'], kind)}.",
            f"- **Observed at detection:** {_pct(r['estimate'], kind)} (95% interval {_pct(r['lower'], kind)} to "
            f"{_pct(r['upper'], kind)}) at the data cut of {r['first_cut']}; posterior probability that the "
            f"study rate exceeds the tolerance limit {prob}.",
            f"- **Assessment:** {systemic}; assessed by {assessed}.",
            f"- **Root cause:** {r['root_cause'] or '-'}",
            f"- **Corrective and preventive action:** {r['capa'] or '-'}",
            f"- **Sign-off:** {signed}.", "",
        ]
    return "\n".join(lines)
