"""Quality tolerance limits: status at the latest cut, the probability of exceeding each limit, one QTL
over the cuts (estimate and observed minus expected), and the study's own limits with their history."""

from __future__ import annotations

import json

import polars as pl
import streamlit as st

from rbqm.errors import RbqmError
from rbqm.permissions import Action, roles_allowed
from rbqm.qtl import QTL_METHODS
from rbqm.store.qtl import limit_history, set_limit

from auth import ROLE_NAMES, current_user, may, require_sign_in, store  # dashboard/auth.py
from charts import qtl_oe_figure, qtl_probability_figure, qtl_status_style, qtl_trend_figure  # dashboard/charts.py
from data import (  # dashboard/data.py
    analysis_or_stop, choose_study, qtl_definitions, qtl_limits_key, qtl_oe_chart, qtl_table,
)

DERIVED = "one_sided_proportion"  # derives its own limits: fixed limits need another method


def _save_limits(study_id: str, qtl: str, version: int) -> None:
    """The form's submit (a callback, so it runs before the page is drawn again): store the limits with
    ``rbqm.store.qtl.set_limit`` (permission check and audit record there). ``version`` is the stored
    version when the form was drawn (one audit record per change, so the history's length; 0: never set):
    a change made meanwhile by someone else is refused instead of overwritten."""
    state = st.session_state
    try:
        stored = set_limit(store(), current_user(), study_id, qtl, limit=state[f"qtl_tolerance_{qtl}"],
                           secondary_limit=state[f"qtl_secondary_{qtl}"], expected_rate=state[f"qtl_expected_{qtl}"],
                           method=state[f"qtl_method_{qtl}"], rationale=state[f"qtl_rationale_{qtl}"],
                           expected_version=version)
    except RbqmError as exc:
        state["qtl_error"] = str(exc)
        return
    state["qtl_saved"] = (f"Saved the limits of {qtl}: secondary {stored['secondary_limit']:g}, tolerance "
                          f"{stored['limit']:g} (version {stored['version']}). The statuses above use them.")
    state[f"qtl_rationale_{qtl}"] = ""


def _limits_text(value: dict | None, unit: str) -> str:
    if value is None:
        return "library's"
    expected = "" if value.get("expected_rate") is None else f", expected {value['expected_rate']:g}"
    method = "" if value.get("method") is None else f", {value['method']}"
    return f"{value['secondary_limit']:g} / {value['limit']:g}{unit}{expected}{method}"


require_sign_in()
st.title("Quality tolerance limits")
st.caption(
    "Study-level quality tolerance limits (QTLs) at the latest data cut: each parameter's estimate with "
    "its interval, the secondary (warning) and tolerance limits in effect (the study's own where a quality "
    "lead set them, else the library's), the status (● within limits, ▲ secondary limit crossed, shaded "
    "amber; ▲▲ tolerance limit breached, shaded red) and the Bayesian probability that the true study rate "
    "exceeds the tolerance limit. A breach calls for an evaluation and corrective action. Below: one QTL "
    "over the data cuts, its observed minus expected events, and its limits with every change and rationale."
)

study = choose_study()
analysis = analysis_or_stop(study)
if analysis.qtl.is_empty():
    st.info("No QTL could be computed for this study (it lacks the tables the QTLs need).")
    st.stop()
try:
    definitions = {d.id: d for d in qtl_definitions(study)}
    own = json.loads(qtl_limits_key(study))
except RbqmError as exc:
    st.error(str(exc))
    st.stop()

if saved := st.session_state.pop("qtl_saved", None):
    st.success(saved, icon=":material/check:")

cut = max(analysis.cut_dates)
latest = qtl_table(analysis, cut).with_columns(
    limits_from=pl.when(pl.col("qtl_id").is_in(list(own))).then(pl.lit("study")).otherwise(pl.lit("library")))
st.subheader(f"QTLs at {cut}")
st.dataframe(
    latest.select("qtl_id", "name", "status_shown", "estimate", "lower", "upper", "secondary_limit", "limit",
                  "limits_from", "probability_exceed", "numerator", "denominator", "note")
    .to_pandas().style.map(qtl_status_style, subset=["status_shown"]),
    hide_index=True, key="qtl_table",
    column_config={
        "qtl_id": "QTL", "name": "Parameter", "status_shown": "Status",
        "estimate": st.column_config.NumberColumn("Estimate", format="%.4f"),
        "lower": st.column_config.NumberColumn("Interval low", format="%.4f"),
        "upper": st.column_config.NumberColumn("Interval high", format="%.4f"),
        "secondary_limit": st.column_config.NumberColumn("Secondary limit", format="%.4f"),
        "limit": st.column_config.NumberColumn("Tolerance limit", format="%.4f"),
        "limits_from": st.column_config.TextColumn("Limits", help="study: set for this study; library: the default"),
        "probability_exceed": st.column_config.NumberColumn("P(exceed)", format="%.3f"),
        "numerator": st.column_config.NumberColumn("Numerator", format="%d"),
        "denominator": st.column_config.NumberColumn("Denominator", format="%d"),
        "note": "Note",
    },
)

st.subheader("Probability of exceeding the tolerance limit")
st.caption("The posterior probability that the true study rate is above the tolerance limit, from a hierarchical "
           "model over the sites (beta-binomial for shares, gamma-Poisson for rates; docs/qtl.md). Unlike the "
           "estimate, it weighs how much data there is: near 1, the limit is very probably exceeded.")
st.plotly_chart(qtl_probability_figure(latest), key="qtl_probability")

st.subheader("One QTL over the data cuts")
names = dict(zip(latest["qtl_id"], latest["name"], strict=True))
qtl = st.selectbox("QTL", list(names), format_func=lambda q: f"{q} · {names[q]}", key="qtl")
trend = analysis.qtl.filter(pl.col("qtl_id") == qtl).sort("cut_date")
st.plotly_chart(qtl_trend_figure(trend), key="qtl_trend")
definition = definitions[qtl]
st.markdown("**Observed minus expected**")
st.caption(f"At each cut, the events observed minus those expected at the expected rate "
           f"({definition.expected_rate:g} {definition.metric_unit}) for the denominator then. The dotted band is "
           "where O - E stays with 98% probability if the true rate is the expected one; the lines are where "
           "the observed rate reaches the secondary and the tolerance limit.")
st.plotly_chart(qtl_oe_figure(qtl_oe_chart(analysis, list(definitions.values()), qtl)), key="qtl_oe")

st.subheader(f"Limits of {qtl}")
user = current_user()
try:
    history = limit_history(store(), user, analysis.study_id, qtl)
except RbqmError as exc:
    st.error(str(exc))
    st.stop()
unit = "" if definition.kind == "binary" else f" {definition.metric_unit}"
row = latest.row(by_predicate=pl.col("qtl_id") == qtl, named=True)
if history:
    last = history[-1]
    st.markdown(f"The study's own limits, set by **{last.actor}** on {last.at:%Y-%m-%d %H:%M} UTC: secondary "
                f"**{definition.secondary_limit:g}**, tolerance **{definition.tolerance_limit:g}**{unit}, expected "
                f"{definition.expected_rate:g}, method {definition.method}. Rationale: {last.reason}")
    st.dataframe(
        pl.DataFrame({
            "at": [e.at.strftime("%Y-%m-%d %H:%M") for e in history], "by": [e.actor for e in history],
            "old": [_limits_text(e.old_value, unit) for e in history],
            "new": [_limits_text(e.new_value, unit) for e in history], "rationale": [e.reason for e in history],
        }),
        hide_index=True, key="qtl_history",
        column_config={"at": "When (UTC)", "by": "By", "old": "Before (secondary / tolerance)",
                       "new": "After (secondary / tolerance)",
                       "rationale": st.column_config.TextColumn("Rationale", width="large")},
    )
elif definition.method == DERIVED:
    st.markdown(f"The library's: {definition.method} derives the limits from the expected rate "
                f"({definition.expected_rate:g}) and the number of subjects (at {cut}: secondary "
                f"{row['secondary_limit'] or 0:.4f}, tolerance {row['limit'] or 0:.4f}). Never changed for this study.")
else:
    st.markdown(f"The library's: secondary **{definition.secondary_limit:g}**, tolerance "
                f"**{definition.tolerance_limit:g}**{unit}, expected {definition.expected_rate:g}, method "
                f"{definition.method}. Never changed for this study.")

if not may(Action.QTL_SET_LIMIT):
    who = " or ".join(ROLE_NAMES.get(role, role).lower() for role in roles_allowed(Action.QTL_SET_LIMIT))
    role = st.session_state["role"]
    st.info(f"Read only. Only the {who} role may change a QTL's limits, with a rationale kept in the audit "
            f"trail; you are signed in as {ROLE_NAMES.get(role, role)}.", icon=":material/lock:")
    st.stop()

methods = [m for m, kind in QTL_METHODS.items() if kind == definition.kind and m != DERIVED]
if definition.method == DERIVED:  # start from the limits derived at the latest cut
    tolerance = row["limit"] or min(0.99, 2 * definition.expected_rate)
    secondary, method = round((definition.expected_rate + tolerance) / 2, 4), "proportion_exact"
    st.caption(f"{qtl} uses {DERIVED}, which derives its own limits; fixed limits need another method "
               "(proportion_exact or beta_binomial).")
else:
    secondary, tolerance, method = definition.secondary_limit, definition.tolerance_limit, definition.method
step = 0.01 if definition.kind == "binary" else 0.05
with st.form("qtl_limits_form"):  # widget keys per QTL: choosing another QTL starts from its limits
    st.markdown(f"**Change the limits of {qtl}** ({names[qtl]}; {definition.metric_unit})")
    left, middle, right = st.columns(3)
    left.number_input("Expected rate", value=float(definition.expected_rate), min_value=0.0, step=step,
                      format="%.4f", key=f"qtl_expected_{qtl}")
    middle.number_input("Secondary limit", value=float(secondary), min_value=0.0, step=step, format="%.4f",
                        key=f"qtl_secondary_{qtl}")
    right.number_input("Tolerance limit", value=float(round(tolerance, 4)), min_value=0.0, step=step,
                       format="%.4f", key=f"qtl_tolerance_{qtl}")
    st.selectbox("Method", methods, index=methods.index(method), key=f"qtl_method_{qtl}")
    st.text_area("Rationale (required; kept in the audit trail with the old and new limits)",
                 key=f"qtl_rationale_{qtl}", height=80)
    if error := st.session_state.pop("qtl_error", None):
        st.error(error)
    st.form_submit_button("Save limits", type="primary", on_click=_save_limits,
                          args=(analysis.study_id, qtl, len(history)))
