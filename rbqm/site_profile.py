"""One site's profile, and the site table behind the risk heatmap: selections and joins of an analysis.

Everything here is a frame in, frame out selection of what ``rbqm.analysis``, ``rbqm.signals`` and
``rbqm.actions`` computed, for one site at one data cut; nothing is scored again. The subjects behind a
KRI's numbers come from the KRI engine's own per-subject reduction (``rbqm.kri.compute.subject_counts``),
so a site's listing adds up to its result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from rbqm.analysis import Analysis
from rbqm.derive import AnalysisTables, derive_tables
from rbqm.errors import RbqmError
from rbqm.io import scan_study
from rbqm.kri.definition import Condition, Count, KriDefinition
from rbqm.signals import CSM_ALPHA, CSM_RED

__all__ = ["SITE_SORTS", "SiteHeader", "describe_count", "open_site_signals", "risk_table", "site_actions",
           "site_findings", "site_header", "site_kris", "subject_listing", "tables_at_cut"]

SITE_SORTS: dict[str, tuple[tuple[str, bool], ...]] = {
    "risk": (("rank", False), ("site_id", False)),
    "dis": (("dis", True), ("rank", False), ("site_id", False)),
    "site": (("site_id", False),),
    "country": (("country", False), ("rank", False), ("site_id", False)),
    "region": (("region", False), ("rank", False), ("site_id", False)),
}
"""Orders of the site table: name -> (column, descending) pairs, nulls last. ``risk`` is by risk rank
(1 first), ``dis`` by data inconsistency score (highest first)."""

@dataclass(frozen=True)
class SiteHeader:
    """A site at a data cut: where it is, how big, and how it ranks."""

    site_id: str
    cut_date: date
    country: str | None
    region: str | None
    screened: int
    enrolled: int
    rank: int | None
    """Risk rank among ``ranked_sites`` (1 = most at risk); None when no KRI was scored."""
    ranked_sites: int
    risk_score: float | None
    red: int
    amber: int
    kris_scored: int
    dis: float | None
    """Data inconsistency score, when the analysis has one (``site_risk.dis``)."""
    dis_rank: int | None


def _sort(frame: pl.DataFrame, order: Sequence[tuple[str, bool]]) -> pl.DataFrame:
    present = [(column, descending) for column, descending in order if column in frame.columns]
    return frame.sort([c for c, _ in present], descending=[d for _, d in present], nulls_last=True)


def risk_table(analysis: Analysis, cut: date, *, region_of: pl.DataFrame | None = None,
               countries: Sequence[str] = (), regions: Sequence[str] = (),
               sort_by: str = "risk") -> pl.DataFrame:
    """The site risk of one cut, one row per site, filtered and ordered for the heatmap.

    Parameters
    ----------
    analysis : Analysis
        Its ``site_risk`` (site_id, country, risk_score, rank, red, amber, kris_scored, and ``dis`` and
        ``dis_rank`` when the analysis has them).
    cut : date
        The data cut.
    region_of : polars.DataFrame, optional
        ``site_id`` -> ``region`` (``rbqm.regions.with_regions`` of the site table); without it the
        ``region`` column is null.
    countries, regions : sequence of str
        Keep only these countries and regions (all when empty; both apply).
    sort_by : str
        A key of :data:`SITE_SORTS`.

    Raises
    ------
    RbqmError
        For an unknown ``sort_by``.

    Examples
    --------
    >>> risk = pl.DataFrame({"site_id": ["1", "2", "3"], "country": ["FRA", "DEU", "FRA"],
    ...     "risk_score": [10.0, 50.0, None], "rank": [2, 1, None], "cut_date": [date(2025, 1, 1)] * 3})
    >>> analysis = Analysis("S", [date(2025, 1, 1)], pl.DataFrame(), pl.DataFrame(), risk, pl.DataFrame(),
    ...                     pl.DataFrame())
    >>> risk_table(analysis, date(2025, 1, 1), countries=["FRA"])["site_id"].to_list()
    ['1', '3']
    """
    if sort_by not in SITE_SORTS:
        raise RbqmError(f"unknown site order {sort_by!r}; choose one of {', '.join(SITE_SORTS)}")
    risk = analysis.site_risk.filter(pl.col("cut_date") == cut)
    if region_of is not None:
        risk = risk.join(region_of.select("site_id", "region").unique("site_id"), on="site_id", how="left")
    else:
        risk = risk.with_columns(region=pl.lit(None, pl.String))
    if countries:
        risk = risk.filter(pl.col("country").is_in(list(countries)))
    if regions:
        risk = risk.filter(pl.col("region").is_in(list(regions)))
    return _sort(risk, SITE_SORTS[sort_by])


def tables_at_cut(study_dir: Path, cut: date) -> AnalysisTables:
    """The analysis tables of a study at one of its cuts: its ``cuts/YYYY-MM-DD`` folder when it has one,
    else the study folder itself at that date (as ``rbqm.analysis.analyze_study`` reads them)."""
    study_dir = Path(study_dir)
    folder = study_dir / "cuts" / cut.isoformat()
    return derive_tables(scan_study(folder if folder.is_dir() else study_dir), as_of=cut)


def site_header(analysis: Analysis, site: str, cut: date, *, subjects: pl.DataFrame,
                region: str | None = None) -> SiteHeader:
    """The header of a site's profile at ``cut``.

    ``subjects`` is the ``subjects`` analysis table at the cut (``tables_at_cut(...)["subjects"]``,
    collected): the site's screened (rows) and enrolled subjects are counted from it.

    Raises
    ------
    RbqmError
        When the site has no row in the cut's site risk, naming the sites it has.
    """
    risk = analysis.site_risk.filter(pl.col("cut_date") == cut)
    row = risk.filter(pl.col("site_id") == site)
    if row.is_empty():
        known = sorted(risk["site_id"].to_list())
        raise RbqmError(f"site {site!r} has no results at {cut}; "
                        f"the sites are {', '.join(known) or '(none)'}")
    values = row.row(0, named=True)
    mine = subjects.filter(pl.col("SITEID") == site)
    return SiteHeader(
        site_id=site, cut_date=cut, country=values.get("country"), region=region,
        screened=mine.height, enrolled=int(mine["enrolled"].sum()),
        rank=values.get("rank"), ranked_sites=int(risk["rank"].is_not_null().sum()),
        risk_score=values.get("risk_score"), red=int(values.get("red") or 0),
        amber=int(values.get("amber") or 0), kris_scored=int(values.get("kris_scored") or 0),
        dis=values.get("dis"), dis_rank=values.get("dis_rank"),
    )


def site_kris(analysis: Analysis, site: str, cut: date, definitions: Sequence[KriDefinition]) -> pl.DataFrame:
    """Every site-level KRI of a site at ``cut``, with its history over the cuts up to it.

    Returns one row per KRI (by id): kri_id, name, metric_unit, numerator, denominator, metric,
    ``metric_shown`` (metric x the definition's metric_scale), score, flag, note, flag_change,
    flagged_cuts, and ``scores`` and ``flags``: the site's score and flag at each cut up to ``cut``,
    oldest first (null where not scored).
    """
    names = pl.DataFrame({"kri_id": [d.id for d in definitions], "name": [d.name for d in definitions],
                          "metric_unit": [d.metric_unit for d in definitions],
                          "metric_scale": [d.metric_scale for d in definitions]},
                         schema={"kri_id": pl.String, "name": pl.String, "metric_unit": pl.String,
                                 "metric_scale": pl.Float64})
    mine = analysis.results.filter((pl.col("level") == "site") & (pl.col("group_id") == site)
                                   & (pl.col("cut_date") <= cut))
    history = (mine.sort("cut_date").group_by("kri_id")
               .agg(scores=pl.col("score"), flags=pl.col("flag").cast(pl.Int64)))
    return (mine.filter(pl.col("cut_date") == cut)
            .join(names, on="kri_id", how="left")
            .join(history, on="kri_id", how="left")
            .with_columns(metric_shown=pl.col("metric") * pl.col("metric_scale").fill_null(1.0))
            .select("kri_id", "name", "metric_unit", "numerator", "denominator", "metric", "metric_shown",
                    "score", "flag", "note", "flag_change", "flagged_cuts", "scores", "flags")
            .sort("kri_id"))


def site_findings(analysis: Analysis, site: str, cut: date) -> pl.DataFrame:
    """The site's central-monitoring findings at ``cut``, most significant first, with ``signal``:
    red (q below ``rbqm.signals.CSM_RED``), amber (below ``CSM_ALPHA``) or null (not a signal)."""
    q = pl.col("q_value")
    return (analysis.csm.filter((pl.col("cut_date") == cut) & (pl.col("site_id") == site))
            .with_columns(signal=pl.when(q < CSM_RED).then(pl.lit("red"))
                          .when(q < CSM_ALPHA).then(pl.lit("amber")))
            .sort("p_value", "q_value", "test", "variable", nulls_last=True))


def open_site_signals(work_list: pl.DataFrame, site: str, *,
                      closed: Sequence[str] = ("resolved", "closed_no_action")) -> pl.DataFrame:
    """A site's rows of a signal work list (the latest cut's signals, with a workflow ``status`` when
    known) that are still open: not resolved across cuts, and no workflow status in ``closed``."""
    status = pl.col("status") if "status" in work_list.columns else pl.lit(None, pl.String)
    return work_list.filter((pl.col("site_id") == site) & (pl.col("state") != "resolved")
                            & ~status.is_in(list(closed)).fill_null(False))


def site_actions(actions: pl.DataFrame, site: str) -> pl.DataFrame:
    """The suggested actions (``rbqm.actions.suggest_actions``) for a site, highest priority first."""
    return actions.filter(pl.col("site_id") == site).sort(["priority", "signal_id", "action"],
                                                           descending=[True, False, False])


def subject_listing(counts: pl.DataFrame, subjects: pl.DataFrame, definition: KriDefinition, site: str, *,
                    flag: int | None = None) -> pl.DataFrame:
    """The subjects behind one KRI's numbers at one site: each subject's share of the numerator and
    denominator (``counts``: ``rbqm.kri.compute.subject_counts``), with ``enrolled`` and
    ``days_on_study`` from ``subjects`` (the subjects analysis table) and the subject's own ``metric``
    in the KRI's display unit (numerator / denominator x metric_scale, when the denominator is
    positive).

    The subjects that explain the concern come first: lowest metric first when the site's ``flag`` is
    low, or it is not flagged high and the KRI's concern is low (under-reporting: few AEs for a long
    time on study); else highest first. Ties: larger denominator first, then by subject; subjects
    without a metric last.

    Examples
    --------
    >>> counts = pl.DataFrame({"kri_id": ["k"] * 4, "USUBJID": ["a", "b", "c", "d"],
    ...     "SITEID": ["1", "1", "1", "2"], "numerator": [2.0, 0.0, 1.0, 5.0],
    ...     "denominator": [400.0, 100.0, 50.0, 50.0]})
    >>> subjects = pl.DataFrame({"USUBJID": ["a", "b", "c", "d"], "enrolled": [True] * 4,
    ...                          "days_on_study": [400, 100, 50, 50]})
    >>> from rbqm.kri import load_definitions
    >>> ae_rate = next(d for d in load_definitions() if d.id == "kri0001")  # AEs per 1,000 days, concern low
    >>> subject_listing(counts.with_columns(kri_id=pl.lit("kri0001")), subjects, ae_rate, "1").rows()
    [('b', True, 100, 0.0, 100.0, 0.0), ('a', True, 400, 2.0, 400.0, 5.0), ('c', True, 50, 1.0, 50.0, 20.0)]
    """
    context = subjects.select("USUBJID", "enrolled", "days_on_study")
    denominator = pl.col("denominator")
    lowest_first = (flag or 0) < 0 or ((flag or 0) == 0 and definition.concern == "low")
    return (counts.filter((pl.col("kri_id") == definition.id) & (pl.col("SITEID") == site))
            .join(context, on="USUBJID", how="left")
            .select("USUBJID", "enrolled", "days_on_study", "numerator", "denominator",
                    metric=pl.when(denominator > 0)
                    .then(pl.col("numerator") / denominator * definition.metric_scale))
            .sort(["metric", "numerator", "denominator", "USUBJID"],
                  descending=[not lowest_first, not lowest_first, True, False], nulls_last=True))


_OPERATORS = {"equals": "=", "in_": "in", "not_in": "not in", "gt": ">", "ge": "≥", "lt": "<", "le": "≤"}


def _describe_condition(condition: Condition) -> str:
    if condition.is_null is not None:
        return f"{condition.column} {'empty' if condition.is_null else 'given'}"
    operator = next(k for k in _OPERATORS if getattr(condition, k) is not None)
    value = getattr(condition, operator)
    shown = ", ".join(_text(v) for v in value) if isinstance(value, tuple) else _text(value)
    return f"{condition.column} {_OPERATORS[operator]} {shown}"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_count(count: Count) -> str:
    """A numerator or denominator in words, to label a subject listing's column.

    Examples
    --------
    >>> from rbqm.kri import load_definitions
    >>> ae_rate = next(d for d in load_definitions() if d.id == "kri0001")
    >>> describe_count(ae_rate.numerator), describe_count(ae_rate.denominator)
    ('ae records', 'sum of days_on_study (subjects where enrolled = true)')
    """
    where = f" where {'; '.join(_describe_condition(c) for c in count.where)}" if count.where else ""
    if count.sum:
        return f"sum of {count.sum} ({count.table}{where})"
    return f"{count.table} {count.count}{where}" if count.table != "subjects" else f"subjects{where}"
