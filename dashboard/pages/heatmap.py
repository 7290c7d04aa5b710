"""Site risk heatmap: every site's KRI flags and scores at one data cut; a click opens the site's profile."""

from __future__ import annotations

import polars as pl
import streamlit as st

from rbqm.site_profile import risk_table

from auth import require_sign_in  # dashboard/auth.py
from charts import HEATMAP_SCORES, selected_site, site_heatmap_figure  # dashboard/charts.py
from data import (analysis_or_stop, choose_cut, choose_study, load_site_regions,  # dashboard/data.py
                  site_heatmap)

PROFILE_PAGE = "pages/site_profile.py"
# The orders of rbqm.site_profile.SITE_SORTS, as the selectbox shows them. (Comments, not docstrings, on
# a page's constants: Streamlit's magic writes any bare string of a page onto the page.)
SORTS = {"risk": "Risk rank", "dis": "Data inconsistency", "site": "Site", "country": "Country",
         "region": "Region"}

require_sign_in()
st.title("Site risk heatmap")
st.caption(
    "Each row is a site (by risk rank, 1 = most at risk, unless you sort otherwise); each column is a key "
    "risk indicator. A cell shows the site's flag for that KRI: ▼▼ / ▲▲ (dark blue / dark red) is a red "
    "flag below / above the other sites, ▼ / ▲ an amber one, blank not flagged, · on grey not scored (too "
    "few to score). The purple columns give the site's risk score (0-100, weighted flags) and, when the "
    "analysis has it, its data inconsistency score, darker when higher. Hover a cell for the numbers; "
    "**click a cell, or a row of the table below, to open that site's profile.**"
)


def open_profile(study: str, site: str) -> None:
    """Go to the site profile page with ``site`` chosen (the profile page picks it up from the session)."""
    st.session_state["open_site"] = (study, site)
    st.switch_page(PROFILE_PAGE)


study = choose_study()
analysis = analysis_or_stop(study)
region_of = load_site_regions(study, analysis)

filters = st.columns(4)
with filters[0]:
    cut = choose_cut(analysis, key="cut_heatmap")
countries = sorted(analysis.site_risk["country"].drop_nulls().unique().to_list())
chosen = filters[1].multiselect("Countries", countries, key="country", placeholder="All countries")
regions = sorted(region_of["region"].drop_nulls().unique().to_list())
chosen_regions = filters[2].multiselect(
    "Regions", regions, key="region", placeholder="All regions" if regions else "No regions known",
    disabled=not regions,
    help="The study's own site regions (sites table, REGION), else the country's region (rbqm/regions.yaml).",
)
at_cut = analysis.site_risk.filter(pl.col("cut_date") == cut)
has_dis = "dis" in at_cut.columns and at_cut["dis"].is_not_null().any()  # scored at this cut
sorts = [key for key in SORTS if key != "dis" or has_dis]
sort_by = filters[3].selectbox("Sort sites by", sorts, format_func=SORTS.get, key="heatmap_sort")

risk = risk_table(analysis, cut, region_of=region_of, countries=chosen, regions=chosen_regions,
                  sort_by=sort_by)
if risk.is_empty():
    picked = ", ".join([*chosen, *chosen_regions])
    st.info(f"No site results at {cut}"
            + (f" for {picked}. Clear a filter to see more sites." if picked else "."))
    st.stop()

event = st.plotly_chart(site_heatmap_figure(site_heatmap(analysis, cut, risk), risk), key="heatmap",
                        on_select="rerun", selection_mode="points")
if site := selected_site(event):
    open_profile(study, site)

st.subheader("Site risk ranking")
st.caption("Click a column header to sort, a row to open the site's profile.")
shown = ["rank", "site_id", "country", "region", "risk_score", *(["dis", "dis_rank"] if has_dis else []),
         "red", "amber", "kris_scored"]
table = st.dataframe(
    risk.select([c for c in shown if c in risk.columns]),
    hide_index=True, key="site_risk", width="content", height=min(35 * (risk.height + 1) + 3, 640),
    on_select="rerun", selection_mode="single-row",
    column_config={"rank": "Rank", "site_id": "Site", "country": "Country", "region": "Region",
                   "risk_score": st.column_config.NumberColumn(HEATMAP_SCORES["risk_score"], format="%.1f"),
                   "dis": st.column_config.NumberColumn(HEATMAP_SCORES["dis"], format="%.2f"),
                   "dis_rank": st.column_config.NumberColumn("Inconsistency rank", format="%d"),
                   "red": "Red flags", "amber": "Amber flags", "kris_scored": "KRIs scored"},
)
if rows := table.selection.rows:
    open_profile(study, risk.row(rows[0], named=True)["site_id"])
if risk.filter(pl.col("rank").is_null()).height:
    st.caption("Sites without a rank had no KRI scored at this cut.")
