"""Study overview: the landing page. Pick a study and a data cut, see its size at a glance."""

from __future__ import annotations

import plotly.express as px
import polars as pl
import streamlit as st

from rbqm.errors import RbqmError
from rbqm.schema import table

from auth import require_sign_in  # dashboard/auth.py
from data import choose_study, list_cut_dates, load_summary  # dashboard/data.py

LATEST = "latest (full study)"

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
        help="A data cut is the study as it was on that date (a `cuts/YYYY-MM-DD` folder).",
    )
    summary = load_summary(study, None if cut == LATEST else cut)
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
