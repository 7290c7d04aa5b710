"""Study overview: the landing page. Pick a study and a data cut: its size, enrolment against plan by country
and site, red and amber sites, QTL status and what changed since the previous cut (``rbqm.overview``)."""

from __future__ import annotations

from datetime import date

import plotly.express as px
import polars as pl
import streamlit as st

from rbqm.errors import RbqmError
from rbqm.overview import NOT_COMPUTED, SITE_STATUSES, CutOverview
from rbqm.schema import table

from auth import require_sign_in  # dashboard/auth.py
from charts import enrolment_figure, flag_figure, percent  # dashboard/charts.py
from data import (  # dashboard/data.py
    QTL_STATUS_SHOWN, choose_study, list_cut_dates, load_analysis, load_cut_overview, load_enrolment, load_summary,
)

LATEST = "latest (full study)"
def escaped(text: str) -> str:
    """``text`` as literal Markdown (site ids, variable names and signal ids may hold * or _)."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_")


require_sign_in()
st.title("Study overview")
st.caption(
    "The landing page: how big the chosen study is at the chosen data cut. Subjects screened counts "
    "everyone who gave consent; enrolled excludes screen failures (arm SCRNFAIL or no randomisation "
    "date). Latest date is the most recent consent, randomisation or end date in demographics, "
    "a stand-in for the cut date."
)

study = choose_study()
try:
    cut = st.selectbox(
        "Data cut",
        [LATEST, *list_cut_dates(study)],
        key="cut",
        help="A data cut is the study as it was on that date (a `cuts/YYYY-MM-DD` folder). The red and amber "
             "sites, QTLs and changes below are the analysis of that cut; for the full study, of its latest cut.",
    )
    summary = load_summary(study, None if cut == LATEST else cut)
    by_site, by_country, whole = load_enrolment(study, None if cut == LATEST else cut)
except RbqmError as exc:
    st.error(str(exc))
    st.stop()

st.subheader(summary.study_id)
columns = st.columns(5)
columns[0].metric("Subjects screened", summary.screened, help="Rows in dm: every consented subject.")
columns[1].metric("Enrolled", summary.enrolled, help="Screened subjects who were randomised.")
columns[2].metric("Sites", summary.sites, help="Sites with at least one screened subject.")
columns[3].metric("Countries", summary.countries, help="Countries of those sites.")
columns[4].metric("Latest date", summary.last_date or "–", help="Latest date found in dm.")

# --- enrolment versus plan -----------------------------------------------------------------------------------
st.subheader("Enrolment versus plan")
study_plan = whole.row(0, named=True)
if study_plan["planned"] is None:
    st.info("The sites table gives no planned enrolment (column PLANNEDENR), so there is no plan to compare "
            "with: the bars show enrolment only. Add PLANNEDENR to the sites table (docs/data-format.md) to "
            "see each country and site against its plan.")
else:
    st.caption("Enrolled subjects per country (bars) against the sum of their sites' planned enrolment "
               "(the black tick; sites PLANNEDENR). A share of plan counts only the sites that have a plan; "
               "a site without one is marked \"no plan\", never given one. KRI kri0016 flags a site below 75% "
               "(amber) or 50% (red) of its plan: read it against where the study is in its enrolment period.")
    plan = st.columns(3)
    plan[0].metric("Share of plan", percent(study_plan["share_of_plan"]),
                   help="Enrolled subjects at the sites with a plan over the sum of their planned enrolment.")
    plan[1].metric("Planned enrolment", study_plan["planned"],
                   help="Sum of the sites' PLANNEDENR (sites table), for the sites that have one.")
    plan[2].metric("Sites with a plan", f"{study_plan['sites_with_plan']} of {study_plan['sites']}",
                   help="Sites of the sites table with a planned enrolment; the others show \"no plan\".")
st.plotly_chart(enrolment_figure(by_country), key="country_enrolment")

st.subheader("Enrolment by site")
st.caption("Enrolled subjects per site, most first; the colour is the site's country.")
chart = px.bar(
    summary.site_enrolment,
    x="SITEID",
    y="enrolled",
    color="COUNTRY",
    text_auto=True,
    labels={"SITEID": "Site", "enrolled": "Enrolled subjects", "COUNTRY": "Country"},
)
chart.update_xaxes(type="category", categoryorder="total descending")
st.plotly_chart(chart, key="site_enrolment")
with st.expander("Each site against its plan"):
    st.dataframe(
        by_site.select("site_id", "country", "screened", "enrolled", "planned", "share_of_plan",
                       pl.col("plan_note").fill_null("")),
        hide_index=True, key="site_plan",
        column_config={
            "site_id": "Site", "country": "Country", "screened": "Screened", "enrolled": "Enrolled",
            "planned": st.column_config.NumberColumn("Planned", help="Sites PLANNEDENR; empty: no plan."),
            "share_of_plan": st.column_config.NumberColumn("Share of plan", format="percent"),
            "plan_note": "Note",
        },
    )

# --- the analysis at the cut: red and amber sites, QTLs, what changed -------------------------------------------
overview: CutOverview | None = None
try:
    analysis = load_analysis(study)
    risk_cut = analysis.cut_dates[-1] if cut == LATEST else date.fromisoformat(cut)
    if risk_cut in analysis.cut_dates:
        overview = load_cut_overview(study, risk_cut)
    else:
        st.info(f"The analysis has no data cut {cut} yet. Reload the page (a cut ingested a moment ago is "
                "analysed at the next run), or choose another cut.")
except RbqmError as exc:
    st.error(f"The red and amber sites, QTLs and changes need the study's analysis, which failed: {exc}. "
             "Check the study on the Data page (it names each problem by file, column and row).")

if overview is not None:
    latest_note = " (the analysis' latest; the study folder itself may hold later data)" if cut == LATEST else ""
    st.subheader("Red and amber sites")
    st.caption(f"At data cut {overview.cut_date}{latest_note}. A red site has at least one red KRI flag, an "
               "amber site an amber flag and no red one; the Site risk heatmap shows which KRIs. Changes are "
               "against the previous cut.")
    counts = overview.site_counts
    now = counts.row(-1, named=True)
    before = counts.row(-2, named=True) if counts.height > 1 else None
    flags = st.columns(3)
    for column, (status, key) in zip(flags, (("red", "red_sites"), ("amber", "amber_sites"),
                                             ("none", "no_flag_sites")), strict=True):
        label = {"red": "Red sites", "amber": "Amber sites", "none": "Sites without a flag"}[status]
        column.metric(label, now[key], delta=None if before is None else now[key] - before[key],
                      delta_color="off" if status == "none" else "inverse",
                      help=f"Sites with {SITE_STATUSES[status]} at this cut, of {now['sites']} with results"
                           + ("" if before is None else f"; the change since {before['cut_date']}."))
    st.plotly_chart(flag_figure(counts), key="site_flags")

    st.subheader("Quality tolerance limits")
    qtl_counts = dict(overview.qtl_counts.iter_rows())
    shown = {**QTL_STATUS_SHOWN, NOT_COMPUTED: f"· {NOT_COMPUTED}"}
    helps = {"within limits": "The estimate is below the secondary limit.",
             "secondary limit crossed": "The estimate reached the secondary (warning) limit, not the tolerance limit.",
             "tolerance limit breached": "The estimate reached the tolerance limit: a breach to evaluate and "
                                         "document on the Quality tolerance limits page.",
             NOT_COMPUTED: "The study lacks the tables or columns the QTL needs; the QTL page names them."}
    for column, (status, count) in zip(st.columns(4), qtl_counts.items(), strict=True):
        column.metric(shown[status], count, help=helps[status])
    outside = overview.qtls_outside_limits
    if outside.is_empty():
        computed = sum(qtl_counts.values()) - qtl_counts[NOT_COMPUTED]
        st.success(f"Every computed QTL ({computed}) is within its limits at {overview.cut_date}.")
    else:
        st.caption("QTLs not within their limits at this cut, the worst first. The Quality tolerance limits page "
                   "has their trend and the breach log.")
        st.dataframe(
            outside.with_columns(status=pl.col("status").replace_strict(QTL_STATUS_SHOWN, default=pl.col("status")))
            .select("qtl_id", "name", "status", "estimate", "secondary_limit", "limit", "probability_exceed"),
            hide_index=True, key="qtls_outside",
            column_config={
                "qtl_id": "QTL", "name": "Name", "status": "Status",
                "estimate": st.column_config.NumberColumn("Estimate", format="%.4f"),
                "secondary_limit": st.column_config.NumberColumn("Secondary limit", format="%.4f"),
                "limit": st.column_config.NumberColumn("Tolerance limit", format="%.4f"),
                "probability_exceed": st.column_config.NumberColumn(
                    "P(> tolerance limit)", format="%.2f",
                    help="Posterior probability that the true study rate exceeds the tolerance limit."),
            },
        )

    st.subheader("What changed" if overview.previous_cut is None else f"What changed since {overview.previous_cut}")
    if overview.previous_cut is None:
        st.info(overview.changes[0] + " Choose a later cut to see what changed.")
    else:
        st.markdown("\n".join(f"- {escaped(line)}" for line in overview.changes))
        st.caption("Sites by their flag status; QTLs by status; signals as tracked across cuts (the Signals and "
                   "actions page lists each with its owner and due date).")

st.subheader("Tables")
st.caption("Rows per table in the study folder; tables the study does not provide are not listed.")
st.dataframe(
    pl.DataFrame(
        {
            "Table": list(summary.tables),
            "Contents": [table(name).label for name in summary.tables],
            "Rows": list(summary.tables.values()),
        }
    ),
    hide_index=True,
    width="content",
    key="table_rows",
)
