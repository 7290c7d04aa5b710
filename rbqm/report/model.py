"""The oversight report as data: what a sponsor oversight meeting looks at, for one data cut.

:func:`build_report` turns an :class:`rbqm.analysis.Analysis` (and optionally the store's records,
``rbqm.report._store.read_store``) into an :class:`OversightReport` of plain polars frames: no
rendering here (``rbqm.report.html`` and ``rbqm.report.pdf`` draw it). "What changed" compares the
report's cut with the cut before it. docs/report.md says where every number comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl

from rbqm.actions import suggest_actions
from rbqm.analysis import Analysis
from rbqm.derive import AnalysisTables, derive_tables
from rbqm.errors import RbqmError
from rbqm.io import scan_study
from rbqm.kri import load_definitions
from rbqm.outcomes import OutcomeSummary, signal_outcomes, summarize_outcomes
from rbqm.overview import enrolment_vs_plan, site_flag_counts
from rbqm.qtl import load_qtl_definitions, qtl_trend
from rbqm.report._store import StoreRecords
from rbqm.risk import RiskReport, assess_risks
from rbqm.signals import CSM_ALPHA, CSM_RED, derive_signals
from rbqm.study import list_cuts

__all__ = ["OversightReport", "StudyStatus", "build_report", "restrict_to_cut", "cut_tables", "CLOSED_STATUSES"]

CLOSED_STATUSES = ("resolved", "closed_no_action")
"""Workflow statuses that end a signal (never overdue)."""

_SEVERITY_LEVEL = {"amber": 1, "red": 2}
REASONS_SHOWN = {"kri": 3, "csm": 2}
"""Reasons given in words per top site, by kind (the most severe first); the rest are counted."""
_RATE_METHODS = ("normal_approx_rate", "normal_approx_binary", "negative_binomial", "beta_binomial", "poisson",
                 "poisson_free_slope", "identity")


@dataclass(frozen=True)
class StudyStatus:
    """The study's size at the report's cut (and at the previous cut, where there is one).

    ``by_country``: ``rbqm.overview.enrolment_vs_plan(by="country")`` (country, sites, sites_with_plan,
    screened, enrolled, planned, enrolled_at_planned_sites, share_of_plan, plan_note) and active_sites
    (with a screened subject). The shares count only sites with a plan (PLANNEDENR).
    """

    sites: int
    active_sites: int
    countries: int
    screened: int
    enrolled: int
    planned: int | None
    previous_screened: int | None
    previous_enrolled: int | None
    first_consent: date | None
    by_country: pl.DataFrame
    share_of_plan: float | None = None
    """Enrolled at the sites with a plan over their planned enrolment (None without a plan)."""
    enrolled_at_planned_sites: int | None = None
    plan_note: str | None = None
    """``rbqm.overview.enrolment_vs_plan``'s note, e.g. "plan for 40 of 60 sites" (None: every site)."""


@dataclass(frozen=True)
class OversightReport:
    """Everything the oversight report shows, as frames (see docs/report.md for each column).

    Frames hold every row; ``top`` is how many rows the renderers show of the long ones
    (top sites, signals, actions, CSM findings), with a count of the rest.
    """

    study_id: str
    cut_date: date
    previous_cut: date | None
    cut_dates: list[date]
    generated_at: datetime
    top: int
    status: StudyStatus
    qtl: pl.DataFrame
    """One row per QTL at the cut: name, estimate and interval, limits, status, previous_status, change."""
    qtl_by_cut: pl.DataFrame
    """Every QTL at every cut up to the report's (``Analysis.qtl``, as the dashboard's QTL page draws it):
    qtl_id, name, cut_date, estimate, lower, upper, secondary_limit, limit, status; by QTL and cut."""
    sites_by_cut: pl.DataFrame
    """Per cut up to the report's: cut_date, sites (ranked), red_sites (at least one red KRI flag),
    amber_sites (an amber flag and no red one); from ``Analysis.site_risk``."""
    kris: pl.DataFrame
    """The heatmap's columns: kri_id, name, concern, metric_unit (site-level KRIs of the analysis)."""
    heatmap: pl.DataFrame
    """Sites x KRIs: site_id, rank, kri_id, flag (null: not scored), score; every site, by rank."""
    site_risk: pl.DataFrame
    """Every site: rank, site_id, country, risk_score, red, amber, previous_rank, previous_risk_score."""
    reasons: pl.DataFrame
    """Why each site is at risk: site_id, kind (kri or csm), indicator, level (1 amber, 2 red), text, shown
    (given in words among the top sites' reasons); KRI flags first, red first, strongest first."""
    top_sites: pl.DataFrame
    """The first ``top`` sites by rank with a risk score: site_risk's columns plus ``reasons`` (words)."""
    signals: pl.DataFrame
    """The cut's signals (``rbqm.signals``) with their workflow: status, owner, due_date, overdue."""
    signal_counts: pl.DataFrame
    """Signals at the cut per state: state, red, amber, total (states in SIGNAL_STATES order)."""
    actions: pl.DataFrame
    """One row per open signal with suggested actions: signal_id, site_id, severity, state, priority,
    actions (labels), where_to_look, status, owner, due_date, overdue; highest priority first."""
    outcomes: pl.DataFrame
    """The actioned signals' outcomes (``rbqm.outcomes.signal_outcomes`` at the cut: ``OUTCOME_COLUMNS``),
    empty without the store."""
    outcome_summary: OutcomeSummary | None
    """Improved, unchanged, worsened and too early, and the share improved against the benchmark
    (``rbqm.outcomes.summarize_outcomes``); None without the store."""
    csm: pl.DataFrame
    """Central-monitoring findings at the cut with q < 0.05, most significant first, with ``new``."""
    csm_tested: int
    """Site, test and variable combinations tested at the cut."""
    definitions: pl.DataFrame
    """The KRI library for the appendix: kri_id, name, description, metric_unit, method, thresholds, concern."""
    store: StoreRecords
    risk: RiskReport | None


def restrict_to_cut(analysis: Analysis, cut: date) -> Analysis:
    """``analysis`` without the cuts after ``cut`` (so ``cut`` is its latest).

    Raises
    ------
    RbqmError
        When ``cut`` is not one of the analysis' cuts (the message lists them).

    Examples
    --------
    >>> from rbqm.csm import CSM_COLUMNS
    >>> cuts = [date(2025, 1, 1), date(2025, 2, 1)]
    >>> results = pl.DataFrame({"cut_date": cuts, "score": [1.0, 2.0]})
    >>> empty = pl.DataFrame(schema={"cut_date": pl.Date})
    >>> a = Analysis("S", cuts, results, empty, empty, empty, pl.DataFrame(schema=CSM_COLUMNS))
    >>> restrict_to_cut(a, date(2025, 1, 1)).results["score"].to_list()
    [1.0]
    """
    if cut not in analysis.cut_dates:
        raise RbqmError(f"{analysis.study_id} has no data cut {cut.isoformat()}; its cuts are "
                        f"{', '.join(d.isoformat() for d in analysis.cut_dates)}")
    keep = lambda frame: frame.filter(pl.col("cut_date") <= cut) if "cut_date" in frame.columns else frame
    return replace(analysis, cut_dates=[d for d in analysis.cut_dates if d <= cut],
                   results=keep(analysis.results), bounds=keep(analysis.bounds), site_risk=keep(analysis.site_risk),
                   qtl=keep(analysis.qtl), csm=keep(analysis.csm))


def cut_tables(study_dir: Path, cut: date) -> AnalysisTables:
    """The analysis tables of a study at ``cut``: its ``cuts/<cut>`` folder when there is one, else
    the study folder as of ``cut``."""
    folder = next((p for p in list_cuts(study_dir) if p.name == cut.isoformat()), Path(study_dir))
    return derive_tables(scan_study(folder), as_of=cut)


# --- study status ---------------------------------------------------------------------------------


def _study_status(tables: AnalysisTables, previous: AnalysisTables | None) -> StudyStatus:
    active = (enrolment_vs_plan(tables, by="site").group_by("country")
              .agg(active_sites=(pl.col("screened") > 0).sum().cast(pl.Int64)))
    by_country = (enrolment_vs_plan(tables, by="country").join(active, on="country", how="left")
                  .with_columns(pl.col("active_sites").fill_null(0)).sort("country"))
    study = enrolment_vs_plan(tables, by="study").row(0, named=True)
    first = tables["subjects"].select(pl.coalesce(pl.col("RFICDTC"), pl.col("RFSTDTC")).str.slice(0, 10).min()).collect()
    before = None
    if previous is not None:
        before = previous["subjects"].select(pl.len().cast(pl.Int64), pl.col("enrolled").sum().cast(pl.Int64)).collect().row(0)
    return StudyStatus(
        sites=int(study["sites"]), active_sites=int(by_country["active_sites"].sum()), countries=by_country.height,
        screened=int(study["screened"]), enrolled=int(study["enrolled"]), planned=study["planned"],
        previous_screened=before[0] if before else None, previous_enrolled=before[1] if before else None,
        first_consent=date.fromisoformat(first.item()) if first.item() else None, by_country=by_country,
        share_of_plan=study["share_of_plan"], enrolled_at_planned_sites=study["enrolled_at_planned_sites"],
        plan_note=study["plan_note"])


# --- QTLs -----------------------------------------------------------------------------------------


def _qtls(analysis: Analysis, records: StoreRecords, kri_dir: Path | None) -> pl.DataFrame:
    names = {d.id: d.name for d in load_qtl_definitions(kri_dir)}
    cut = analysis.cut_dates[-1]
    if analysis.qtl.is_empty():
        return analysis.qtl.with_columns(name=pl.lit(None, pl.String), previous_status=pl.lit(None, pl.String),
                                         change=pl.lit(None, pl.String), limits_from=pl.lit(None, pl.String))
    trend = qtl_trend(analysis.qtl).filter(pl.col("cut_date") == cut).select("qtl_id", "previous_status", "change")
    return (analysis.qtl.filter(pl.col("cut_date") == cut).join(trend, on="qtl_id", how="left")
            .with_columns(name=pl.col("qtl_id").replace_strict(names, default=pl.col("qtl_id")),
                          limits_from=pl.when(pl.col("qtl_id").is_in(list(records.study_limits)))
                          .then(pl.lit("study")).otherwise(pl.lit("library")))
            .sort("qtl_id"))


def _qtl_by_cut(analysis: Analysis, kri_dir: Path | None) -> pl.DataFrame:
    names = {d.id: d.name for d in load_qtl_definitions(kri_dir)}
    columns = ("estimate", "lower", "upper", "secondary_limit", "limit")
    if analysis.qtl.is_empty():
        return pl.DataFrame(schema={"qtl_id": pl.String, "name": pl.String, "cut_date": pl.Date,
                                    **dict.fromkeys(columns, pl.Float64), "status": pl.String})
    name = pl.col("qtl_id").replace_strict(names, default=pl.col("qtl_id")).alias("name")
    return analysis.qtl.select("qtl_id", name, "cut_date", *columns, "status").sort("qtl_id", "cut_date")


def _sites_by_cut(analysis: Analysis) -> pl.DataFrame:
    """Red sites (a red flag) and amber sites (an amber flag, no red) at every cut (0 where none is ranked):
    the dashboard overview's counts (``rbqm.overview.site_flag_counts``)."""
    return site_flag_counts(analysis).select("cut_date", "sites", "red_sites", "amber_sites")


# --- sites, KRIs and why ---------------------------------------------------------------------------


def _kri_frame(kri_dir: Path | None) -> pl.DataFrame:
    return pl.DataFrame(
        [{"kri_id": d.id, "name": d.name, "description": d.description, "metric_unit": d.metric_unit,
          "metric_scale": d.metric_scale, "method": d.method, "concern": d.concern,
          "thresholds": ", ".join(f"{t:g}" for t in d.thresholds)} for d in load_definitions(kri_dir)],
        schema={"kri_id": pl.String, "name": pl.String, "description": pl.String, "metric_unit": pl.String,
                "metric_scale": pl.Float64, "method": pl.String, "concern": pl.String, "thresholds": pl.String})


def _site_risk(analysis: Analysis) -> pl.DataFrame:
    cuts = analysis.cut_dates
    now = analysis.site_risk.filter(pl.col("cut_date") == cuts[-1])
    if len(cuts) > 1:
        before = analysis.site_risk.filter(pl.col("cut_date") == cuts[-2]).select(
            "site_id", previous_rank="rank", previous_risk_score="risk_score")
    else:
        before = now.select("site_id", previous_rank=pl.lit(None, pl.Int64),
                            previous_risk_score=pl.lit(None, pl.Float64))
    return (now.join(before, on="site_id", how="left")
            .select("rank", "site_id", "country", "risk_score", "red", "amber", "previous_rank", "previous_risk_score")
            .sort("rank", "site_id", nulls_last=True))


def _number(value: pl.Expr, unit: pl.Expr) -> pl.Expr:
    """A metric in words: "12% of screened subjects" for shares, else "3.1 AEs per 1,000 days"."""
    share = unit.str.starts_with("share of")
    return (pl.when(share).then(pl.format("{}% {}", (100 * value).round(0).cast(pl.Int64),
                                          unit.str.strip_prefix("share ")))
            .otherwise(pl.format("{} {}", value.round_sig_figs(3), unit)))


def _kri_reasons(analysis: Analysis, kris: pl.DataFrame) -> pl.DataFrame:
    """One sentence per amber or red site-level KRI flag at the latest cut."""
    site = analysis.results.filter(pl.col("cut_date") == analysis.cut_dates[-1], pl.col("level") == "site")
    pooled = (pl.col("numerator").sum() / pl.col("denominator").sum()).over("kri_id")
    flagged = (site.with_columns(overall=pooled)
               .filter(pl.col("flag").fill_null(0) != 0)
               .join(kris.select("kri_id", "name", "metric_unit", "metric_scale"), on="kri_id", how="left"))
    flag = pl.col("flag").cast(pl.Int64)
    unit = pl.col("metric_unit").fill_null("")
    scale = pl.col("metric_scale").fill_null(1.0)
    severity = pl.when(flag.abs() == 2).then(pl.lit("red")).otherwise(pl.lit("amber"))
    direction = pl.when(flag < 0).then(pl.lit("low")).otherwise(pl.lit("high"))
    across = (pl.when(pl.col("method").is_in(_RATE_METHODS) & pl.col("overall").is_finite())
              .then(pl.format(" against {} across sites", _number(pl.col("overall") * scale, unit)))
              .otherwise(pl.lit("")))
    value = (pl.when(pl.col("method") == "identity_count").then(pl.format("{} {}", pl.col("numerator").cast(pl.Int64), unit))
             .otherwise(_number(pl.col("metric") * scale, unit)))
    text = pl.format("{} ({}): {}, {}: {}{} (score {})", pl.col("name").fill_null(pl.col("kri_id")), "kri_id",
                     severity, direction, value, across, pl.col("score").round(2))
    return flagged.select(site_id="group_id", kind=pl.lit("kri"), indicator="kri_id", level=flag.abs(),
                          strength=pl.col("score").abs(), text=text)


def q_text(q: pl.Expr) -> pl.Expr:
    """A q- or p-value in words: two significant figures, or "< 0.0001"."""
    return (pl.when(q < 1e-4).then(pl.lit("< 0.0001"))
            .otherwise(pl.format("= {}", q.round_sig_figs(2))))


def _csm_reasons(findings: pl.DataFrame) -> pl.DataFrame:
    q = pl.col("q_value")
    return findings.select(
        "site_id", kind=pl.lit("csm"), indicator=pl.concat_str("test", pl.lit(":"), "variable"),
        level=pl.when(q < CSM_RED).then(2).otherwise(1).cast(pl.Int64), strength=(1.0 / q).log10(),
        text=pl.format("{} (central monitoring, {}; q {})", pl.col("description").str.strip_chars_end("."),
                       pl.col("test").str.replace_all("_", " "), q_text(q)))


def _csm_findings(analysis: Analysis) -> tuple[pl.DataFrame, int]:
    cuts = analysis.cut_dates
    now = analysis.csm.filter(pl.col("cut_date") == cuts[-1])
    keys = ["site_id", "test", "variable"]
    significant = now.filter(pl.col("q_value") < CSM_ALPHA)
    if len(cuts) > 1:
        before = analysis.csm.filter(pl.col("cut_date") == cuts[-2], pl.col("q_value") < CSM_ALPHA).select(keys)
        significant = significant.join(before.with_columns(_was=pl.lit(True)), on=keys, how="left")
    else:
        significant = significant.with_columns(_was=pl.lit(None, pl.Boolean))
    return (significant.with_columns(new=pl.col("_was").is_null()).drop("_was")
            .sort("p_value", "q_value", "site_id", "test", "variable", nulls_last=True)), now.height


def _order_reasons(reasons: pl.DataFrame) -> pl.DataFrame:
    """Per site: KRI flags (they make the risk score) before CSM findings, red before amber, strongest
    first; ``shown`` marks the first of each kind (:data:`REASONS_SHOWN`)."""
    csm = pl.col("kind") == "csm"
    limit = pl.col("kind").replace_strict(REASONS_SHOWN, return_dtype=pl.Int64)
    return (reasons.with_columns(_csm=csm)
            .sort("site_id", "_csm", "level", "strength", "indicator", descending=[False, False, True, True, False])
            .with_columns(shown=pl.int_range(pl.len()).over("site_id", "kind") < limit)
            .drop("_csm"))


def _top_sites(site_risk: pl.DataFrame, reasons: pl.DataFrame, top: int) -> pl.DataFrame:
    more = (~pl.col("shown")).sum()
    words = (reasons.group_by("site_id", maintain_order=True)
             .agg(reasons=pl.col("text").filter("shown").str.join("; ")
                  + pl.when(more > 0).then(pl.format("; and {} more", more)).otherwise(pl.lit(""))))
    return (site_risk.filter(pl.col("risk_score").fill_null(0) > 0)
            .join(words, on="site_id", how="left").sort("rank", "site_id").head(top))


# --- signals, actions and outcomes ---------------------------------------------------------------------


def _signals(signals: pl.DataFrame, cut: date, records: StoreRecords, today: date) -> pl.DataFrame:
    at_cut = signals.filter(pl.col("cut_date") == cut)
    status = (pl.col("status").fill_null(pl.lit("not recorded")) if records.used else pl.col("status"))
    return (at_cut.join(records.workflow.select("signal_id", "status", "owner", "due_date"), on="signal_id", how="left")
            .with_columns(status=status)
            .with_columns(overdue=(pl.col("due_date") < today).fill_null(False)
                          & ~pl.col("status").is_in(CLOSED_STATUSES).fill_null(False),
                          _level=pl.col("severity").replace_strict(_SEVERITY_LEVEL, return_dtype=pl.Int64))
            .sort(["_level", "consecutive_cuts", "signal_id"], descending=[True, False, False]).drop("_level"))


def _signal_counts(signals: pl.DataFrame) -> pl.DataFrame:
    from rbqm.signals import SIGNAL_STATES

    order = pl.DataFrame({"state": list(SIGNAL_STATES)})
    counts = signals.group_by("state").agg(red=(pl.col("severity") == "red").sum().cast(pl.Int64),
                                            amber=(pl.col("severity") == "amber").sum().cast(pl.Int64))
    return (order.join(counts, on="state", how="left", maintain_order="left")
            .with_columns(pl.col("red", "amber").fill_null(0)).with_columns(total=pl.col("red") + pl.col("amber")))


def _actions(analysis: Analysis, derived: pl.DataFrame, tables: AnalysisTables, signals: pl.DataFrame) -> pl.DataFrame:
    suggested = suggest_actions(analysis, derived, tables=tables)
    per_signal = (suggested.group_by("signal_id", maintain_order=True)
                  .agg(pl.col("site_id", "severity", "state", "priority", "where_to_look").first(),
                       actions=pl.col("label").unique(maintain_order=True).str.join("; ")))
    return (per_signal.join(signals.select("signal_id", "status", "owner", "due_date", "overdue"),
                            on="signal_id", how="left")
            .sort(["priority", "signal_id"], descending=[True, False]))


def _outcomes(analysis: Analysis, records: StoreRecords) -> tuple[pl.DataFrame, OutcomeSummary | None]:
    """The actioned signals' outcomes at the cut, as ``rbqm signals outcomes --as-of CUT`` and the dashboard's
    signals page give them (``rbqm.outcomes``); no summary without the store (nothing is known to be actioned)."""
    outcomes = signal_outcomes(analysis, records.baselines, as_of=analysis.cut_dates[-1])
    return outcomes, summarize_outcomes(outcomes) if records.used else None


# --- the report -----------------------------------------------------------------------------------------


def build_report(analysis: Analysis, *, study_dir: Path, cut: date | None = None, top: int = 10,
                 records: StoreRecords | None = None, kri_dir: Path | None = None, today: date | None = None,
                 generated_at: datetime | None = None) -> OversightReport:
    """The oversight report of ``analysis`` at ``cut`` (default: its latest cut).

    Parameters
    ----------
    analysis : Analysis
        From ``rbqm.analysis.analyze_study`` of ``study_dir`` (with the study's QTL limits, when stored).
    study_dir : Path
        The study folder: the status section and the suggested actions read its tables at ``cut``.
    cut : date, optional
        One of the analysis' cuts; later cuts are ignored and the cut before it is "previous".
    top : int, default 10
        How many top sites are described (and rows of long tables shown).
    records : StoreRecords, optional
        The store's records of the study (``rbqm.report._store.read_store``): signal workflow, QTL
        limit history and breach log, risk register.
    kri_dir : Path, optional
        The KRI, QTL and risk library (default: the shipped one).
    today, generated_at
        For overdue signals and the stamp on the report (default: now).

    Returns
    -------
    OversightReport

    Raises
    ------
    RbqmError
        ``cut`` is not one of the analysis' cuts, or ``top`` is below 1.
    """
    if top < 1:
        raise RbqmError(f"--top must be at least 1, got {top}")
    if not analysis.cut_dates:
        raise RbqmError(f"{analysis.study_id}: the analysis holds no data cut")
    analysis = restrict_to_cut(analysis, cut) if cut is not None else analysis
    cut = analysis.cut_dates[-1]
    previous = analysis.cut_dates[-2] if len(analysis.cut_dates) > 1 else None
    records = records or StoreRecords()
    generated_at = generated_at or datetime.now(timezone.utc)
    today = today or generated_at.date()
    tables = cut_tables(study_dir, cut)
    kris = _kri_frame(kri_dir)
    derived = derive_signals(analysis, kri_dir=kri_dir)
    at_cut = _signals(derived, cut, records, today)
    findings, tested = _csm_findings(analysis)
    reasons = _order_reasons(pl.concat([_kri_reasons(analysis, kris), _csm_reasons(findings)]))
    site_risk = _site_risk(analysis)
    site_results = analysis.results.filter(pl.col("cut_date") == cut, pl.col("level") == "site")
    scored = kris.filter(pl.col("kri_id").is_in(site_results["kri_id"].unique().to_list()))
    heatmap = (site_results.join(site_risk.select("site_id", "rank"), left_on="group_id", right_on="site_id")
               .select("rank", site_id="group_id", kri_id="kri_id", flag="flag", score="score")
               .sort("rank", "site_id", "kri_id", nulls_last=True))
    risk = assess_risks(records.register, analysis, kri_dir=kri_dir) if records.register is not None else None
    outcomes, outcome_summary = _outcomes(analysis, records)
    return OversightReport(
        study_id=analysis.study_id, cut_date=cut, previous_cut=previous, cut_dates=list(analysis.cut_dates),
        generated_at=generated_at, top=top,
        status=_study_status(tables, cut_tables(study_dir, previous) if previous else None),
        qtl=_qtls(analysis, records, kri_dir), qtl_by_cut=_qtl_by_cut(analysis, kri_dir),
        sites_by_cut=_sites_by_cut(analysis), kris=scored.select("kri_id", "name", "concern", "metric_unit"),
        heatmap=heatmap, site_risk=site_risk, reasons=reasons.drop("strength"),
        top_sites=_top_sites(site_risk, reasons, top), signals=at_cut, signal_counts=_signal_counts(at_cut),
        actions=_actions(analysis, derived, tables, at_cut), outcomes=outcomes, outcome_summary=outcome_summary,
        csm=findings, csm_tested=tested,
        definitions=kris.select("kri_id", "name", "description", "metric_unit", "method", "thresholds", "concern"),
        store=records, risk=risk)
