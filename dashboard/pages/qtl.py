"""Quality tolerance limits: status at the latest cut, the probability of exceeding each limit, one QTL
over the cuts (estimate and observed minus expected), the study's own limits with their history, and the
breaches: their evaluation, sign-off and the breach log (CSV and the study report's section)."""

from __future__ import annotations

import json

import polars as pl
import streamlit as st

from rbqm.errors import RbqmError
from rbqm.permissions import Action, roles_allowed
from rbqm.qtl import QTL_METHODS, breach_log_markdown
from rbqm.store import ConflictError
from rbqm.store.qtl import (
    evaluate_breach, limit_history, list_breaches, pending_breaches, set_limit, sign_off_breach, sync_breaches,
)

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


def _evaluate(breach_id: int, version: int) -> None:
    """The evaluation form's submit: ``rbqm.store.qtl.evaluate_breach`` (permission, checks and audit record
    there) with the version of the breach when the form was drawn."""
    state = st.session_state
    systemic = state[f"qtl_systemic_{breach_id}"]
    if systemic is None:
        state["qtl_eval_error"] = "Say whether the issue is systemic: it is part of the documented assessment."
        return
    try:
        row = evaluate_breach(store(), current_user(), breach_id, systemic=systemic,
                              root_cause=state[f"qtl_root_cause_{breach_id}"], capa=state[f"qtl_capa_{breach_id}"],
                              reason=state[f"qtl_eval_reason_{breach_id}"], expected_version=version)
    except RbqmError as exc:
        state["qtl_eval_error"] = str(exc)
        return
    state["qtl_breach_saved"] = (f"Saved the evaluation of breach #{breach_id} ({row['qtl_id']}): "
                                 f"{'systemic' if systemic else 'not systemic'}. It awaits sign-off by a quality lead.")
    state[f"qtl_eval_reason_{breach_id}"] = ""


def _sign_off(versions: dict[int, int]) -> None:
    """The sign-off form's submit: ``rbqm.store.qtl.sign_off_breach`` (refused there unless the breach is
    evaluated and the user may sign off) with the version of the breach when the form was drawn."""
    state = st.session_state
    breach_id = state["qtl_sign_breach"]
    try:
        row = sign_off_breach(store(), current_user(), breach_id, reason=state["qtl_sign_reason"],
                              expected_version=versions[breach_id])
    except RbqmError as exc:
        state["qtl_sign_error"] = str(exc)
        return
    state["qtl_breach_saved"] = f"Signed off breach #{breach_id} ({row['qtl_id']})."
    state["qtl_sign_reason"] = ""


def _sync_breaches(study_id: str, frame: pl.DataFrame) -> list[int]:
    """Open an evaluation for every new breach in ``frame`` (the analysis' QTLs, with the study's limits)."""
    try:
        return sync_breaches(store(), current_user(), study_id, frame)
    except ConflictError:  # another session opened the same breaches at the same moment: the log has them
        return []


def _who(action: Action) -> str:
    return " or ".join(ROLE_NAMES.get(role, role).lower() for role in roles_allowed(action))


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
    "exceeds the tolerance limit. Below: one QTL over the data cuts, its observed minus expected events, its "
    "limits with every change and rationale, and the breaches: each calls for a documented evaluation, corrective "
    "action and a quality lead's sign-off."
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

role_name = ROLE_NAMES.get(st.session_state["role"], st.session_state["role"])
if not may(Action.QTL_SET_LIMIT):
    st.info(f"Read only. Only the {_who(Action.QTL_SET_LIMIT)} role may change a QTL's limits, with a rationale "
            f"kept in the audit trail; you are signed in as {role_name}.", icon=":material/lock:")
else:
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

st.subheader("Breaches")
st.caption("A run of data cuts at which a QTL breaches its tolerance limit opens an evaluation, dated at the run's "
           "first cut with the evidence of that cut. It needs a documented assessment (systemic or not, root cause) "
           "and a corrective and preventive action (CAPA), then the sign-off of a quality lead: open → evaluated → "
           "signed off, each step kept in the audit trail. The breach log downloads as CSV and as the study "
           "report's \"Important QTL deviations\" section (ICH E3 9.6).")
study_id = analysis.study_id
try:
    pending = pending_breaches(store(), study_id, analysis.qtl)
    opened = _sync_breaches(study_id, analysis.qtl) if pending.height and may(Action.QTL_EVALUATE) else []
    log = list_breaches(store(), user, study_id)
except RbqmError as exc:
    st.error(str(exc))
    st.stop()
if opened:
    st.info(f"Opened an evaluation for {len(opened)} new breach(es): "
            f"{', '.join(f'{q} at {c}' for q, c in zip(pending['qtl_id'], pending['cut_date'], strict=True))}.",
            icon=":material/flag:")
elif pending.height and not may(Action.QTL_EVALUATE):  # say what is missing from the log, and who records it
    st.warning(f"{pending.height} breach(es) in the analysis are not in the breach log yet "
               f"({', '.join(f'{q} at {c}' for q, c in zip(pending['qtl_id'], pending['cut_date'], strict=True))}): "
               f"they are recorded when a {_who(Action.QTL_EVALUATE)} opens this page (or with "
               "`rbqm qtl breaches STUDY_DIR --sync`).", icon=":material/flag:")
if saved := st.session_state.pop("qtl_breach_saved", None):
    st.success(saved, icon=":material/check:")
if log.is_empty():
    st.info(f"No breach recorded for {study_id}: no QTL has been at \"tolerance limit breached\" at a data cut "
            "with the limits in effect.")
    st.stop()

st.dataframe(
    log.with_columns(name=pl.col("qtl_id").replace_strict(names, default=pl.col("qtl_id")),
                     status_shown=pl.col("status").str.replace("_", " "),
                     systemic_shown=pl.when(pl.col("systemic")).then(pl.lit("yes"))
                     .when(~pl.col("systemic")).then(pl.lit("no")))
    .select("breach_id", "qtl_id", "name", "status_shown", "first_cut", "estimate", "lower", "upper",
            "secondary_limit", "limit", "probability_exceed", "method", "systemic_shown", "root_cause", "capa",
            "assessed_by", "assessed_at", "signed_off_by", "signed_off_at"),
    hide_index=True, key="qtl_breaches",
    column_config={
        "breach_id": st.column_config.NumberColumn("#", format="%d"), "qtl_id": "QTL", "name": "Parameter",
        "status_shown": "Status",
        "first_cut": st.column_config.DateColumn("Detected at cut", help="the first cut of the breached run"),
        "estimate": st.column_config.NumberColumn("Estimate", format="%.4f", help="at detection"),
        "lower": st.column_config.NumberColumn("Interval low", format="%.4f"),
        "upper": st.column_config.NumberColumn("Interval high", format="%.4f"),
        "secondary_limit": st.column_config.NumberColumn("Secondary limit", format="%.4f"),
        "limit": st.column_config.NumberColumn("Tolerance limit", format="%.4f"),
        "probability_exceed": st.column_config.NumberColumn("P(exceed)", format="%.3f"),
        "method": "Method", "systemic_shown": "Systemic",
        "root_cause": st.column_config.TextColumn("Root cause", width="large"),
        "capa": st.column_config.TextColumn("CAPA", width="large", help="corrective and preventive action"),
        "assessed_by": "Assessed by", "assessed_at": st.column_config.DatetimeColumn("Assessed (UTC)"),
        "signed_off_by": "Signed off by", "signed_off_at": st.column_config.DatetimeColumn("Signed off (UTC)"),
    },
)
report_section = breach_log_markdown(log, definitions=list(definitions.values()), study_id=study_id)
left, right = st.columns(2)
left.download_button("Breach log (CSV)", log.write_csv(), file_name=f"{study_id}-qtl-breaches.csv", mime="text/csv",
                     key="qtl_breaches_csv", icon=":material/download:")
right.download_button("Study report section (Markdown)", report_section,
                      file_name=f"{study_id}-important-qtl-deviations.md", mime="text/markdown",
                      key="qtl_breaches_md", icon=":material/download:")
with st.expander("The study report's section"):
    st.markdown(report_section)

unsigned = log.filter(pl.col("status") != "signed_off")
labels = {r["breach_id"]: f"#{r['breach_id']} · {r['qtl_id']} {names.get(r['qtl_id'], '')} · detected "
          f"{r['first_cut']} · {r['status'].replace('_', ' ')}" for r in unsigned.iter_rows(named=True)}
versions = dict(zip(unsigned["breach_id"], unsigned["version"], strict=True))
refused = [f"{what} ({_who(action)})" for action, what in ((Action.QTL_EVALUATE, "evaluate a breach"),
                                                            (Action.QTL_SIGN_OFF, "sign one off")) if not may(action)]
if refused:
    st.info(f"You are signed in as {role_name}: only these roles may {' and '.join(refused)}; the store refuses "
            "the change to anyone else.", icon=":material/lock:")
if not labels:
    st.caption("Every breach is signed off: nothing left to evaluate.")
    st.stop()

if may(Action.QTL_EVALUATE):
    st.markdown("**Evaluate a breach**")
    chosen = st.selectbox("Breach", list(labels), format_func=labels.get, key="qtl_eval_breach")
    current = unsigned.row(by_predicate=pl.col("breach_id") == chosen, named=True)
    with st.form("qtl_evaluate_form"):  # widget keys per breach: another breach starts from its own evaluation
        st.radio("Is the issue systemic?", [True, False], format_func=lambda v: "systemic" if v else
                 "not systemic (isolated)", index=None if current["systemic"] is None else int(not current["systemic"]),
                 horizontal=True, key=f"qtl_systemic_{chosen}")
        st.text_area("Root cause (required)", value=current["root_cause"] or "", key=f"qtl_root_cause_{chosen}",
                     height=80)
        st.text_area("Corrective and preventive action (required)", value=current["capa"] or "",
                     key=f"qtl_capa_{chosen}", height=80)
        st.text_input("Reason (required; kept in the audit trail)", key=f"qtl_eval_reason_{chosen}",
                      placeholder="e.g. QTL review meeting of 3 March")
        if error := st.session_state.pop("qtl_eval_error", None):
            st.error(error)
        st.form_submit_button("Save the evaluation", type="primary", on_click=_evaluate,
                              args=(chosen, current["version"]))

if may(Action.QTL_SIGN_OFF):
    st.markdown("**Sign off a breach**")
    st.caption("Only an evaluated breach can be signed off; the sign-off closes its evaluation for good.")
    with st.form("qtl_sign_off_form"):
        st.selectbox("Breach", list(labels), format_func=labels.get, key="qtl_sign_breach")
        st.text_input("Reason (required; kept in the audit trail)", key="qtl_sign_reason",
                      placeholder="e.g. QTL review board of 10 March")
        if error := st.session_state.pop("qtl_sign_error", None):
            st.error(error)
        st.form_submit_button("Sign off", type="primary", on_click=_sign_off, args=(versions,))
