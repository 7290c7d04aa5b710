"""Cached loaders for the dashboard pages: every call into rbqm goes through here.

Pages import these as ``from data import ...`` because Streamlit puts the folder of
``app.py`` on ``sys.path``. Small results are cached with ``st.cache_data`` (pickled, so each
caller gets its own copy); the analysis and the large frames derived from it with
``st.cache_resource`` (shared, never changed in place by a page). The data directory is an
argument, so it is part of the cache key and a changed ``RBQM_DATA_DIR`` never returns another
folder's studies. :func:`clear_caches` empties both after an ingest.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import streamlit as st

from rbqm.actions import plan_visits, suggest_actions
from rbqm.analysis import Analysis
from rbqm.derive import derive_tables
from rbqm.errors import RbqmError
from rbqm.io import find_tables, scan_study
from rbqm.kri import KriDefinition, load_definitions
from rbqm.kri.compute import subject_counts
from rbqm.qtl import QtlDefinition, load_qtl_definitions, study_qtls, with_limits
from rbqm.qtl.oe_cuts import observed_minus_expected_by_cut
from rbqm.saved_analysis import saved_analysis
from rbqm.regions import study_site_regions, with_regions
from rbqm.overview import CutOverview, cut_overview, enrolment_vs_plan
from rbqm.signals import derive_signals, indicator_levels
from rbqm.site_profile import tables_at_cut
from rbqm.sources import extract_study_zip, fingerprint
from rbqm.store.audit import canonical_json, list_records
from rbqm.store.qtl import stored_limits
from rbqm.store.actions import ActionInfo
from rbqm.store.signals import SignalInfo
from rbqm.study import StudySummary, cut_folder, list_cuts, summarize_study
from rbqm.validate import scan_validated

from auth import store  # dashboard/auth.py: the store holds each study's own QTL limits

__all__ = ["data_dir", "list_studies", "list_cut_dates", "load_summary", "choose_study", "choose_cut",
           "load_analysis", "load_kri_definitions", "load_qtl_names", "site_heatmap", "kri_results",
           "kri_bounds", "qtl_table", "csm_findings", "QTL_STATUS_SHOWN", "load_signals", "load_actions",
           "load_visit_plan", "signal_work_list", "action_list", "CLOSED_STATUSES", "qtl_limits_key", "qtl_definitions",
           "qtl_oe_chart", "audit_trail", "filter_audit", "AUDIT_COLUMNS", "kri_library", "load_site_regions",
           "load_subject_counts", "unpack_upload",
           "validate_source", "UPLOADS", "load_enrolment", "load_cut_overview"]

_RELOAD_SECONDS = 60
"""How long a folder listing is reused before new studies or cuts show up."""


def data_dir() -> Path:
    """The folder that holds the studies: ``$RBQM_DATA_DIR``, else ``data`` (relative to the cwd)."""
    return Path(os.environ.get("RBQM_DATA_DIR") or "data")


@st.cache_data(ttl=_RELOAD_SECONDS, show_spinner=False)
def list_studies(root: str) -> list[str]:
    """The study folders directly under ``root`` (sub-folders with a dm table), sorted by name.

    A folder whose tables cannot even be listed (for example ``dm.csv`` beside
    ``dm.parquet``) is kept, so that choosing it shows rbqm's message instead of
    the study silently missing. A missing ``root`` has no studies.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    studies = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        try:
            is_study = "dm" in find_tables(folder) or bool(list_cuts(folder))  # a folder, or ingested snapshots
        except RbqmError:
            is_study = True
        if is_study:
            studies.append(str(folder))
    return studies


@st.cache_data(ttl=_RELOAD_SECONDS, show_spinner=False)
def list_cut_dates(folder: str) -> list[str]:
    """The data cuts of a study (``cuts/YYYY-MM-DD`` folder names), newest first."""
    return [cut.name for cut in reversed(list_cuts(Path(folder)))]


@st.cache_data(show_spinner="Reading the study…")
def load_summary(folder: str, cut: str | None) -> StudySummary:
    """The summary of a study folder, or of one of its data cuts when ``cut`` is a cut date.

    Raises
    ------
    RbqmError
        When the study cannot be read, or ``cut`` is not one of its data cuts.
    """
    return summarize_study(cut_folder(Path(folder), cut))


@st.cache_data(show_spinner="Counting enrolment against plan…")
def load_enrolment(folder: str, cut: str | None) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Enrolment versus plan (``rbqm.overview.enrolment_vs_plan``) per site, per country and for the study,
    of the tables :func:`load_summary` reads (the cut's folder at the cut; the study folder at its latest
    date).

    Raises
    ------
    RbqmError
        When the study cannot be read, or ``cut`` is not one of its data cuts.
    """
    path = cut_folder(Path(folder), cut)
    tables = derive_tables(scan_study(path), as_of=date.fromisoformat(cut) if cut else None)
    site, country, study = (enrolment_vs_plan(tables, by=by) for by in ("site", "country", "study"))
    return site, country, study


def load_cut_overview(folder: str, cut: date) -> CutOverview:
    """Red and amber sites, QTL status and what changed since the previous cut, at one cut of
    :func:`load_analysis` (``rbqm.overview.cut_overview``, with :func:`load_signals`' signals).

    Raises
    ------
    RbqmError
        When ``cut`` is not one of the analysis' cuts.
    """
    return _cut_overview(folder, qtl_limits_key(folder), cut)


@st.cache_data(show_spinner=False)
def _cut_overview(folder: str, limits: str, cut: date) -> CutOverview:
    return cut_overview(_analysis_with_limits(folder, limits), cut, signals=_signals(folder, limits))


# --- Shared widgets --------------------------------------------------------------------------

NO_STUDY_MESSAGE = (
    "No study found in `{root}`. Run `make run` to generate the demo study and start the "
    "dashboard, or `rbqm synth data/demo` to generate it, then reload this page."
)


def choose_study() -> str:
    """Render the study selectbox (``key="study"``, shared by every page) and return the chosen folder.

    With no study under :func:`data_dir` it shows what to run and stops the page.
    """
    root = data_dir()
    studies = list_studies(str(root))
    if not studies:
        st.info(NO_STUDY_MESSAGE.format(root=root))
        st.stop()
    # Streamlit forgets a widget's state on pages that do not draw it; writing the value back keeps
    # the chosen study when the user moves to another page (each page draws its own selectbox).
    if st.session_state.get("study") in studies:
        st.session_state["study"] = st.session_state["study"]
    else:
        st.session_state.pop("study", None)
    return st.selectbox("Study", studies, format_func=lambda folder: Path(folder).name, key="study")


def choose_cut(analysis: Analysis, *, key: str) -> date:
    """Render a selectbox of the analysis' data cuts, newest first (the default), and return the chosen one."""
    return st.selectbox(
        "Data cut",
        sorted(analysis.cut_dates, reverse=True),
        key=key,
        help="The study as it was on that date (a `cuts/YYYY-MM-DD` folder); the newest is the default.",
    )


# --- Analysis ---------------------------------------------------------------------------------


def load_analysis(folder: str) -> Analysis:
    """KRIs, funnel bounds, site risk, QTLs and central monitoring of every data cut of a study, its QTLs
    judged against the study's own limits in the store (as ``rbqm analyze --db`` does).

    The analysis with the library's limits is cached once per study; the QTLs with the stored limits are
    cached per set of limits (:func:`qtl_limits_key`), so a changed limit shows at the next run
    without recomputing the KRIs or central monitoring.

    Raises
    ------
    RbqmError
        When the study cannot be read or analysed, or the store cannot be read.
    """
    return _analysis_with_limits(folder, qtl_limits_key(folder))


def clear_caches() -> None:
    """Forget every cached study list, analysis and derived frame (after an ingest adds a cut). The
    store, a resource of ``auth.py``, stays open."""
    st.cache_data.clear()
    for cached in (_library_analysis, _study_qtls, load_subject_counts, _signals, _actions, _visit_plan,
                   _indicator_levels):
        cached.clear()


NO_LIMITS = "{}"
"""The :func:`qtl_limits_key` of a study without limits of its own (the library's apply)."""


# The analysis and what is derived from it are cached as resources: shared, not copied. cache_data would
# unpickle every frame at every call, 0.1-0.5 s per page run at 1,000 sites (bench/dashboard.py); polars
# frames are not changed in place by the pages, so sharing them is safe.
@st.cache_resource(show_spinner="Computing KRIs, QTLs and central monitoring…")
def _library_analysis(folder: str) -> Analysis:
    # saved under the data directory, so a restarted app or another session reads it back
    return saved_analysis(Path(folder), data_dir() / ".analysis", permutations=dashboard_permutations())


def dashboard_permutations() -> int | str:
    """Permutations behind the data inconsistency score: ``$RBQM_PERMUTATIONS``, else "auto" (as
    ``rbqm analyze``); 0 leaves the score out."""
    value = os.environ.get("RBQM_PERMUTATIONS", "auto").strip()
    if value != "auto" and not value.isdigit():
        raise RbqmError(f"RBQM_PERMUTATIONS must be 'auto' or a whole number, 0 or more; got {value!r}")
    return value if value == "auto" else int(value)


@st.cache_data(show_spinner=False)
def _study_id(folder: str) -> str:
    return _library_analysis(folder).study_id


@st.cache_resource(show_spinner="Judging the QTLs against the study's limits…")
def _study_qtls(folder: str, limits: str) -> pl.DataFrame:
    return study_qtls(Path(folder), limits=json.loads(limits))


def _analysis_with_limits(folder: str, limits: str) -> Analysis:
    analysis = _library_analysis(folder)
    return analysis if limits == NO_LIMITS else replace(analysis, qtl=_study_qtls(folder, limits))


def qtl_limits_key(folder: str) -> str:
    """The study's own QTL limits in the store (``rbqm.store.qtl.stored_limits``) as canonical JSON: part
    of the cache key of everything computed from the QTLs. Read at every call (one small query), so a
    limit changed on the QTL page or with ``rbqm qtl set-limit`` shows at the next run."""
    return json.dumps(stored_limits(store(), _study_id(folder)), sort_keys=True)


@st.cache_data(show_spinner=False)
def _qtl_library() -> list[QtlDefinition]:
    return load_qtl_definitions()


def qtl_definitions(folder: str) -> list[QtlDefinition]:
    """The QTL library with the study's own limits applied (what its QTLs are judged against)."""
    return with_limits(_qtl_library(), json.loads(qtl_limits_key(folder)))


def qtl_oe_chart(analysis: Analysis, definitions: list[QtlDefinition], qtl_id: str) -> pl.DataFrame:
    """One QTL's observed-minus-expected chart over the data cuts (``rbqm.qtl.oe_cuts``)."""
    return observed_minus_expected_by_cut(analysis.qtl.filter(pl.col("qtl_id") == qtl_id), definitions)


@st.cache_data(show_spinner=False)
def load_kri_definitions() -> pl.DataFrame:
    """The shipped KRI library, one row per KRI, with thresholds and minimum as text."""
    return pl.DataFrame(
        [
            {
                "id": d.id, "name": d.name, "description": d.description, "metric_unit": d.metric_unit,
                "metric_scale": d.metric_scale, "concern": d.concern,
                "thresholds": ", ".join(f"{t:g}" for t in d.thresholds),
                "minimum": f"{d.minimum.applies_to} ≥ {d.minimum.count:g}",
            }
            for d in load_definitions()
        ],
        schema={"id": pl.String, "name": pl.String, "description": pl.String, "metric_unit": pl.String,
                "metric_scale": pl.Float64, "concern": pl.String, "thresholds": pl.String, "minimum": pl.String},
    )


@st.cache_data(show_spinner=False)
def load_qtl_names() -> dict[str, str]:
    """The shipped QTL library as id -> name."""
    return {d.id: d.name for d in load_qtl_definitions()}


# --- Small polars selections for the pages (cheap, so not cached) ------------------------------


def site_heatmap(analysis: Analysis, cut: date, risk: pl.DataFrame) -> pl.DataFrame:
    """The site-level KRI results of one cut for the sites of ``risk`` (``rbqm.site_profile.risk_table``):
    one row per site and KRI with the KRI's name and the metric in its display unit (metric x metric_scale)."""
    return (
        analysis.results.filter((pl.col("cut_date") == cut) & (pl.col("level") == "site"))
        .join(risk.select(pl.col("site_id").alias("group_id")), on="group_id")
        .join(_kri_names(), left_on="kri_id", right_on="id", how="left")
        .with_columns(metric_shown=pl.col("metric") * pl.col("metric_scale").fill_null(1.0))
        .sort("group_id", "kri_id")
    )


def kri_results(analysis: Analysis, kri_id: str, level: str) -> pl.DataFrame:
    """Every cut's results of one KRI at one level, with the metric in its display unit."""
    scale = _kri_scale(kri_id)
    return (
        analysis.results.filter((pl.col("kri_id") == kri_id) & (pl.col("level") == level))
        .with_columns(metric_shown=pl.col("metric") * scale)
        .sort("cut_date", "group_id")
    )


def kri_bounds(analysis: Analysis, kri_id: str, level: str, cut: date) -> pl.DataFrame:
    """The funnel bounds of one KRI at one level and cut (metric in display unit), by threshold and denominator."""
    if analysis.bounds.is_empty():
        return pl.DataFrame(schema={"threshold": pl.Float64, "denominator": pl.Float64, "metric_shown": pl.Float64})
    return (
        analysis.bounds.filter(
            (pl.col("kri_id") == kri_id) & (pl.col("level") == level) & (pl.col("cut_date") == cut)
            & (pl.col("denominator") > 0)
        )
        .with_columns(metric_shown=pl.col("metric") * _kri_scale(kri_id))
        .sort("threshold", "denominator")
    )


def qtl_table(analysis: Analysis, cut: date) -> pl.DataFrame:
    """The QTLs of one cut with their names and the status as symbol + text."""
    names = load_qtl_names()
    return (
        analysis.qtl.filter(pl.col("cut_date") == cut)
        .with_columns(
            name=pl.col("qtl_id").replace_strict(names, default=pl.col("qtl_id")),
            status_shown=pl.col("status").replace_strict(QTL_STATUS_SHOWN, default=pl.col("status")),
        )
        .sort("qtl_id")
    )


QTL_STATUS_SHOWN = {
    "within limits": "● within limits",
    "secondary limit crossed": "▲ secondary limit crossed",
    "tolerance limit breached": "▲▲ tolerance limit breached",
}
"""QTL status as a mark and words; the page also colours it, so colour is never the only cue."""


def csm_findings(analysis: Analysis, cut: date, test: str | None) -> pl.DataFrame:
    """The central-monitoring findings of one cut, of one test (all when None), by p-value."""
    findings = analysis.csm.filter(pl.col("cut_date") == cut)
    if test is not None:
        findings = findings.filter(pl.col("test") == test)
    return findings.sort("p_value", "q_value", "site_id", nulls_last=True)


def _kri_names() -> pl.DataFrame:
    return load_kri_definitions().select("id", "name", "metric_unit", "metric_scale")


def _kri_scale(kri_id: str) -> float:
    scales = load_kri_definitions().filter(pl.col("id") == kri_id)["metric_scale"]
    return float(scales[0]) if scales.len() else 1.0


# --- Site profile, regions and the Data page -----------------------------------------------------


@st.cache_data(show_spinner=False)
def kri_library() -> list[KriDefinition]:
    """The shipped KRI library as definitions (what ``load_analysis`` computed)."""
    return load_definitions()


@st.cache_data(show_spinner=False)
def load_site_regions(folder: str, _analysis: Analysis) -> pl.DataFrame:
    """Each site's region (``site_id``, ``region``): the study's own (sites.REGION), else its country's
    (``rbqm.regions``). ``_analysis`` is ``load_analysis(folder)``, for the list of sites."""
    sites = _analysis.site_risk.select("site_id", "country").unique("site_id")
    return with_regions(sites, site_regions=study_site_regions(Path(folder))).select("site_id", "region")


@st.cache_resource(show_spinner="Reading the subjects behind the KRIs…")  # shared: 100,000s of rows
def load_subject_counts(folder: str, cut: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A study's subjects analysis table at a cut, and every KRI's numerator and denominator per subject
    (``rbqm.kri.compute.subject_counts``), for the site profile's listings."""
    tables = tables_at_cut(Path(folder), cut)
    # kri_id and SITEID as categoricals: the page selects one KRI at one site many times per run, and
    # comparing categories is ten times faster than comparing strings over 100,000s of rows
    counts = subject_counts(tables, kri_library()).with_columns(pl.col("kri_id", "SITEID").cast(pl.Categorical))
    return tables["subjects"].collect(), counts


UPLOADS = ".uploads"
"""The folder of the data directory where uploaded study zips are unpacked (one sub-folder per content
hash, the 8 most recently used kept; it may be deleted at any time)."""


@st.cache_data(show_spinner="Unpacking the zip…", max_entries=8)
def unpack_upload(root: str, file_id: str, _data: bytes, name: str) -> str:
    """The study folder of a zip uploaded as ``file_id`` (``rbqm.sources.extract_study_zip``), unpacked
    once per upload into :data:`UPLOADS` of the data directory ``root``."""
    return str(extract_study_zip(_data, Path(root) / UPLOADS, name=name))


def validate_source(folder: str, cut: date | None) -> tuple[pl.DataFrame, date | None]:
    """The validation report of a study folder at a cut (``rbqm.validate``; None: the latest date in the
    data) as its issues, and the latest date found; cached until a file of the folder changes."""
    return _validated(folder, cut, fingerprint(Path(folder)))


@st.cache_data(show_spinner="Validating every table…", max_entries=16)
def _validated(folder: str, cut: date | None, _fingerprint: str) -> tuple[pl.DataFrame, date | None]:
    report, _, latest = scan_validated(Path(folder), as_of=cut)
    return report.issues, latest


# --- Signals and actions ------------------------------------------------------------------------


def load_signals(folder: str) -> pl.DataFrame:
    """Every signal of a study at every cut (``rbqm.signals.derive_signals`` of :func:`load_analysis`)."""
    return _signals(folder, qtl_limits_key(folder))


def load_actions(folder: str) -> pl.DataFrame:
    """The suggested actions for the signals open at the latest cut (``rbqm.actions.suggest_actions``)."""
    return _actions(folder, qtl_limits_key(folder))


def load_visit_plan(folder: str) -> pl.DataFrame:
    """Sites ranked for the next visit or remote review (``rbqm.actions.plan_visits``)."""
    return _visit_plan(folder, qtl_limits_key(folder))


# Cached per study and QTL limits (``limits`` is :func:`qtl_limits_key`): a changed limit changes the signals.
@st.cache_resource(show_spinner="Deriving signals…")
def _signals(folder: str, limits: str) -> pl.DataFrame:
    return derive_signals(_analysis_with_limits(folder, limits))


@st.cache_resource(show_spinner="Suggesting actions…")
def _actions(folder: str, limits: str) -> pl.DataFrame:
    return suggest_actions(_analysis_with_limits(folder, limits), _signals(folder, limits), study_dir=Path(folder))


@st.cache_resource(show_spinner=False)
def _visit_plan(folder: str, limits: str) -> pl.DataFrame:
    return plan_visits(_actions(folder, limits))


def load_indicator_levels(folder: str) -> pl.DataFrame:
    """Every signal's indicator level and strength at every cut (``rbqm.signals.indicator_levels`` of
    :func:`load_analysis`), for ``rbqm.outcomes.signal_outcomes``."""
    return _indicator_levels(folder, qtl_limits_key(folder))


@st.cache_resource(show_spinner=False)
def _indicator_levels(folder: str, limits: str) -> pl.DataFrame:
    return indicator_levels(_analysis_with_limits(folder, limits))


CLOSED_STATUSES = ("resolved", "closed_no_action")
"""Workflow statuses that end a signal: such a signal is never overdue."""

_WORKFLOW_SCHEMA = {"signal_id": pl.String, "status": pl.String, "owner": pl.String, "due_date": pl.Date,
                    "comments": pl.Int64, "last_comment": pl.String, "version": pl.Int64}


def signal_work_list(signals: pl.DataFrame, workflow: list[SignalInfo], today: date) -> pl.DataFrame:
    """The latest cut's signals with their workflow: overdue first, then red, then by signal id.

    ``signals`` is :func:`load_signals`; ``workflow`` the study's ``rbqm.store.signals.list_signals``.
    A signal not in the store yet has status ``new`` and ``version`` null. ``overdue`` is true when
    the due date has passed and the status is not one of :data:`CLOSED_STATUSES`.
    """
    latest = signals.filter(pl.col("cut_date") == pl.col("cut_date").max())
    stored = pl.DataFrame(
        [{"signal_id": s.signal_id, "status": s.status, "owner": s.owner, "due_date": s.due_date,
          "comments": len(s.comments), "last_comment": s.comments[-1].get("text") if s.comments else None,
          "version": s.version} for s in workflow],
        schema=_WORKFLOW_SCHEMA,
    )
    return (
        latest.join(stored, on="signal_id", how="left")
        .with_columns(status=pl.col("status").fill_null("new"), comments=pl.col("comments").fill_null(0))
        .with_columns(overdue=pl.col("due_date").is_not_null() & (pl.col("due_date") < today)
                      & ~pl.col("status").is_in(CLOSED_STATUSES))
        .sort(["overdue", "severity", "signal_id"], descending=[True, True, False])
    )


_ACTION_SCHEMA = {"id": pl.Int64, "signal_id": pl.String, "action": pl.String, "description": pl.String,
                  "owner": pl.String, "due_date": pl.Date, "status": pl.String, "outcome": pl.String,
                  "planned_cut": pl.Date, "version": pl.Int64, "overdue": pl.Boolean}


def action_list(actions: list[ActionInfo], today: date) -> pl.DataFrame:
    """A study's linked actions (``rbqm.store.actions.list_actions``): overdue first (open and past
    due, ``ActionInfo.overdue``), then by id."""
    return pl.DataFrame(
        [{"id": a.id, "signal_id": a.signal_id, "action": a.action, "description": a.description, "owner": a.owner,
          "due_date": a.due_date, "status": a.status, "outcome": a.outcome, "planned_cut": a.planned_cut,
          "version": a.version, "overdue": a.overdue(today)} for a in actions],
        schema=_ACTION_SCHEMA,
    ).sort(["overdue", "id"], descending=[True, False])


def analysis_or_stop(study: str) -> Analysis:
    """The study's analysis, or the error shown on the page and the page stopped (never a traceback)."""
    try:
        return load_analysis(study)
    except RbqmError as exc:
        st.error(str(exc))
        st.stop()


# --- Audit trail --------------------------------------------------------------------------------

AUDIT_COLUMNS = {"id": pl.Int64, "at": pl.Datetime("us", "UTC"), "actor": pl.String, "action": pl.String,
                 "object_type": pl.String, "object_id": pl.String, "old_value": pl.String,
                 "new_value": pl.String, "reason": pl.String}
"""The columns of :func:`audit_trail` (old and new values as canonical JSON text)."""


def audit_trail(user: str) -> pl.DataFrame:
    """The whole audit trail read as ``user`` (``rbqm.store.audit.list_records``, needs ``audit.view``),
    newest first (:data:`AUDIT_COLUMNS`). Not cached: the trail grows with every change."""
    with store().read() as session:
        entries = list_records(session, user)
    return pl.DataFrame(
        [{"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "object_type": e.object_type,
          "object_id": e.object_id, "old_value": canonical_json(e.old_value), "new_value": canonical_json(e.new_value),
          "reason": e.reason} for e in entries],
        schema=AUDIT_COLUMNS,
    ).sort("id", descending=True)


def filter_audit(trail: pl.DataFrame, *, object_types: list[str], actors: list[str], actions: list[str],
                 text: str, latest: int) -> pl.DataFrame:
    """The newest ``latest`` records of :func:`audit_trail` that match every filter: each list keeps the records
    with any of its values (all when empty); ``text`` keeps those whose object id, reason or values contain it
    (case-insensitive)."""
    needle = text.strip().lower()
    searched = pl.concat_str("object_id", "reason", "old_value", "new_value", separator=" ", ignore_nulls=True)
    return trail.filter(
        pl.col("object_type").is_in(object_types) if object_types else pl.lit(True),
        pl.col("actor").is_in(actors) if actors else pl.lit(True),
        pl.col("action").is_in(actions) if actions else pl.lit(True),
        searched.str.to_lowercase().str.contains(needle, literal=True) if needle else pl.lit(True),
    ).head(latest)
