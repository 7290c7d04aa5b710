"""Signals and actions: the latest cut's signal work list with its workflow, and the monitoring plan."""

from __future__ import annotations

from datetime import date

import polars as pl
import streamlit as st

from rbqm.errors import RbqmError
from rbqm.permissions import Action
from rbqm.store.signals import SIGNAL_STATUSES, list_signals, sync_signals, update_signal

from auth import current_user, may, require_sign_in, store  # dashboard/auth.py
from data import choose_study, load_analysis, load_signals, load_visit_plan, signal_work_list  # dashboard/data.py

SEVERITY_SHOWN = {"red": "▲▲ red", "amber": "▲ amber"}
FORM_KEYS = ("sig_new_status", "sig_owner", "sig_due", "sig_justification", "sig_comment", "sig_reason")

require_sign_in()
st.title("Signals and actions")
st.caption(
    "Every amber or red KRI flag, QTL limit and central-monitoring finding of the latest data cut is a "
    "signal that needs a documented decision. The work list shows each signal's state across cuts (new, "
    "persisting, escalated…) and its workflow in the store: status, owner and due date; overdue signals "
    "(due date passed, not resolved or closed) come first, marked ⚠. Below, the monitoring plan ranks the "
    "sites for the next on-site visit or remote review from the suggested actions."
)

study = choose_study()
try:
    analysis = load_analysis(study)
    signals = load_signals(study)
except RbqmError as exc:
    st.error(str(exc))
    st.stop()
if signals.is_empty():
    st.info("No signals: nothing is flagged at any data cut of this study.")
    st.stop()

user, editable = current_user(), may(Action.SIGNAL_UPDATE)
cut = max(analysis.cut_dates)
try:
    if editable and st.session_state.get("sig_synced") != (study, cut):  # record new signals once per cut
        sync_signals(store(), user, signals)
        st.session_state["sig_synced"] = (study, cut)
    work = signal_work_list(signals, list_signals(store(), user, study_id=analysis.study_id), date.today())
except RbqmError as exc:
    st.error(str(exc))
    st.stop()

filters = st.columns(3)
statuses = filters[0].multiselect("Status", SIGNAL_STATUSES, key="sig_status", placeholder="All statuses")
severities = filters[1].multiselect("Severity", ["red", "amber"], key="sig_severity", placeholder="All")
kinds = filters[2].multiselect("Kind", ["kri", "qtl", "csm"], key="sig_kind", placeholder="All kinds",
                               format_func=str.upper)
shown = work.filter(
    pl.col("status").is_in(statuses or SIGNAL_STATUSES), pl.col("severity").is_in(severities or ["red", "amber"]),
    pl.col("kind").is_in(kinds or ["kri", "qtl", "csm"]),
)
overdue = int(work["overdue"].sum())
st.subheader(f"{shown.height} of {work.height} signals at {cut}")
if overdue:
    st.warning(f"{overdue} signal{'s are' if overdue > 1 else ' is'} overdue (marked ⚠, listed first).",
               icon=":material/schedule:")
st.dataframe(
    shown.select(
        overdue=pl.when("overdue").then(pl.lit("⚠ overdue")).otherwise(pl.lit("")),
        signal_id="signal_id", severity=pl.col("severity").replace_strict(SEVERITY_SHOWN, default=pl.col("severity")),
        state="state", status="status", owner="owner", due_date="due_date", summary="summary",
        last_comment="last_comment",
    ),
    hide_index=True, key="sig_work_list", height=min(35 * (shown.height + 1) + 3, 600),
    column_config={
        "overdue": st.column_config.TextColumn("", width="small"), "signal_id": "Signal",
        "severity": "Severity", "state": "Across cuts", "status": "Status", "owner": "Owner",
        "due_date": st.column_config.DateColumn("Due"), "summary": st.column_config.TextColumn("Summary", width="large"),
        "last_comment": "Last comment",
    },
)

if saved := st.session_state.pop("sig_saved", None):
    st.success(saved)

st.subheader("Update a signal")
if not editable:
    st.info(f"Your role ({st.session_state['role']}) may view signals but not change them.", icon=":material/lock:")
elif shown.is_empty():
    st.info("No signal matches the filters.")
else:
    def _reset_form() -> None:
        for key in FORM_KEYS:
            st.session_state.pop(key, None)

    chosen = st.selectbox("Signal", shown["signal_id"].to_list(), key="sig_id", on_change=_reset_form)
    row = work.row(by_predicate=pl.col("signal_id") == chosen, named=True)
    with st.form("sig_update"):
        left, middle, right = st.columns(3)
        status = left.selectbox("Status", SIGNAL_STATUSES, index=SIGNAL_STATUSES.index(row["status"]),
                                key="sig_new_status")
        owner = middle.text_input("Owner (a username)", value=row["owner"] or "", key="sig_owner")
        due = right.date_input("Due date", value=row["due_date"], key="sig_due")
        justification = st.text_input("Justification (needed to close without action)", key="sig_justification")
        comment = st.text_area("Comment", key="sig_comment", height=80)
        reason = st.text_input("Reason for the change (kept in the audit trail)", key="sig_reason")
        if st.form_submit_button("Save", type="primary"):
            try:
                update_signal(store(), user, chosen, study_id=analysis.study_id, reason=reason,
                              status=status, owner=owner.strip() or None, due_date=due,
                              justification=justification.strip() or None, comment=comment.strip() or None,
                              expected_version=row["version"])
            except RbqmError as exc:
                st.error(str(exc))
            else:
                st.session_state["sig_saved"] = f"Saved {chosen}."
                _reset_form()
                st.rerun()

st.subheader("Monitoring plan")
st.caption("Sites ranked for the next visit or remote review: a site's priority is the sum of its open signals' "
           "priorities; on-site when an action needs the source (targeted SDV/SDR, for-cause visit).")
try:
    plan = load_visit_plan(study)
except RbqmError as exc:
    st.error(str(exc))
    st.stop()
st.dataframe(
    plan, hide_index=True, key="sig_plan",
    column_config={"rank": "Rank", "site_id": "Site", "visit": "Visit",
                   "priority": st.column_config.NumberColumn("Priority", format="%.2f"),
                   "signals": "Signals", "red": "Red", "actions": st.column_config.TextColumn("Actions", width="large")},
)
