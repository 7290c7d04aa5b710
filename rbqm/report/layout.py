"""The oversight report laid out: sections of blocks with every number already in words.

:func:`layout_report` turns an :class:`~rbqm.report.model.OversightReport` into :class:`Section` s of
:class:`Figures`, :class:`Table`, :class:`Text`, :class:`Heatmap`, :class:`Bars` and :class:`Trends`
blocks, so the HTML
and the PDF renderers draw exactly the same content; a renderer only decides how a block looks.
A :class:`Cell` with a ``flag`` (-2 to 2) is drawn with the palette's colour and symbol
(``rbqm.report.palette``): KRI flags, signal severities (amber 1, red 2), QTL statuses (within 0,
secondary 1, tolerance 2) and risk levels (low 0, medium 1, high 2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

from rbqm.qtl import QTL_STATUSES
from rbqm.report._methods import METHODS
from rbqm.report.model import OversightReport
from rbqm.report.palette import QTL_STATUS_MARKS
from rbqm.signals import SIGNAL_STATES

__all__ = ["Bars", "Cell", "Figures", "Heatmap", "Section", "Series", "Table", "Text", "Trend", "Trends",
           "HEATMAP_SITES", "SECTIONS", "layout_report", "fmt_number", "more_text"]

HEATMAP_SITES = 60
"""Sites shown in the heatmap (by rank); the rest are counted."""

SECTIONS = {
    "status": "Study status",
    "qtl": "Quality tolerance limits",
    "heatmap": "Site risk heatmap",
    "trends": "Trends over the data cuts",
    "sites": "Top sites and why",
    "signals": "New and escalated signals",
    "actions": "Actions: status and outcomes",
    "csm": "Central monitoring highlights",
    "risks": "Risk register",
    "methods": "Methods and definitions",
}
"""Section key -> title, in report order."""

_SEVERITY_FLAG = {"amber": 1, "red": 2}
_QTL_FLAG = {status: i for i, status in enumerate(QTL_STATUSES)}
_LEVEL_FLAG = {"low": 0, "medium": 1, "high": 2}
_BREACH_FLAG = {"open": 2, "evaluated": 1, "signed_off": 0}
DASH = "-"


@dataclass(frozen=True)
class Cell:
    """One table cell: its text (lines split by newlines) and, optionally, a flag to colour and mark it."""

    text: str
    flag: int | None = None


@dataclass(frozen=True)
class Table:
    """A table: column titles, relative column widths, rows of cells, and what was left out (``more``)."""

    columns: tuple[str, ...]
    widths: tuple[float, ...]
    rows: tuple[tuple[Cell, ...], ...]
    more: str | None = None
    title: str | None = None
    empty: str = "None."


@dataclass(frozen=True)
class Figures:
    """Key figures: (label, value, detail) triples shown side by side."""

    items: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class Text:
    """A paragraph (``note`` is shown smaller, ``heading`` as a sub-heading)."""

    text: str
    kind: str = "paragraph"


@dataclass(frozen=True)
class Heatmap:
    """Sites (rows, by rank) x KRIs (columns): the flag of each cell, None when not scored."""

    sites: tuple[tuple[str, int | None], ...]
    """(site id, rank)."""
    kris: tuple[tuple[str, str], ...]
    """(KRI id, name)."""
    flags: dict[tuple[str, str], int | None] = field(default_factory=dict)
    more: str | None = None


@dataclass(frozen=True)
class Bars:
    """Horizontal bars of a value against a target: (label, value, target) per row."""

    title: str
    rows: tuple[tuple[str, int, int | None], ...]
    value_label: str
    target_label: str


@dataclass(frozen=True)
class Series:
    """One line of a trend chart: a value per data cut (None: no value), drawn in ``style`` (a key of
    ``rbqm.report.palette.TREND_STYLES``), with the text shown at each point and an optional interval."""

    name: str
    style: str
    values: tuple[float | None, ...]
    labels: tuple[str, ...] = ()
    low: tuple[float | None, ...] = ()
    high: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class Trend:
    """A chart of one or more series over the data cuts (``cuts``: their dates as text); the y axis starts
    at 0 (``integer``: whole-number ticks, for counts)."""

    title: str
    cuts: tuple[str, ...]
    series: tuple[Series, ...]
    y_label: str
    integer: bool = False


@dataclass(frozen=True)
class Trends:
    """Trend charts side by side, ``per_row`` to a row, under an optional title."""

    charts: tuple[Trend, ...]
    per_row: int
    title: str | None = None


@dataclass(frozen=True)
class Section:
    """One section of the report: a key (an HTML anchor), a title, one sentence on what it shows, blocks."""

    key: str
    title: str
    intro: str
    blocks: tuple[object, ...]


# --- formatting -----------------------------------------------------------------------------------------


def fmt_number(value: float | None, digits: int = 3) -> str:
    """A number for a table: ``digits`` significant figures, integers as they are, "-" when missing.

    Examples
    --------
    >>> fmt_number(0.0171875), fmt_number(640), fmt_number(None), fmt_number(1234.5)
    ('0.0172', '640', '-', '1,234')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    if abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return DASH if value is None else f"{100 * value:.0f}%"


def _date(value: date | datetime | None) -> str:
    if value is None:
        return DASH
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else value.isoformat()


def _text(value: object) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date):
        return _date(value)
    return str(value)


def more_text(total: int, shown: int, what: str) -> str | None:
    """"and N more WHAT not shown" when rows were left out, else None.

    Examples
    --------
    >>> more_text(12, 10, "signals"), more_text(3, 10, "signals")
    ('... and 2 more signals not shown (the dashboard lists them all).', None)
    """
    if total <= shown:
        return None
    return f"... and {total - shown} more {what} not shown (the dashboard lists them all)."


def _change(now: int, before: int | None, what: str) -> str:
    if before is None:
        return "first data cut"
    delta = now - before
    return f"{'+' if delta >= 0 else ''}{delta:,} {what} since the previous cut"


def _cells(*values: object) -> tuple[Cell, ...]:
    return tuple(v if isinstance(v, Cell) else Cell(_text(v)) for v in values)


def _rows(frame: pl.DataFrame, make) -> tuple[tuple[Cell, ...], ...]:
    return tuple(make(row) for row in frame.iter_rows(named=True))



# --- sections -------------------------------------------------------------------------------------------


def _status(report: OversightReport) -> Section:
    s = report.status
    cuts = report.cut_dates
    figures = Figures((
        ("Sites", f"{s.active_sites:,} of {s.sites:,}",
         f"active (a screened subject), in {s.countries} {'country' if s.countries == 1 else 'countries'}"),
        ("Screened", f"{s.screened:,}", _change(s.screened, s.previous_screened, "subjects")),
        ("Enrolled", f"{s.enrolled:,}", _change(s.enrolled, s.previous_enrolled, "subjects")),
        ("Enrolment vs plan", _pct(s.share_of_plan),
         (f"{s.enrolled_at_planned_sites:,} of {s.planned:,} planned"
          + (f" ({s.plan_note})" if s.plan_note else "")) if s.planned
         else "no planned enrolment in the sites table"),
        ("Data cuts", f"{len(cuts)}", f"{_date(cuts[0])} to {_date(cuts[-1])}"),
        ("Previous cut", _date(report.previous_cut), f"first consent {_date(s.first_consent)}"),
    ))
    countries = Table(
        columns=("Country", "Sites", "Active sites", "Screened", "Enrolled", "Planned", "% of plan"),
        widths=(2, 1, 1, 1, 1, 1, 1),
        rows=_rows(s.by_country, lambda r: _cells(r["country"], r["sites"], r["active_sites"], fmt_number(r["screened"]),
                                                  fmt_number(r["enrolled"]), fmt_number(r["planned"]),
                                                  _pct(r["share_of_plan"]))),
        title="Enrolment by country")
    bars = Bars("Enrolled against planned, by country (enrolled at the sites with a plan)",
                tuple((r["country"], int(r["enrolled_at_planned_sites"] if r["planned"] is not None else r["enrolled"]),
                       None if r["planned"] is None else int(r["planned"]))
                      for r in s.by_country.iter_rows(named=True)), "enrolled", "planned")
    return Section("status", SECTIONS["status"],
                   f"{report.study_id} at the data cut of {_date(report.cut_date)}: sites, subjects and enrolment "
                   "against the sites' planned enrolment.", (figures, countries, bars))


def _qtl_row(r: dict) -> tuple[Cell, ...]:
    if r["estimate"] is None:
        estimate = r["note"] or "not computed"
    else:
        estimate = f"{fmt_number(r['estimate'])} [{fmt_number(r['lower'])}, {fmt_number(r['upper'])}]"
    change = DASH if r["change"] in (None, "first") else f"{r['change']} (was {r['previous_status']})"
    status = Cell(r["status"] or "not computed", _QTL_FLAG.get(r["status"]))
    return _cells(r["qtl_id"], r["name"], estimate, fmt_number(r["secondary_limit"]), fmt_number(r["limit"]),
                  r["limits_from"], status, change, fmt_number(r["probability_exceed"], 2))


def _qtl(report: OversightReport) -> Section:
    qtl = report.qtl
    breached = qtl.filter(pl.col("status") == QTL_STATUSES[2]).height
    crossed = qtl.filter(pl.col("status") == QTL_STATUSES[1]).height
    blocks: list[object] = [
        Figures((("QTLs", f"{qtl.height}", "study-level parameters judged at this cut"),
                 ("Tolerance limit breached", f"{breached}", "need a documented evaluation"),
                 ("Secondary limit crossed", f"{crossed}", "warning: watch the trend"))),
        Table(("QTL", "Parameter", "Estimate [95% interval]", "Secondary", "Tolerance", "Limits", "Status",
               "Change since previous cut", "P(exceed)"), (1, 2.6, 2, 1, 1, 0.9, 2.2, 2, 1),
              _rows(qtl, _qtl_row), empty="No QTL was computed."),
    ]
    store = report.store
    if not store.used:
        blocks.append(Text("Breach evaluations and the history of the study's own limits live in the store; "
                           "this report was made without it (rbqm report --db URL, or the dashboard).", "note"))
    else:
        log = store.breach_log
        blocks.append(Table(
            ("#", "QTL", "First cut", "Estimate", "Tolerance", "Status", "Systemic", "Root cause", "CAPA", "Signed off by"),
            (0.5, 1, 1.2, 1, 1, 1.1, 0.9, 2.2, 2.2, 1.2),
            _rows(log.head(report.top), lambda r: _cells(
                r["breach_id"], r["qtl_id"], r["first_cut"], fmt_number(r["estimate"]), fmt_number(r["limit"]),
                Cell(r["status"], _BREACH_FLAG.get(r["status"])), r["systemic"], r["root_cause"],
                r["capa"], r["signed_off_by"])),
            more_text(log.height, report.top, "breaches"), title="Breach log", empty="No breach recorded."))
        history = store.limit_history
        blocks.append(Table(("QTL", "Changed", "By", "From", "To", "Rationale"), (1, 1.5, 1, 2, 2, 3.5),
                            _rows(history.head(report.top), lambda r: _cells(r["qtl_id"], r["at"], r["by"], r["old"],
                                                                             r["new"], r["rationale"])),
                            more_text(history.height, report.top, "changes"), title="Limit history",
                            empty="Every QTL uses the library's limits (none set for this study)."))
    return Section("qtl", SECTIONS["qtl"],
                   "Each QTL's estimate with its 95% interval against the secondary and tolerance limits, and how "
                   "its status changed since the previous cut.", tuple(blocks))


def _heatmap(report: OversightReport) -> Section:
    ranks = report.site_risk.select("site_id", "rank")
    shown = ranks.head(HEATMAP_SITES)
    cells = report.heatmap.filter(pl.col("site_id").is_in(shown["site_id"].implode()))
    flags = {(r["site_id"], r["kri_id"]): r["flag"] for r in cells.iter_rows(named=True)}
    heatmap = Heatmap(sites=tuple(shown.iter_rows()), kris=tuple(report.kris.select("kri_id", "name").iter_rows()),
                      flags=flags, more=more_text(ranks.height, HEATMAP_SITES, "sites (lower risk)"))
    red = int(report.site_risk["red"].sum())
    amber = int(report.site_risk["amber"].sum())
    return Section("heatmap", SECTIONS["heatmap"],
                   "Every site (rows, by risk rank) against every site-level KRI (columns). Triangles pointing up "
                   "(red colours) mark a site above the other sites, pointing down (blue colours) below them: two "
                   "for a red flag, one for amber; blank is not flagged, a grey dot not scored (too few to score).",
                   (Figures((("Sites", f"{ranks.height}", "ranked by site risk score"),
                             ("KRIs", f"{report.kris.height}", "site level"),
                             ("Red flags", f"{red}", "all sites"), ("Amber flags", f"{amber}", "all sites"))),
                    heatmap))


def _qtl_trend(qtl: pl.DataFrame, cuts: tuple[str, ...]) -> Trend:
    """One QTL's estimate (with its 95% interval and status mark) against its limits at each cut."""
    by_cut = {r["cut_date"].isoformat(): r for r in qtl.iter_rows(named=True)}
    rows = [by_cut.get(cut, {}) for cut in cuts]
    column = lambda name: tuple(r.get(name) for r in rows)
    labels = tuple("" if r.get("estimate") is None else
                   f"{fmt_number(r['estimate'])} {QTL_STATUS_MARKS.get(r['status'], '')}".strip() for r in rows)
    first = qtl.row(0, named=True)
    return Trend(f"{first['qtl_id']} {first['name']}", cuts, (
        Series("estimate (95% interval)", "estimate", column("estimate"), labels, column("lower"), column("upper")),
        Series("secondary limit", "secondary_limit", column("secondary_limit")),
        Series("tolerance limit", "tolerance_limit", column("limit")),
    ), "estimate")


def _trends(report: OversightReport) -> Section:
    cuts = tuple(_date(d) for d in report.cut_dates)
    sites = report.sites_by_cut
    counts = lambda column: tuple(int(v) for v in sites[column])
    site_chart = Trend("Sites with a red or an amber flag", cuts, (
        Series("red sites (a red flag)", "red_sites", counts("red_sites"), tuple(str(v) for v in counts("red_sites"))),
        Series("amber sites (amber, no red)", "amber_sites", counts("amber_sites"),
               tuple(str(v) for v in counts("amber_sites"))),
    ), "sites", integer=True)
    computed = report.qtl_by_cut.filter(pl.col("estimate").is_not_null().any().over("qtl_id"))
    charts = tuple(_qtl_trend(computed.filter(pl.col("qtl_id") == qtl_id), cuts)
                   for qtl_id in computed["qtl_id"].unique(maintain_order=True))
    blocks: list[object] = [Trends((site_chart,), per_row=2, title="Red and amber sites at each data cut")]
    if charts:
        blocks.append(Trends(charts, per_row=3, title="Each QTL's estimate against its limits at each data cut"))
    missing = report.qtl_by_cut.filter(~pl.col("qtl_id").is_in(computed["qtl_id"].implode()))
    if missing.height:
        names = missing.unique("qtl_id", maintain_order=True)
        blocks.append(Text("Not computed at any cut (the study lacks what they need): " + ", ".join(
            f"{r['qtl_id']} {r['name']}" for r in names.iter_rows(named=True)) + ".", "note"))
    if len(cuts) == 1:
        blocks.insert(0, Text("This is the study's first data cut: each chart has one point.", "note"))
    return Section("trends", SECTIONS["trends"],
                   "How the study moved over its data cuts up to this one: the number of sites with a red flag, and "
                   "with an amber flag but no red one; and each QTL's estimate with its 95% interval against its "
                   "secondary and tolerance limits (the marks are the status: ● within limits, ▲ secondary limit "
                   "crossed, ▲▲ tolerance limit breached). Each point is labelled with its value.", tuple(blocks))


def _sites(report: OversightReport) -> Section:
    top = report.top_sites
    reasons = report.reasons
    total = report.site_risk.filter(pl.col("risk_score").fill_null(0) > 0).height
    rows = []
    for r in top.iter_rows(named=True):
        mine = reasons.filter(pl.col("site_id") == r["site_id"])
        lines = [f"• {text}" for text in mine.filter("shown")["text"]]
        if rest := mine.filter(~pl.col("shown")).height:
            lines.append(f"and {rest} more {'finding' if rest == 1 else 'findings'}")
        rows.append(_cells(r["rank"], r["site_id"], r["country"], fmt_number(r["risk_score"], 3),
                           DASH if r["previous_rank"] is None else r["previous_rank"], r["red"], r["amber"],
                           "\n".join(lines) or "no flag"))
    return Section("sites", SECTIONS["sites"],
                   f"The {len(rows)} sites with the highest risk score and, in words, the KRI flags and central-"
                   "monitoring findings behind it: KRI flags (which make the score) first, red first.",
                   (Table(("Rank", "Site", "Country", "Risk score", "Previous rank", "Red", "Amber", "Why"),
                          (0.7, 0.8, 0.9, 0.9, 0.9, 0.6, 0.7, 9),
                          tuple(rows), more_text(total, len(rows), "sites with a risk score above 0"),
                          empty="No site has a flag at this cut."),))


def _workflow_columns(report: OversightReport):
    """The workflow columns (titles, widths, cells of a row) of the signal tables: none without the store."""
    if not report.store.used:
        return (), (), lambda r: ()

    def cells(r: dict) -> tuple[object, ...]:
        due = DASH if r["due_date"] is None else _date(r["due_date"]) + (" (overdue)" if r["overdue"] else "")
        return (r["status"], r["owner"], due)

    return ("Status", "Owner", "Due"), (1.2, 1, 1.1), cells


def _signals(report: OversightReport) -> Section:
    counts = report.signal_counts
    count_table = Table(("State", "Red", "Amber", "Total", "Meaning"), (1.3, 0.7, 0.7, 0.7, 5),
                        _rows(counts, lambda r: _cells(r["state"], r["red"], r["amber"], r["total"],
                                                       SIGNAL_STATES[r["state"]])),
                        title="Signals at this cut by state")
    chosen = report.signals.filter(pl.col("state").is_in(["new", "escalated"]))
    shown = chosen.head(report.top)
    workflow = _workflow_columns(report)
    table = Table(("Severity", "Signal", "State", "Summary", *workflow[0]), (1.1, 2.2, 1, 5.5, *workflow[1]),
                  _rows(shown, lambda r: _cells(Cell(r["severity"], _SEVERITY_FLAG[r["severity"]]), r["signal_id"],
                                                r["state"], r["summary"], *workflow[2](r))),
                  more_text(chosen.height, shown.height, "new or escalated signals"),
                  title="New and escalated signals", empty="No new or escalated signal at this cut.")
    return Section("signals", SECTIONS["signals"],
                   "Every amber or red KRI flag, QTL limit and central-monitoring finding is a signal; these are the "
                   "ones that appeared or turned red since the previous cut, with their workflow in the store.",
                   (count_table, table))


def _actions(report: OversightReport) -> Section:
    actions = report.actions
    shown = actions.head(report.top)
    blocks: list[object] = []
    if not report.store.used:
        blocks.append(Text("The signals' workflow (status, owner, due date) lives in the store; this report was made "
                           "without it (rbqm report --db URL, or the dashboard).", "note"))
    else:
        open_ = report.signals.filter(pl.col("state") != "resolved")
        by_status = open_.group_by("status").agg(n=pl.len()).sort("status")
        overdue = int(open_["overdue"].sum())
        blocks.append(Figures((
            ("Open signals", f"{open_.height}", "flagged at this cut"),
            ("Overdue", f"{overdue}", "due date passed, not resolved or closed"),
            ("By workflow status", ", ".join(f"{r['status']} {r['n']}" for r in by_status.iter_rows(named=True))
             or DASH, "from the store"))))
    workflow = _workflow_columns(report)
    blocks.append(Table(
        ("Priority", "Severity", "Signal", "Suggested actions", "Where to look", *workflow[0]),
        (0.8, 1.1, 2, 3.2, 4.6, *workflow[1]),
        _rows(shown, lambda r: _cells(fmt_number(r["priority"], 3), Cell(r["severity"], _SEVERITY_FLAG[r["severity"]]),
                                      r["signal_id"], r["actions"], r["where_to_look"], *workflow[2](r))),
        more_text(actions.height, shown.height, "signals with suggested actions"),
        title="Suggested actions for open signals, highest priority first", empty="No open signal needs action."))
    blocks.extend(_outcome_blocks(report))
    return Section("actions", SECTIONS["actions"],
                   "The targeted actions suggested for the open signals, with the signals' status, owner and due "
                   "date; then whether the signals acted on improved since (the same figures as the dashboard's "
                   "signals page and rbqm signals outcomes).", tuple(blocks))


OUTCOME_ORDER = ("worsened", "unchanged", "improved", "too_early")
"""The order of the outcomes table: what needs attention first."""


def _outcome_blocks(report: OversightReport) -> list[object]:
    """The outcomes of the actioned signals (``rbqm.outcomes``): counts, share improved against the benchmark,
    and one row per actioned signal."""
    summary = report.outcome_summary
    if summary is None:
        return [Text("Outcomes", "heading"),
                Text("Whether the signals acted on improved needs the store's record of which signals were "
                     "actioned; this report was made without it (rbqm report --db URL, or the dashboard).", "note")]
    share = summary.share_improved
    versus = (f"{summary.improved} of {summary.assessed} assessed; benchmark {_pct(summary.benchmark)}"
              if share is not None else f"none assessed yet; benchmark {_pct(summary.benchmark)}")
    figures = Figures((
        ("Improved after action", _pct(share), versus),
        ("Improved", f"{summary.improved}", "severity fell, or strength moved toward normal"),
        ("Unchanged", f"{summary.unchanged}", "same severity, strength within the margin"),
        ("Worsened", f"{summary.worsened}", "severity rose, or strength moved away from normal"),
        ("Too early", f"{summary.too_early}", "no later cut yet"),
    ))
    if share is not None:
        gap = round(100 * (share - summary.benchmark))
        words = (f"{abs(gap)} points {'above' if gap > 0 else 'below'}" if gap else "at")
        comparison = f"{_pct(share)} of the assessed signals improved after action: {words} the benchmark. "
    else:
        comparison = ""
    order = {outcome: i for i, outcome in enumerate(OUTCOME_ORDER)}
    outcomes = report.outcomes.sort(pl.col("outcome").replace_strict(order, default=len(order)), "signal_id")
    table = Table(("Signal", "Actioned at cut", "Compared at cut", "Outcome", "What the indicator did"),
                  (2.4, 1.2, 1.2, 1.1, 6),
                  _rows(outcomes.head(report.top), lambda r: _cells(
                      r["signal_id"], r["planned_cut"], r["compared_cut"], r["outcome"].replace("_", " "),
                      r["note"])),
                  more_text(outcomes.height, report.top, "actioned signals"),
                  title="Actioned signals, worsened first", empty="No signal has been acted on yet.")
    note = Text(f"{comparison}A signal was acted on at the cut of its first linked action (or its first "
                "action-planned status); its indicator then is compared with the latest cut up to this one. "
                f"Benchmark: {summary.benchmark_source}.", "note")
    return [Text("Outcomes", "heading"), figures, note, table]


def _csm(report: OversightReport) -> Section:
    csm = report.csm
    shown = csm.head(report.top)
    red = csm.filter(pl.col("q_value") < 0.01).height
    new = int(csm["new"].sum()) if csm.height else 0
    figures = Figures((("Tested", f"{report.csm_tested:,}", "site x test x variable"),
                       ("Significant", f"{csm.height}", "q < 0.05"), ("Of which q < 0.01", f"{red}", "red signals"),
                       ("New", f"{new}" if report.previous_cut else DASH, "not significant at the previous cut")))
    table = Table(("Site", "Test", "Variable", "q-value", "New", "Finding"), (0.8, 1.8, 1.2, 1, 0.6, 7),
                  _rows(shown, lambda r: _cells(r["site_id"], r["test"].replace("_", " "), r["variable"],
                                                "< 0.0001" if r["q_value"] < 1e-4 else fmt_number(r["q_value"], 2),
                                                r["new"] if report.previous_cut else DASH, r["description"])),
                  more_text(csm.height, shown.height, "findings"),
                  empty="No central-monitoring finding is significant at this cut (or central monitoring was not run).")
    return Section("csm", SECTIONS["csm"],
                   "The most significant central-monitoring findings of the cut, in the words a monitor reads.",
                   (figures, table))


def _risks(report: OversightReport) -> Section:
    risk = report.risk
    if risk is None:
        why = ("the store holds no risk register for this study (rbqm risk import-template)" if report.store.used
               else "this report was made without the store (rbqm report --db URL)")
        return Section("risks", SECTIONS["risks"], "The study's risk register: scored risks and the indicators "
                       "that watch them.", (Text(f"No risk register: {why}.", "note"),))
    register = risk.register
    high = register.filter(pl.col("level") == "high").height
    figures = Figures((("Overall study risk", risk.study.level, f"weighted score {risk.study.score:.2f} of 27"),
                       ("Risks", f"{register.height}", f"{high} high"),
                       ("Review proposals", f"{risk.proposals.height}", "likelihood to raise or lower"),
                       ("Gaps", f"{risk.gaps.height}", "risks without indicator, indicators without risk")))
    table = Table(("Risk", "Name", "Category", "Score (IxLxD)", "Level", "Indicators at this cut"),
                  (0.9, 3, 1.4, 1.2, 1, 5),
                  _rows(register, lambda r: _cells(r["risk_id"], r["name"], r["category"],
                                                   f"{r['score']} = {r['impact']}x{r['likelihood']}x{r['detectability']}",
                                                   Cell(r["level"], _LEVEL_FLAG.get(r["level"])), r["status"])),
                  title="Register")
    proposals = Table(("Risk", "Likelihood", "Score", "Evidence"), (0.9, 1.2, 1.2, 8),
                      _rows(risk.proposals, lambda r: _cells(
                          r["risk_id"], f"{r['direction']}: {r['likelihood']} to {r['proposed_likelihood']}",
                          f"{r['score']} to {r['proposed_score']}", r["evidence"])),
                      title="Review proposals", empty="No proposal at this cut.")
    gaps = Table(("Gap", "Id", "Name"), (2, 1.2, 6), _rows(risk.gaps, lambda r: _cells(r["gap"], r["id"], r["name"])),
                 title="Gaps", empty="No gap: every risk has an indicator and every indicator controls a risk.")
    return Section("risks", SECTIONS["risks"], "The study's risk register from the store: each risk's score and "
                   "level, what its indicators show at this cut, proposals to re-score, and the gaps.",
                   (figures, table, proposals, gaps))


def _methods(report: OversightReport) -> Section:
    terms = Table(("Term", "Meaning"), (1.6, 8), tuple(_cells(term, text) for term, text in METHODS))
    library = Table(("KRI", "Name", "Unit", "Method", "Thresholds", "Concern"), (0.8, 2.6, 2.6, 1.8, 1.4, 0.8),
                    _rows(report.definitions, lambda r: _cells(r["kri_id"], r["name"], r["metric_unit"],
                                                               r["method"].replace("_", " "), r["thresholds"],
                                                               r["concern"])),
                    title="The KRI library")
    return Section("methods", SECTIONS["methods"], "What each number in this report means and where it comes from "
                   "(docs/report.md has more).", (terms, library))


def layout_report(report: OversightReport) -> list[Section]:
    """The report's sections, in :data:`SECTIONS` order, ready to render.

    Examples
    --------
    >>> list(SECTIONS)[:3]
    ['status', 'qtl', 'heatmap']
    """
    builders = (_status, _qtl, _heatmap, _trends, _sites, _signals, _actions, _csm, _risks, _methods)
    return [build(report) for build in builders]


def header_lines(report: OversightReport) -> tuple[str, str]:
    """The report's title and its subtitle (study, cut, previous cut, generated)."""
    previous = f"; previous cut {_date(report.previous_cut)}" if report.previous_cut else "; first data cut"
    return (f"Oversight report: {report.study_id}",
            f"Data cut {_date(report.cut_date)}{previous}. Generated {_date(report.generated_at)} UTC by rbqm.")


def iter_tables(sections: Iterable[Section]) -> Iterable[Table]:
    """Every table of ``sections`` (for tests and renderers)."""
    return (block for section in sections for block in section.blocks if isinstance(block, Table))
