"""Site profile: one site at a data cut: who it is, its KRIs with their trend, central-monitoring findings,
open signals and suggested actions, and the subjects behind every number."""

from __future__ import annotations

from datetime import date

import polars as pl
import streamlit as st

from rbqm.errors import RbqmError
from rbqm.site_profile import (describe_count, open_site_signals, site_actions, site_findings, site_header,
                               site_kris, subject_listing)
from rbqm.store.signals import list_signals

from auth import current_user, require_sign_in, store  # dashboard/auth.py
from charts import FLAG_COLOURS, FLAG_LABELS, FLAG_SYMBOLS, HEATMAP_SCORES  # dashboard/charts.py
from data import (CLOSED_STATUSES, analysis_or_stop, choose_cut, choose_study,  # dashboard/data.py
                  kri_library, load_actions, load_signals, load_site_regions, load_subject_counts,
                  signal_work_list)

FLAG_SHOWN = {flag: f"{FLAG_SYMBOLS[flag]} {FLAG_LABELS[flag]}".strip() for flag in FLAG_LABELS}
NOT_SCORED = "· not scored"
# A flag in the history column: its symbol, – when not flagged (· when not scored).
FLAG_MARKS = {flag: FLAG_SYMBOLS[flag] or "–" for flag in FLAG_SYMBOLS}
CLOSEST = 3  # findings told in words when none of the site's is significant
SEVERITY_SHOWN = {"red": "●● red", "amber": "● amber"}  # no arrow: a red KRI signal may be a low flag

require_sign_in()
st.title("Site profile")
st.caption(
    "One site at one data cut: where it is, how many subjects it has and how it ranks; every key risk "
    "indicator with its metric, score and flag (▲ above, ▼ below the other sites; doubled = red) and how "
    "they moved over the cuts; what central monitoring found; its open signals and the actions suggested "
    "for them; and, at the bottom, the subjects behind each KRI's numerator and denominator. Open it from "
    "the heatmap by clicking a site, or choose the site here."
)

study = choose_study()
analysis = analysis_or_stop(study)

latest = max(analysis.cut_dates)
ranked = analysis.site_risk.filter(pl.col("cut_date") == latest).sort("rank", "site_id", nulls_last=True)
sites = ranked["site_id"].to_list()
if not sites:
    st.info("This study has no sites with results yet.")
    st.stop()
rank_of = dict(zip(sites, ranked["rank"].to_list(), strict=True))
country_of = dict(zip(sites, ranked["country"].to_list(), strict=True))
opened = st.session_state.pop("open_site", None)  # (study, site) from the heatmap
if opened and opened[0] == study and opened[1] in sites:
    st.session_state["profile_site"] = opened[1]
elif st.session_state.get("profile_site") in sites:
    st.session_state["profile_site"] = st.session_state["profile_site"]  # kept across pages, as the study is
elif st.query_params.get("site") in sites:
    st.session_state["profile_site"] = st.query_params["site"]
else:
    st.session_state.pop("profile_site", None)

controls = st.columns([2, 1])
site = controls[0].selectbox(
    "Site", sites, key="profile_site",
    format_func=lambda s: f"{s} · {country_of[s] or '?'}" + (f" · rank {rank_of[s]}" if rank_of[s] else ""),
    help="Sites by risk rank at the latest cut (1 = most at risk).",
)
st.query_params["site"] = site
with controls[1]:
    cut: date = choose_cut(analysis, key="cut_profile")

try:
    subjects, counts = load_subject_counts(study, cut)
    region = load_site_regions(study, analysis).filter(pl.col("site_id") == site)["region"]
except RbqmError as exc:
    st.error(str(exc))
    st.stop()
try:
    header = site_header(analysis, site, cut, subjects=subjects, region=region[0] if region.len() else None)
except RbqmError as exc:  # a site that had not started yet at an earlier cut
    st.warning(f"{exc}. Choose a later data cut.")
    st.stop()

# --- Header ---------------------------------------------------------------------------------------
st.subheader(f"Site {site}" + (f" · {header.country}" if header.country else "")
             + (f" · {header.region}" if header.region else ""))
metrics = st.columns(6 if header.dis is not None else 5)
metrics[0].metric("Subjects", f"{header.enrolled} / {header.screened}",
                  help="Enrolled / screened (consented) subjects at this cut.")
metrics[1].metric("Risk rank", f"{header.rank} of {header.ranked_sites}" if header.rank else "–",
                  help="Among the sites with a scored KRI at this cut; 1 = most at risk.")
metrics[2].metric(HEATMAP_SCORES["risk_score"],
                  "–" if header.risk_score is None else f"{header.risk_score:.1f}",
                  help="0-100: the weights of the site's flags over the largest weights possible.")
metrics[3].metric("Red / amber flags", f"{header.red} / {header.amber}")
metrics[4].metric("KRIs scored", header.kris_scored)
if header.dis is not None:
    rank_text = f"; rank {header.dis_rank} (1 = most inconsistent)" if header.dis_rank else ""
    metrics[5].metric(HEATMAP_SCORES["dis"], f"{header.dis:.2f}",
                      help=f"Data inconsistency score from the central monitoring tests{rank_text}.")

# --- KRIs -----------------------------------------------------------------------------------------
kris = site_kris(analysis, site, cut, kri_library())
st.subheader(f"Key risk indicators at {cut}")
st.caption("Flags are shaded by colour and marked by symbol. *Scores over cuts* and *flags over cuts* run "
           "from the first data cut to this one (– not flagged, · not scored).")
shown = kris.select(
    kri=pl.concat_str("kri_id", pl.lit(" · "), pl.col("name").fill_null("")),
    metric=pl.when(pl.col("metric_shown").is_not_null())
    .then(pl.format("{} {}", pl.col("metric_shown").round_sig_figs(3), pl.col("metric_unit"))),
    score=pl.col("score").round(2).cast(pl.String).fill_null("–"),
    flag=pl.when(pl.col("flag").is_null() & pl.col("note").is_not_null()).then(pl.format("· {}", "note"))
    .otherwise(pl.col("flag").replace_strict(FLAG_SHOWN, default=NOT_SCORED, return_dtype=pl.String)),
    change=pl.when(pl.col("flag_change") != "none").then(pl.col("flag_change")).otherwise(pl.lit("–")),
    scores="scores",
    flags=pl.col("flags")
    .list.eval(pl.element().replace_strict(FLAG_MARKS, default="·", return_dtype=pl.String)).list.join(" "),
)
colour = {text: f"background-color: {FLAG_COLOURS[flag]}; color: {'#ffffff' if abs(flag) == 2 else '#1a1a1a'}"
          for flag, text in FLAG_SHOWN.items() if flag}
st.dataframe(
    shown.to_pandas().style.map(lambda text: colour.get(text, ""), subset=["flag"]),
    hide_index=True, key="profile_kris", height=35 * (shown.height + 1) + 3,
    column_config={
        "kri": st.column_config.TextColumn("KRI", width="medium"),
        "metric": st.column_config.TextColumn("Metric", width="medium"),
        "score": st.column_config.TextColumn("Score", width="small"),
        "flag": st.column_config.TextColumn("Flag", width="medium"),
        "change": st.column_config.TextColumn("Since last cut", width="small"),
        "scores": st.column_config.LineChartColumn("Scores over cuts", width="small"),
        "flags": st.column_config.TextColumn("Flags over cuts", width="small"),
    },
)

# --- Central monitoring -----------------------------------------------------------------------------
findings = site_findings(analysis, site, cut)
st.subheader("Central monitoring")
if findings.is_empty():
    st.info("No central monitoring test ran for this site at this cut (they need ae and sv, or vs or lb).")
else:
    notable = findings.filter(pl.col("signal").is_not_null())
    if notable.is_empty():
        st.markdown(f"Nothing stands out: none of the {findings.height} tests of this site is significant "
                    f"after multiplicity adjustment (q ≥ 0.05). The {CLOSEST} closest to standing out:")
    told = notable if notable.height else findings.head(CLOSEST)
    st.markdown("\n".join(
        f"- **{SEVERITY_SHOWN.get(row['signal'], 'not significant')}** ({row['test'].replace('_', ' ')}, "
        f"p = {row['p_value']:.3g}, q = {row['q_value']:.3g}): {row['description']}"
        for row in told.iter_rows(named=True)))
    with st.expander(f"All {findings.height} central monitoring results for this site"):
        st.dataframe(
            findings.select("test", "variable", "p_value", "q_value", "effect", "description"),
            hide_index=True, key="profile_csm",
            column_config={"test": "Test", "variable": "Variable",
                           "p_value": st.column_config.NumberColumn("p", format="%.4f"),
                           "q_value": st.column_config.NumberColumn("q", format="%.4f"),
                           "effect": st.column_config.NumberColumn("Effect", format="%.3f"),
                           "description": st.column_config.TextColumn("Description", width="large")},
        )

# --- Signals and actions (latest cut) ----------------------------------------------------------------
st.subheader("Open signals and suggested actions")
if cut != latest:
    st.caption(f"Signals and actions are those of the latest cut, {latest}.")
def show_signals_and_actions() -> None:
    """The site's open signals with their workflow, and the actions suggested for them."""
    try:
        signals = load_signals(study)
        actions = site_actions(load_actions(study), site)
    except RbqmError as exc:
        st.error(str(exc))
        return
    try:
        workflow = list_signals(store(), current_user(), study_id=analysis.study_id)
    except RbqmError as exc:
        st.warning(f"The signals' workflow (status, owner, due date) could not be read from the store: {exc}")
        workflow = []
    work = open_site_signals(signal_work_list(signals, workflow, date.today()), site, closed=CLOSED_STATUSES)
    if work.is_empty():
        st.info("No open signal at this site.")
    else:
        st.markdown(f"**{work.height} open signal{'s' if work.height > 1 else ''}**")
        st.markdown("\n".join(
            f"- **{SEVERITY_SHOWN.get(row['severity'], row['severity'])}** `{row['signal_id']}` "
            f"({row['state']}; status {row['status'].replace('_', ' ')}, owner {row['owner'] or '–'}, "
            f"due {row['due_date'] or '–'}{', ⚠ overdue' if row['overdue'] else ''}): {row['summary']}"
            for row in work.iter_rows(named=True)))
    if actions.is_empty():
        return
    plural = "s" if actions.height > 1 else ""
    st.markdown(f"**{actions.height} suggested action{plural}**, highest priority first")
    st.markdown("\n".join(
        f"- **{row['label']}** for `{row['signal_id']}` (priority {row['priority']:.2f}). "
        f"*Where to look:* {row['where_to_look']} *Why:* {row['why']}"
        for row in actions.iter_rows(named=True)))


show_signals_and_actions()

# --- Subjects behind the numbers ---------------------------------------------------------------------
st.subheader("Subjects behind the numbers")
st.caption("Each subject's share of a KRI's numerator and denominator at this cut (they add up to the "
           "site's numbers), with days on study; flagged KRIs first. *Subject metric* is the subject's own "
           "numerator over denominator, in the KRI's unit; the subjects that explain the concern come first "
           "(lowest first for a low flag or a low concern, such as AE under-reporting).")
definitions = {d.id: d for d in kri_library()}
computed = set(counts["kri_id"].unique().to_list())
flagged_first = kris.sort(pl.col("flag").fill_null(0).abs(), "kri_id", descending=[True, False])
for row in flagged_first.iter_rows(named=True):
    definition = definitions.get(row["kri_id"])
    if definition is None or row["kri_id"] not in computed:
        continue
    mark = FLAG_SYMBOLS.get(row["flag"], "") if row["flag"] is not None else ""
    numbers = ("–" if row["numerator"] is None else f"{row['numerator']:g}") + " / " + \
        ("–" if row["denominator"] is None else f"{row['denominator']:g}")
    with st.expander(f"{mark} {row['kri_id']} · {row['name']}: {numbers}".strip()):
        st.caption(f"Numerator: {describe_count(definition.numerator)}. "
                   f"Denominator: {describe_count(definition.denominator)}.")
        listing = subject_listing(counts, subjects, definition, site, flag=row["flag"])
        if listing.is_empty():
            st.info("No subjects at this site at this cut.")
            continue
        st.dataframe(
            listing, hide_index=True, key=f"profile_subjects_{row['kri_id']}",
            column_config={"USUBJID": "Subject", "enrolled": "Enrolled", "days_on_study": "Days on study",
                           "numerator": st.column_config.NumberColumn("Numerator", format="%g"),
                           "denominator": st.column_config.NumberColumn("Denominator", format="%g"),
                           "metric": st.column_config.NumberColumn(
                               f"Subject metric ({definition.metric_unit})", format="%.3g")},
        )
        if listing["denominator"].is_null().all():
            st.caption("The denominator is counted from the sites table, not per subject.")
