"""Site risk heatmap: every site's KRI flags at one data cut, sites ordered by risk."""

from __future__ import annotations

import streamlit as st


from auth import require_sign_in  # dashboard/auth.py
from charts import site_heatmap_figure  # dashboard/charts.py
from data import choose_cut, choose_study, analysis_or_stop, site_heatmap  # dashboard/data.py

require_sign_in()
st.title("Site risk heatmap")
st.caption(
    "Each row is a site, ordered by its risk rank (1 = most at risk); each column is a key risk indicator. "
    "A cell shows the site's flag for that KRI: ▼▼ / ▲▲ (dark blue / dark red) is a red flag below / above "
    "the other sites, ▼ / ▲ an amber one, blank not flagged, grey not scored (too few to score). "
    "Hover a cell for the metric, score and note. The table below gives each site's risk score "
    "(weighted flags) and its numbers of red and amber flags."
)

study = choose_study()
analysis = analysis_or_stop(study)

filters = st.columns(2)
with filters[0]:
    cut = choose_cut(analysis, key="cut_heatmap")
countries = sorted(analysis.site_risk["country"].drop_nulls().unique().to_list())
with filters[1]:
    chosen = st.multiselect("Countries", countries, key="country", placeholder="All countries")
cells, risk = site_heatmap(analysis, cut, chosen)
if risk.is_empty():
    st.info(f"No site results at {cut}" + (f" for {', '.join(chosen)}." if chosen else "."))
    st.stop()

st.plotly_chart(site_heatmap_figure(cells, risk), key="heatmap")
st.subheader("Site risk ranking")
st.dataframe(
    risk.select("rank", "site_id", "country", "risk_score", "red", "amber", "kris_scored"),
    hide_index=True, key="site_risk", width="content", height=35 * (risk.height + 1) + 3,
    column_config={"rank": "Rank", "site_id": "Site", "country": "Country",
                   "risk_score": st.column_config.NumberColumn("Risk score", format="%.1f"),
                   "red": "Red flags", "amber": "Amber flags", "kris_scored": "KRIs scored"},
)
