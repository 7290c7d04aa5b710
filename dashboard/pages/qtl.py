"""Quality tolerance limits: study-level QTLs at the latest cut, and one QTL over the cuts."""

from __future__ import annotations

import polars as pl
import streamlit as st


from auth import require_sign_in  # dashboard/auth.py
from charts import qtl_status_style, qtl_trend_figure  # dashboard/charts.py
from data import choose_study, analysis_or_stop, qtl_table  # dashboard/data.py

require_sign_in()
st.title("Quality tolerance limits")
st.caption(
    "Study-level quality tolerance limits (QTLs) at the latest data cut: each parameter's estimate with "
    "its interval, the secondary (warning) and tolerance limits in effect, the status (● within limits, "
    "▲ secondary limit crossed, shaded amber; ▲▲ tolerance limit breached, shaded red) and the probability that the true "
    "value exceeds the tolerance limit. A breach calls for an evaluation and corrective action."
)

study = choose_study()
analysis = analysis_or_stop(study)

if analysis.qtl.is_empty():
    st.info("No QTL could be computed for this study (it lacks the tables the QTLs need).")
    st.stop()
cut = max(analysis.cut_dates)
latest = qtl_table(analysis, cut)
st.subheader(f"QTLs at {cut}")
st.dataframe(
    latest.select("qtl_id", "name", "status_shown", "estimate", "lower", "upper", "secondary_limit", "limit",
                  "probability_exceed", "numerator", "denominator", "note")
    .to_pandas().style.map(qtl_status_style, subset=["status_shown"]),
    hide_index=True, key="qtl_table",
    column_config={
        "qtl_id": "QTL", "name": "Parameter", "status_shown": "Status",
        "estimate": st.column_config.NumberColumn("Estimate", format="%.4f"),
        "lower": st.column_config.NumberColumn("Interval low", format="%.4f"),
        "upper": st.column_config.NumberColumn("Interval high", format="%.4f"),
        "secondary_limit": st.column_config.NumberColumn("Secondary limit", format="%.4f"),
        "limit": st.column_config.NumberColumn("Tolerance limit", format="%.4f"),
        "probability_exceed": st.column_config.NumberColumn("P(exceed)", format="%.3f"),
        "numerator": st.column_config.NumberColumn("Numerator", format="%d"),
        "denominator": st.column_config.NumberColumn("Denominator", format="%d"),
        "note": "Note",
    },
)

st.subheader("Trend over data cuts")
names = dict(zip(latest["qtl_id"], latest["name"], strict=True))
qtl = st.selectbox("QTL", list(names), format_func=lambda q: f"{q} · {names[q]}", key="qtl")
trend = analysis.qtl.filter(pl.col("qtl_id") == qtl).sort("cut_date")
st.plotly_chart(qtl_trend_figure(trend), key="qtl_trend")
