"""KRI explorer: one key risk indicator as a funnel plot, its definition, and a group's trend over cuts."""

from __future__ import annotations

import polars as pl
import streamlit as st

from rbqm.errors import RbqmError

from auth import require_sign_in  # dashboard/auth.py
from charts import funnel_figure, trend_figure  # dashboard/charts.py
from data import choose_study, kri_bounds, kri_results, load_analysis, load_kri_definitions  # dashboard/data.py

require_sign_in()
st.title("KRI explorer")
st.caption(
    "One key risk indicator at the latest data cut. The funnel plot puts each site or country at its "
    "denominator (how much data it has, log scale) and its metric; the lines are where the score crosses "
    "each flag threshold, so they narrow as data grows. Marker shape and colour give the flag "
    "(▼ below, ▲ above the others; filled = red, open = amber). Below, one group's score over the data cuts."
)

study = choose_study()
try:
    analysis = load_analysis(study)
    definitions = load_kri_definitions()
except RbqmError as exc:
    st.error(str(exc))
    st.stop()

computed = set(analysis.results["kri_id"].unique().to_list())
kris = definitions.filter(pl.col("id").is_in(computed))
if kris.is_empty():
    st.info("No KRI could be computed for this study (it lacks the tables the KRIs need).")
    st.stop()
names = dict(zip(kris["id"], kris["name"], strict=True))
controls = st.columns([3, 1])
kri = controls[0].selectbox("KRI", list(names), format_func=lambda k: f"{k} · {names[k]}", key="kri")
level = controls[1].radio("Level", ["site", "country"], horizontal=True, key="level")
definition = kris.row(by_predicate=pl.col("id") == kri, named=True)

with st.expander(f"Definition: {definition['name']}"):
    st.markdown(definition["description"])
    st.markdown(
        f"- **Metric:** {definition['metric_unit']}\n"
        f"- **Flag thresholds (score):** {definition['thresholds']}\n"
        f"- **Minimum to score:** {definition['minimum']}\n"
        f"- **Concern:** {definition['concern']} values"
    )

results = kri_results(analysis, kri, level)
if results.is_empty():
    st.info(f"{kri} has no {level}-level results in this study.")
    st.stop()
cut = max(analysis.cut_dates)
st.subheader(f"Funnel plot at {cut}")
latest = results.filter(pl.col("cut_date") == cut)
bounds = kri_bounds(analysis, kri, level, cut)
if bounds.is_empty():
    st.caption("This KRI's method draws no funnel bounds; the points are shown alone.")
st.plotly_chart(funnel_figure(latest, bounds, definition["metric_unit"]), key="funnel")
unscored = latest.filter(pl.col("flag").is_null()).height
if unscored:
    st.caption(f"{unscored} {level}(s) not scored (too few to score) are not plotted.")

st.subheader("Trend over data cuts")
groups = sorted(results["group_id"].unique().to_list())
group = st.selectbox("Site" if level == "site" else "Country", groups, key="group")
st.plotly_chart(trend_figure(results.filter(pl.col("group_id") == group), group), key="trend")
