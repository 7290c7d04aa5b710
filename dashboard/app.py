"""The rbqm dashboard: run with ``streamlit run dashboard/app.py`` (or ``make run``).

This entrypoint only sets up the page frame and routes to the pages.
"""

import streamlit as st

st.set_page_config(page_title="rbqm", layout="wide")

st.navigation(
    {
        "Study": [
            st.Page("pages/overview.py", title="Study overview", icon=":material/dashboard:", default=True),
        ],
        "Signals": [
            st.Page("pages/heatmap.py", title="Site risk heatmap", icon=":material/grid_on:"),
            st.Page("pages/kri_explorer.py", title="KRI explorer", icon=":material/scatter_plot:"),
            st.Page("pages/qtl.py", title="Quality tolerance limits", icon=":material/rule:"),
            st.Page("pages/monitoring.py", title="Central monitoring", icon=":material/query_stats:"),
        ],
    }
).run()
