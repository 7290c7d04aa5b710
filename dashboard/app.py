"""The rbqm dashboard: run with ``streamlit run dashboard/app.py`` (or ``make run``).

This entrypoint only sets up the page frame, asks who is signing in (``auth.py``) and routes
to the pages.
"""

# plotly validates chart data by looking pandas up in sys.modules without the import lock; if the
# first chart is drawn while another session's thread is still importing pandas, it finds a partially
# initialised module and fails. Importing it here, under the lock, before any page runs prevents that.
import pandas  # noqa: F401  (not used by the dashboard itself)
import streamlit as st

from rbqm.permissions import Action

from auth import account_sidebar, may, sign_in_page, signed_in  # dashboard/auth.py

st.set_page_config(page_title="rbqm", layout="wide")
if not signed_in():  # the sign-in form is the only page until someone signs in
    st.navigation([st.Page(sign_in_page, title="Sign in", url_path="sign-in")], position="hidden").run()
    st.stop()
account_sidebar()

st.navigation(
    {
        "Study": [
            st.Page("pages/overview.py", title="Study overview", icon=":material/dashboard:", default=True),
            st.Page("pages/report.py", title="Oversight report", icon=":material/summarize:"),
            st.Page("pages/risk.py", title="Risk assessment", icon=":material/health_and_safety:"),
            st.Page("pages/data_intake.py", title="Data", icon=":material/upload_file:", url_path="data"),
        ],
        "Signals": [
            st.Page("pages/heatmap.py", title="Site risk heatmap", icon=":material/grid_on:"),
            st.Page("pages/site_profile.py", title="Site profile", icon=":material/location_city:"),
            st.Page("pages/kri_explorer.py", title="KRI explorer", icon=":material/scatter_plot:"),
            st.Page("pages/qtl.py", title="Quality tolerance limits", icon=":material/rule:"),
            st.Page("pages/monitoring.py", title="Central monitoring", icon=":material/query_stats:"),
            st.Page("pages/signals.py", title="Signals and actions", icon=":material/assignment:"),
        ],
        # only roles that may see the accounts get the Admin section (the page checks again)
        **({"Admin": [st.Page("pages/admin.py", title="Users and roles", icon=":material/manage_accounts:")]}
           if may(Action.USER_VIEW) else {}),
    }
).run()
