"""Central monitoring: the central statistical monitoring findings of the latest cut, by p-value."""

from __future__ import annotations

import streamlit as st


from auth import require_sign_in  # dashboard/auth.py
from data import choose_study, csm_findings, analysis_or_stop  # dashboard/data.py

ALL_TESTS = "All tests"

require_sign_in()
st.title("Central monitoring")
st.caption(
    "Central statistical monitoring at the latest data cut: each row compares one site with the rest of "
    "the study on one test (AE or SAE under-reporting, digit preference, low variability), most "
    "significant first. q is the Benjamini-Hochberg q-value within the test; effect gives the size and "
    "direction of the departure; the description says it in words."
)

study = choose_study()
analysis = analysis_or_stop(study)

if analysis.csm.is_empty():
    st.info("No central monitoring test could run on this study (they need ae and sv, or vs or lb).")
    st.stop()
cut = max(analysis.cut_dates)
tests = sorted(analysis.csm["test"].unique().to_list())
test = st.selectbox("Test", [ALL_TESTS, *tests], key="csm_test")
findings = csm_findings(analysis, cut, None if test == ALL_TESTS else test)
st.subheader(f"{findings.height} findings at {cut}")
st.dataframe(
    findings.select("site_id", "test", "variable", "p_value", "q_value", "effect", "description"),
    hide_index=True, key="csm_findings",
    column_config={
        "site_id": "Site", "test": "Test", "variable": "Variable",
        "p_value": st.column_config.NumberColumn("p", format="%.4f"),
        "q_value": st.column_config.NumberColumn("q", format="%.4f"),
        "effect": st.column_config.NumberColumn("Effect", format="%.3f"),
        "description": st.column_config.TextColumn("Description", width="large"),
    },
)
