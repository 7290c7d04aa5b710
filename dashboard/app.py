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
    }
).run()
