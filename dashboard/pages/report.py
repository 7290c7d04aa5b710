"""Oversight report: one click builds the report of a data cut, offered as HTML and PDF downloads."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from rbqm.errors import RbqmError
from rbqm.report import file_stem, make_report, report_files

from auth import current_user, require_sign_in, store  # dashboard/auth.py
from data import analysis_or_stop, choose_cut, choose_study  # dashboard/data.py

require_sign_in()
st.title("Oversight report")
st.caption(
    "The report for a sponsor oversight meeting, for one data cut: study status and enrolment against plan, "
    "QTL status with the breach log, trends over the data cuts (red and amber sites, each QTL against its "
    "limits), the site risk heatmap, the top sites and why, new and escalated signals, actions and their "
    "outcomes against the 83% benchmark, central monitoring highlights, the risk register and a methods appendix. The "
    "signals' workflow, QTL limits and risk register come from the store. The HTML file opens offline in any "
    "browser; the PDF prints as it is."
)

study = choose_study()
analysis = analysis_or_stop(study)
options = st.columns(2)
with options[0]:
    cut = choose_cut(analysis, key="report_cut")
with options[1]:
    top = int(st.number_input("Top sites (and rows of long tables)", min_value=1, max_value=100, value=10,
                              key="report_top"))

if st.button("Build the report", type="primary", key="report_build", icon=":material/description:"):
    with st.spinner("Building the report…"):
        try:
            report = make_report(analysis, study_dir=Path(study), store=store(), actor=current_user(), cut=cut,
                                 top=top)
            st.session_state["report_files"] = ((study, cut, top), file_stem(report), report_files(report))
        except RbqmError as exc:
            st.error(str(exc))
            st.stop()

built = st.session_state.get("report_files")
if built and built[0] == (study, cut, top):
    _, stem, files = built
    st.success(f"The report of {analysis.study_id} at the data cut of {cut} is ready.", icon=":material/check:")
    downloads = st.columns(2)
    downloads[0].download_button("Download HTML", files["html"], file_name=f"{stem}.html", mime="text/html",
                                 key="report_html", icon=":material/download:", on_click="ignore")
    downloads[1].download_button("Download PDF", files["pdf"], file_name=f"{stem}.pdf", mime="application/pdf",
                                 key="report_pdf", icon=":material/picture_as_pdf:", on_click="ignore")
else:
    st.info("Choose the data cut, then build the report: it takes a few seconds.", icon=":material/info:")
