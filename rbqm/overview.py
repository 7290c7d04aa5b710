"""The study at a data cut for the overview: enrolment against plan, red and amber sites, QTL status,
and what changed since the previous cut.

Selections and joins of what ``rbqm.analysis`` and ``rbqm.signals`` computed (nothing is scored
again), plus the analysis tables at the cut (``rbqm.site_profile.tables_at_cut``) for enrolment.
The dashboard's Study overview page draws them; the oversight report counts its red and amber sites
per cut with :func:`site_flag_counts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import polars as pl

from rbqm.analysis import Analysis
from rbqm.errors import RbqmError
from rbqm.kri import load_definitions
from rbqm.qtl import QTL_STATUSES, load_qtl_definitions, qtl_trend
from rbqm.signals import SIGNAL_COLUMNS, derive_signals

__all__ = ["CHANGED_SIGNAL_STATES", "NOT_COMPUTED", "SITE_CHANGES", "SITE_STATUSES", "CutOverview",
           "cut_overview", "describe_changes", "enrolment_vs_plan", "previous_cut", "qtl_changes",
           "qtl_status_counts", "qtls_outside_limits", "signal_changes", "site_changes", "site_flag_counts",
           "site_flag_status"]

SITE_STATUSES: dict[str, str] = {
    "red": "at least one red KRI flag",
    "amber": "an amber KRI flag and no red one",
    "none": "no red or amber KRI flag",
}
"""A site's flag status at a cut (the oversight report's red and amber sites), worst first."""

SITE_CHANGES: dict[str, str] = {
    "turned red": "red now, amber or no flag at the previous cut (or not there yet)",
    "turned amber": "amber now, no flag at the previous cut (or not there yet)",
    "eased to amber": "amber now, red at the previous cut",
    "cleared": "no flag now, red or amber at the previous cut",
}
"""How a site's flag status changed since the previous cut, in the order the overview lists them."""

CHANGED_SIGNAL_STATES = ("new", "escalated", "de-escalated", "resolved")
"""Signal states (``rbqm.signals.SIGNAL_STATES``) that are a change since the previous cut."""

NOT_COMPUTED = "not computed"
"""The status counted for a QTL the study lacks the data for (its ``status`` is empty)."""

Level = Literal["site", "country", "study"]
_NAMES_SHOWN = 8
"""At most this many sites or signals are named in one sentence of :func:`describe_changes`."""

_SITE_STATUS_COLUMNS = {"cut_date": pl.Date, "site_id": pl.String, "country": pl.String, "red": pl.Int64,
                        "amber": pl.Int64, "status": pl.String}
_QTL_OUTSIDE_COLUMNS = {"qtl_id": pl.String, "name": pl.String, **dict.fromkeys(
    ("estimate", "lower", "upper", "secondary_limit", "limit", "probability_exceed"), pl.Float64), "status": pl.String}
_SITE_CHANGE_COLUMNS = {"site_id": pl.String, "country": pl.String, "previous_status": pl.String,
                        "status": pl.String, "change": pl.String}
_QTL_CHANGE_COLUMNS = {"qtl_id": pl.String, "name": pl.String, "previous_status": pl.String,
                       "status": pl.String, "change": pl.String}
_SIGNAL_CHANGE_COLUMNS = ("signal_id", "kind", "indicator", "site_id", "label", "severity", "state", "summary")


# --- enrolment ---------------------------------------------------------------------------------------


def _per_site(tables: Mapping[str, pl.LazyFrame | pl.DataFrame]) -> pl.LazyFrame:
    """site_id, country, planned (PLANNEDENR, null without one), screened and enrolled subjects."""
    sites = tables["sites"].lazy()
    planned = (pl.col("PLANNEDENR").cast(pl.Int64) if "PLANNEDENR" in sites.collect_schema().names()
               else pl.lit(None, pl.Int64))
    subjects = tables["subjects"].lazy().group_by("SITEID").agg(
        screened=pl.len().cast(pl.Int64), enrolled=pl.col("enrolled").sum().cast(pl.Int64))
    return (sites.select(site_id=pl.col("SITEID"), country=pl.col("COUNTRY"), planned=planned)
            .join(subjects, left_on="site_id", right_on="SITEID", how="left")
            .with_columns(pl.col("screened", "enrolled").fill_null(0)))


def enrolment_vs_plan(tables: Mapping[str, pl.LazyFrame | pl.DataFrame], *, by: Level = "site") -> pl.DataFrame:
    """Enrolled subjects against the planned enrolment (sites ``PLANNEDENR``), per site, country or study.

    Parameters
    ----------
    tables : mapping of str to polars frames
        The analysis tables at the cut (``rbqm.derive.derive_tables``, e.g.
        ``rbqm.site_profile.tables_at_cut``): ``subjects`` (SITEID, enrolled) and ``sites`` (SITEID,
        COUNTRY and, when the study has a plan, PLANNEDENR).
    by : {"site", "country", "study"}
        One row per site (sorted by site), per country (sorted by country) or for the whole study.

    Returns
    -------
    polars.DataFrame
        ``site_id`` (by site) or ``country`` (by country), then ``screened`` and ``enrolled`` subjects,
        ``planned`` (null: no plan), ``share_of_plan`` (enrolled over planned; null without a plan or
        with a plan of 0) and ``plan_note`` ("no plan", "planned 0", or, for a country or the study,
        "plan for k of n sites"; null when every site has a plan). Countries and the study also have
        ``sites``, ``sites_with_plan`` and ``enrolled_at_planned_sites``: their share of plan counts
        only the sites with a plan, so a site without one never inflates it. A plan is never invented.

    Raises
    ------
    RbqmError
        For an unknown ``by``.

    Examples
    --------
    >>> subjects = pl.DataFrame({"SITEID": ["1", "1", "1", "2", "3"],
    ...                          "enrolled": [True, True, False, True, True]})
    >>> sites = pl.DataFrame({"SITEID": ["1", "2", "3"], "COUNTRY": ["FRA", "FRA", "DEU"],
    ...                       "PLANNEDENR": [4, None, 2]})
    >>> tables = {"subjects": subjects, "sites": sites}
    >>> enrolment_vs_plan(tables).select("site_id", "enrolled", "planned", "share_of_plan", "plan_note").rows()
    [('1', 2, 4, 0.5, None), ('2', 1, None, None, 'no plan'), ('3', 1, 2, 0.5, None)]
    >>> enrolment_vs_plan(tables, by="country").select("country", "enrolled", "planned", "share_of_plan",
    ...                                                "plan_note").rows()
    [('DEU', 1, 2, 0.5, None), ('FRA', 3, 4, 0.5, 'plan for 1 of 2 sites')]
    """
    if by not in ("site", "country", "study"):
        raise RbqmError(f"enrolment_vs_plan: by must be 'site', 'country' or 'study', got {by!r}")
    planned = pl.col("planned")
    per_site = _per_site(tables)
    if by == "site":
        note = pl.when(planned.is_null()).then(pl.lit("no plan")).when(planned == 0).then(pl.lit("planned 0"))
        return (per_site.with_columns(share_of_plan=pl.when(planned > 0).then(pl.col("enrolled") / planned),
                                      plan_note=note)
                .select("site_id", "country", "screened", "enrolled", "planned", "share_of_plan", "plan_note")
                .sort("site_id").collect())
    has_plan = planned.is_not_null()
    totals = {"sites": pl.len().cast(pl.Int64), "sites_with_plan": has_plan.sum().cast(pl.Int64),
              "screened": pl.col("screened").sum(), "enrolled": pl.col("enrolled").sum(),
              "planned": pl.when(has_plan.any()).then(planned.sum()),
              "enrolled_at_planned_sites": pl.col("enrolled").filter(has_plan).sum()}
    grouped = (per_site.group_by("country").agg(**totals).sort("country") if by == "country"
               else per_site.select(**totals))
    with_plan = pl.col("sites_with_plan")
    note = (pl.when(with_plan == 0).then(pl.lit("no plan"))
            .when(planned == 0).then(pl.lit("planned 0"))
            .when(with_plan < pl.col("sites")).then(pl.format("plan for {} of {} sites", with_plan, "sites")))
    return grouped.with_columns(
        share_of_plan=pl.when(planned > 0).then(pl.col("enrolled_at_planned_sites") / planned), plan_note=note,
    ).collect()


# --- red and amber sites -------------------------------------------------------------------------------


def site_flag_status(analysis: Analysis) -> pl.DataFrame:
    """Every site's flag status at every cut, from its red and amber KRI flags (``Analysis.site_risk``).

    Returns
    -------
    polars.DataFrame
        ``cut_date``, ``site_id``, ``country``, ``red`` and ``amber`` (flag counts, 0 when empty) and
        ``status``: a key of :data:`SITE_STATUSES`. Sorted by cut and site.

    Examples
    --------
    >>> risk = pl.DataFrame({"cut_date": [date(2025, 1, 1)] * 3, "site_id": ["1", "2", "3"],
    ...                      "country": ["FRA"] * 3, "red": [1, 0, None], "amber": [2, 1, None]})
    >>> a = Analysis("S", [date(2025, 1, 1)], pl.DataFrame(), pl.DataFrame(), risk, pl.DataFrame(), pl.DataFrame())
    >>> site_flag_status(a)["status"].to_list()
    ['red', 'amber', 'none']
    """
    if analysis.site_risk.is_empty():
        return pl.DataFrame(schema=_SITE_STATUS_COLUMNS)
    red, amber = pl.col("red").fill_null(0).cast(pl.Int64), pl.col("amber").fill_null(0).cast(pl.Int64)
    status = pl.when(red > 0).then(pl.lit("red")).when(amber > 0).then(pl.lit("amber")).otherwise(pl.lit("none"))
    return (analysis.site_risk.lazy()
            .select(pl.col("cut_date").cast(pl.Date), pl.col("site_id").cast(pl.String),
                    pl.col("country").cast(pl.String), red=red, amber=amber)
            .with_columns(status=status).sort("cut_date", "site_id").collect())


def site_flag_counts(analysis: Analysis, *, cut: date | None = None) -> pl.DataFrame:
    """Red sites (a red KRI flag), amber sites (an amber flag and no red) and the others, per cut.

    Parameters
    ----------
    analysis : Analysis
        Its ``site_risk`` (cut_date, site_id, red, amber) and ``cut_dates``.
    cut : date, optional
        Only this cut (one row); default every cut of the analysis, oldest first.

    Returns
    -------
    polars.DataFrame
        ``cut_date``, ``sites`` (sites with results), ``red_sites``, ``amber_sites``, ``no_flag_sites``;
        0 at a cut without any site.

    Raises
    ------
    RbqmError
        When ``cut`` is not one of the analysis' cuts.

    Examples
    --------
    >>> cuts = [date(2025, 1, 1), date(2025, 2, 1)]
    >>> risk = pl.DataFrame({"cut_date": [cuts[1]] * 3, "site_id": ["1", "2", "3"], "country": ["FRA"] * 3,
    ...                      "red": [1, 0, 0], "amber": [2, 1, 0]})
    >>> a = Analysis("S", cuts, pl.DataFrame(), pl.DataFrame(), risk, pl.DataFrame(), pl.DataFrame())
    >>> site_flag_counts(a).rows()
    [(datetime.date(2025, 1, 1), 0, 0, 0, 0), (datetime.date(2025, 2, 1), 3, 1, 1, 1)]
    """
    cuts = analysis.cut_dates if cut is None else [_check_cut(analysis, cut)]
    status = pl.col("status")
    counts = site_flag_status(analysis).group_by("cut_date").agg(
        sites=pl.len().cast(pl.Int64), red_sites=(status == "red").sum().cast(pl.Int64),
        amber_sites=(status == "amber").sum().cast(pl.Int64), no_flag_sites=(status == "none").sum().cast(pl.Int64))
    return (pl.DataFrame({"cut_date": cuts}, schema={"cut_date": pl.Date})
            .join(counts, on="cut_date", how="left", maintain_order="left")
            .with_columns(pl.col("sites", "red_sites", "amber_sites", "no_flag_sites").fill_null(0)))


def _check_cut(analysis: Analysis, cut: date) -> date:
    if cut not in analysis.cut_dates:
        raise RbqmError(f"{analysis.study_id} has no data cut {cut.isoformat()}; its cuts are "
                        f"{', '.join(d.isoformat() for d in analysis.cut_dates) or '(none)'}")
    return cut


def previous_cut(analysis: Analysis, cut: date) -> date | None:
    """The analysis' cut before ``cut`` (None at its first cut).

    Raises
    ------
    RbqmError
        When ``cut`` is not one of the analysis' cuts.

    Examples
    --------
    >>> cuts = [date(2025, 2, 1), date(2025, 1, 1)]
    >>> a = Analysis("S", cuts, *[pl.DataFrame()] * 5)
    >>> previous_cut(a, date(2025, 2, 1)), previous_cut(a, date(2025, 1, 1))
    (datetime.date(2025, 1, 1), None)
    """
    earlier = [d for d in analysis.cut_dates if d < _check_cut(analysis, cut)]
    return max(earlier) if earlier else None


def site_changes(analysis: Analysis, cut: date) -> pl.DataFrame:
    """The sites whose flag status (:func:`site_flag_status`) changed between the previous cut and ``cut``.

    Returns
    -------
    polars.DataFrame
        ``site_id``, ``country``, ``previous_status`` (null: the site had no results then), ``status`` and
        ``change`` (a key of :data:`SITE_CHANGES`), in that order of changes, then by site. Empty at the
        first cut (see :func:`previous_cut`).

    Raises
    ------
    RbqmError
        When ``cut`` is not one of the analysis' cuts.

    Examples
    --------
    >>> cuts = [date(2025, 1, 1), date(2025, 2, 1)]
    >>> risk = pl.DataFrame({"cut_date": [cuts[0]] * 3 + [cuts[1]] * 4, "site_id": ["1", "2", "3", "1", "2", "3", "4"],
    ...     "country": ["FRA"] * 7, "red": [0, 1, 0, 1, 0, 0, 0], "amber": [1, 0, 1, 0, 1, 1, 1]})
    >>> a = Analysis("S", cuts, pl.DataFrame(), pl.DataFrame(), risk, pl.DataFrame(), pl.DataFrame())
    >>> site_changes(a, cuts[1]).select("site_id", "previous_status", "status", "change").rows()
    [('1', 'amber', 'red', 'turned red'), ('4', None, 'amber', 'turned amber'), ('2', 'red', 'amber', 'eased to amber')]
    """
    before = previous_cut(analysis, cut)
    if before is None:
        return pl.DataFrame(schema=_SITE_CHANGE_COLUMNS)
    status = site_flag_status(analysis)
    now = status.filter(pl.col("cut_date") == cut).select("site_id", "country", "status")
    then = status.filter(pl.col("cut_date") == before).select("site_id", previous_status="status")
    was, now_is = pl.col("previous_status"), pl.col("status")
    change = (pl.when((now_is == "red") & (was.is_null() | (was != "red"))).then(pl.lit("turned red"))
              .when((now_is == "amber") & (was.is_null() | (was == "none"))).then(pl.lit("turned amber"))
              .when((now_is == "amber") & (was == "red")).then(pl.lit("eased to amber"))
              .when((now_is == "none") & was.is_in(["red", "amber"])).then(pl.lit("cleared")))
    order = pl.col("change").replace_strict({c: i for i, c in enumerate(SITE_CHANGES)}, return_dtype=pl.Int64)
    return (now.join(then, on="site_id", how="left").with_columns(change=change)
            .filter(pl.col("change").is_not_null())
            .sort(order, pl.col("site_id"))
            .select(list(_SITE_CHANGE_COLUMNS)))


# --- QTLs ----------------------------------------------------------------------------------------------


def _qtl_names(kri_dir: Path | None) -> dict[str, str]:
    return {d.id: d.name for d in load_qtl_definitions(kri_dir)}


def _named(names: Mapping[str, str]) -> pl.Expr:
    return pl.col("qtl_id").replace_strict(dict(names), default=pl.col("qtl_id"), return_dtype=pl.String).alias("name")


def qtl_status_counts(analysis: Analysis, cut: date) -> pl.DataFrame:
    """How many QTLs have each status at ``cut``.

    Returns
    -------
    polars.DataFrame
        ``status`` (``rbqm.qtl.QTL_STATUSES``, best first, then :data:`NOT_COMPUTED` for a QTL the study
        lacks the data for) and ``qtls``; every status has a row (0 when none has it).

    Raises
    ------
    RbqmError
        When ``cut`` is not one of the analysis' cuts.

    Examples
    --------
    >>> qtl = pl.DataFrame({"cut_date": [date(2025, 1, 1)] * 3, "qtl_id": ["q1", "q2", "q3"],
    ...                     "status": ["within limits", "tolerance limit breached", None]})
    >>> a = Analysis("S", [date(2025, 1, 1)], pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), qtl, pl.DataFrame())
    >>> qtl_status_counts(a, date(2025, 1, 1)).rows()
    [('within limits', 1), ('secondary limit crossed', 0), ('tolerance limit breached', 1), ('not computed', 1)]
    """
    _check_cut(analysis, cut)
    statuses = [*QTL_STATUSES, NOT_COMPUTED]
    if analysis.qtl.is_empty():
        return pl.DataFrame({"status": statuses, "qtls": [0] * len(statuses)},
                            schema={"status": pl.String, "qtls": pl.Int64})
    at_cut = analysis.qtl.lazy().filter(pl.col("cut_date") == cut)
    counts = (at_cut.select(status=pl.col("status").cast(pl.String).fill_null(NOT_COMPUTED))
              .group_by("status").agg(qtls=pl.len().cast(pl.Int64)))
    return (pl.LazyFrame({"status": statuses}).join(counts, on="status", how="left", maintain_order="left")
            .with_columns(pl.col("qtls").fill_null(0)).collect())


def qtls_outside_limits(analysis: Analysis, cut: date, *, names: Mapping[str, str] | None = None) -> pl.DataFrame:
    """The QTLs whose secondary limit is crossed or tolerance limit breached at ``cut``, worst first.

    Parameters
    ----------
    analysis : Analysis
        Its ``qtl`` (judged against the limits it was computed with, e.g. the study's own).
    cut : date
        One of its cuts.
    names : mapping of str to str, optional
        QTL id -> name (default: the shipped QTL library's names).

    Returns
    -------
    polars.DataFrame
        ``qtl_id``, ``name``, ``estimate``, ``lower``, ``upper``, ``secondary_limit``, ``limit``,
        ``probability_exceed`` and ``status``; breached before crossed, then by QTL.

    Raises
    ------
    RbqmError
        When ``cut`` is not one of the analysis' cuts.

    Examples
    --------
    >>> qtl = pl.DataFrame({"cut_date": [date(2025, 1, 1)] * 3, "qtl_id": ["q1", "q2", "q3"],
    ...     "estimate": [0.1, 0.2, 0.3], "lower": 0.0, "upper": 0.5, "secondary_limit": 0.15, "limit": 0.25,
    ...     "probability_exceed": [0.01, 0.3, 0.7],
    ...     "status": ["within limits", "secondary limit crossed", "tolerance limit breached"]})
    >>> a = Analysis("S", [date(2025, 1, 1)], pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), qtl, pl.DataFrame())
    >>> qtls_outside_limits(a, date(2025, 1, 1), names={"q3": "Deaths"}).select("qtl_id", "name", "status").rows()
    [('q3', 'Deaths', 'tolerance limit breached'), ('q2', 'q2', 'secondary limit crossed')]
    """
    _check_cut(analysis, cut)
    if analysis.qtl.is_empty():
        return pl.DataFrame(schema=_QTL_OUTSIDE_COLUMNS)
    names = _qtl_names(None) if names is None else names
    worse = pl.col("status").replace_strict({s: i for i, s in enumerate(QTL_STATUSES)}, default=None,
                                            return_dtype=pl.Int64)
    return (analysis.qtl.lazy().filter(pl.col("cut_date") == cut, worse > 0)
            .sort(worse, pl.col("qtl_id"), descending=[True, False])
            .select("qtl_id", _named(names), "estimate", "lower", "upper", "secondary_limit", "limit",
                    "probability_exceed", "status")
            .collect())


def qtl_changes(analysis: Analysis, cut: date, *, names: Mapping[str, str] | None = None) -> pl.DataFrame:
    """The QTLs whose status got worse or better between the previous cut and ``cut`` (``rbqm.qtl.qtl_trend``).

    Returns
    -------
    polars.DataFrame
        ``qtl_id``, ``name``, ``previous_status``, ``status`` and ``change`` ("worse" or "better"); worse
        first, then by QTL. Empty at the first cut. A QTL computed at only one of the two cuts is not a
        change of status.

    Raises
    ------
    RbqmError
        When ``cut`` is not one of the analysis' cuts.

    Examples
    --------
    >>> cuts = [date(2025, 1, 1), date(2025, 2, 1)]
    >>> qtl = pl.DataFrame({"study_id": "S", "cut_date": cuts * 2, "qtl_id": ["q1", "q1", "q2", "q2"],
    ...     "estimate": [0.1, 0.2, 0.3, 0.3],
    ...     "status": ["within limits", "secondary limit crossed", "within limits", "within limits"]})
    >>> a = Analysis("S", cuts, pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), qtl, pl.DataFrame())
    >>> qtl_changes(a, cuts[1], names={}).select("qtl_id", "previous_status", "status", "change").rows()
    [('q1', 'within limits', 'secondary limit crossed', 'worse')]
    """
    if previous_cut(analysis, cut) is None or analysis.qtl.is_empty():
        return pl.DataFrame(schema=_QTL_CHANGE_COLUMNS)
    names = _qtl_names(None) if names is None else names
    # every cut's QTLs up to this one: qtl_trend compares each with the cut before it
    trend = qtl_trend(analysis.qtl.filter(pl.col("cut_date") <= cut))
    return (trend.filter(pl.col("cut_date") == cut, pl.col("change").is_in(["worse", "better"]))
            .sort(pl.col("change") == "better", pl.col("qtl_id"))
            .select("qtl_id", _named(names), "previous_status", "status", "change"))


# --- signals -------------------------------------------------------------------------------------------


def _indicator_names(kri_dir: Path | None) -> dict[str, str]:
    """KRI and QTL id -> name, from the library."""
    return {d.id: d.name for d in load_definitions(kri_dir)} | _qtl_names(kri_dir)


def signal_changes(signals: pl.DataFrame, cut: date, *, first_cut: bool = False,
                   names: Mapping[str, str] | None = None) -> pl.DataFrame:
    """The signals that changed at ``cut``: new, escalated, de-escalated or resolved (``rbqm.signals``).

    Parameters
    ----------
    signals : polars.DataFrame
        ``rbqm.signals.derive_signals`` of the analysis.
    cut : date
        The data cut.
    first_cut : bool
        ``cut`` is the study's first cut: nothing changed since a previous one (every signal there is "new"
        only because nothing came before), so the result is empty.
    names : mapping of str to str, optional
        Indicator id -> name for ``label`` (default: the shipped KRI and QTL libraries' names; a CSM
        finding is named by its test and variable).

    Returns
    -------
    polars.DataFrame
        ``signal_id``, ``kind``, ``indicator``, ``site_id``, ``label`` (the indicator's name and where:
        "Ineligible subjects at site 1005"), ``severity``, ``state`` and ``summary``; in the order of
        :data:`CHANGED_SIGNAL_STATES`, red before amber, then by signal.

    Examples
    --------
    >>> rows = [("kri0001@1", "kri", "kri0001", "1", "red", "escalated"),
    ...         ("kri0002@1", "kri", "kri0002", "1", "amber", "persisting"),
    ...         ("qtl0003@study", "qtl", "qtl0003", "study", "amber", "new")]
    >>> signals = pl.DataFrame([{"signal_id": s, "cut_date": date(2025, 2, 1), "kind": k, "indicator": i,
    ...     "site_id": site, "severity": sev, "state": state} for s, k, i, site, sev, state in rows]
    ...     ).with_columns(summary=pl.lit("..."))
    >>> signal_changes(signals, date(2025, 2, 1), names={"kri0001": "AE rate"}).select("label", "state").rows()
    [('qtl0003 at study level', 'new'), ('AE rate at site 1', 'escalated')]
    """
    if first_cut:
        schema = {c: SIGNAL_COLUMNS.get(c, pl.String()) for c in _SIGNAL_CHANGE_COLUMNS}
        return pl.DataFrame(schema=schema)
    names = _indicator_names(None) if names is None else names
    order = pl.col("state").replace_strict({s: i for i, s in enumerate(CHANGED_SIGNAL_STATES)}, default=None,
                                           return_dtype=pl.Int64)
    csm_name = pl.col("indicator").str.replace_all("_", " ", literal=True).str.replace(":", " on ", literal=True)
    name = (pl.when(pl.col("kind") == "csm").then(csm_name)
            .otherwise(pl.col("indicator").replace_strict(dict(names), default=pl.col("indicator"),
                                                          return_dtype=pl.String)))
    label = (pl.when(pl.col("site_id") == "study").then(pl.format("{} at study level", name))
             .otherwise(pl.format("{} at site {}", name, "site_id")))
    return (signals.lazy().filter(pl.col("cut_date") == cut, pl.col("state").is_in(CHANGED_SIGNAL_STATES))
            .with_columns(label=label)
            .sort(order, pl.col("severity") != "red", pl.col("signal_id"))
            .select(_SIGNAL_CHANGE_COLUMNS).collect())


# --- the overview at a cut -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CutOverview:
    """The study's risk at one data cut and what changed since the cut before it."""

    cut_date: date
    previous_cut: date | None
    """The cut before (None: ``cut_date`` is the study's first cut, so nothing can have changed)."""
    site_counts: pl.DataFrame
    """:func:`site_flag_counts` at every cut up to this one, oldest first (the last row is this cut's, the one
    before it the previous cut's)."""
    qtl_counts: pl.DataFrame
    """:func:`qtl_status_counts`."""
    qtls_outside_limits: pl.DataFrame
    """:func:`qtls_outside_limits`."""
    site_changes: pl.DataFrame
    """:func:`site_changes`."""
    qtl_changes: pl.DataFrame
    """:func:`qtl_changes`."""
    signal_changes: pl.DataFrame
    """:func:`signal_changes`."""

    @property
    def changes(self) -> list[str]:
        """What changed since the previous cut, in words (:func:`describe_changes`)."""
        return describe_changes(self)


def cut_overview(analysis: Analysis, cut: date, *, signals: pl.DataFrame | None = None,
                 kri_dir: Path | None = None) -> CutOverview:
    """Red and amber sites, QTL status and what changed since the previous cut, at one cut of ``analysis``.

    Parameters
    ----------
    analysis : Analysis
        From ``rbqm.analysis.analyze_study`` (with the study's own QTL limits, when it has them).
    cut : date
        One of its cuts; later cuts are ignored.
    signals : polars.DataFrame, optional
        ``rbqm.signals.derive_signals(analysis)``, when the caller has it already (else derived here).
    kri_dir : Path, optional
        The QTL library, for the QTLs' names (default: the shipped one).

    Raises
    ------
    RbqmError
        When ``cut`` is not one of the analysis' cuts.
    """
    before = previous_cut(analysis, cut)
    names = _indicator_names(kri_dir)
    counts = site_flag_counts(analysis).filter(pl.col("cut_date") <= cut)
    changed_signals = (signal_changes(signals if signals is not None else derive_signals(analysis, kri_dir=kri_dir),
                                      cut, first_cut=before is None, names=names))
    return CutOverview(
        cut_date=cut, previous_cut=before, site_counts=counts, qtl_counts=qtl_status_counts(analysis, cut),
        qtls_outside_limits=qtls_outside_limits(analysis, cut, names=names), site_changes=site_changes(analysis, cut),
        qtl_changes=qtl_changes(analysis, cut, names=names), signal_changes=changed_signals,
    )


def _counted(frame: pl.DataFrame, item: pl.Expr, *, by: str, noun: str, words: pl.Expr) -> pl.Series:
    """One sentence per value of ``by`` (in order of first appearance): "{n} {words}: {items}." naming the
    first few ``item`` texts; ``words`` may use ``n`` and ``noun`` (plural when n > 1)."""
    n = pl.len().cast(pl.Int64)
    more = n - _NAMES_SHOWN
    items = (pl.col("_item").head(_NAMES_SHOWN).str.join(", ")
             + pl.when(more > 0).then(pl.format(" and {} more", more)).otherwise(pl.lit("")))
    return (frame.with_columns(_item=item).group_by(by, maintain_order=True)
            .agg(n=n, items=items, noun=pl.when(n == 1).then(pl.lit(noun)).otherwise(pl.lit(noun + "s")))
            .select(pl.format("{} {}: {}.", "n", words, "items").alias("line"))["line"])


def describe_changes(overview: CutOverview) -> list[str]:
    """What changed since the previous cut, as a few sentences: sites that turned red or amber, eased or
    cleared; QTLs whose status got worse or better; new, escalated, de-escalated and resolved signals.

    Examples
    --------
    >>> empty = pl.DataFrame()
    >>> first = CutOverview(date(2025, 1, 1), None, empty, empty, empty, empty, empty, empty)
    >>> describe_changes(first)
    ["2025-01-01 is the study's first data cut: there is no previous cut to compare it with."]
    """
    if overview.previous_cut is None:
        return [f"{overview.cut_date} is the study's first data cut: there is no previous cut to compare it with."]
    sites = _counted(overview.site_changes, pl.format("{} ({})", "site_id", pl.col("country").fill_null("?")),
                     by="change", noun="site", words=pl.format("{} {}", "noun", "change"))
    named = pl.when(pl.col("name") == pl.col("qtl_id")).then(pl.lit("")).otherwise(pl.format(" {}", "name"))
    qtls = overview.qtl_changes.select(pl.format("{}{} got {}: {} → {}.", "qtl_id", named, "change",
                                                 "previous_status", "status").alias("line"))["line"]
    signals = _counted(overview.signal_changes, pl.format("{} ({})", "label", "severity"),
                       by="state", noun="signal", words=pl.format("{} {}", "state", "noun"))
    lines = pl.concat([sites, qtls, signals]).to_list()
    nothing = (f"Nothing changed since {overview.previous_cut}: the same sites are red and amber, every QTL has the "
               "same status, and no signal is new, escalated, de-escalated or resolved.")
    return lines or [nothing]
