"""Signals and actions: the latest cut's signal work list with its workflow, the actions linked to the
signals, the outcomes of the actioned ones against the field's benchmark, and the monitoring plan."""

from __future__ import annotations

from datetime import date

import polars as pl
import streamlit as st

from rbqm.actions import load_actions as load_action_catalogue
from rbqm.errors import RbqmError
from rbqm.outcomes import signal_outcomes, summarize_outcomes
from rbqm.permissions import Action
from rbqm.signal_workflow import load_workflow
from rbqm.store.actions import OTHER, action_baselines, add_action, list_actions, update_action
from rbqm.store.signals import SIGNAL_STATUSES, list_signals, sync_signals, update_signal

from auth import current_user, may, require_sign_in, store  # dashboard/auth.py
from data import (CLOSED_STATUSES, action_list, choose_study, load_actions, load_analysis,  # dashboard/data.py
                  load_indicator_levels, load_signals, load_visit_plan, signal_work_list)

SEVERITY_SHOWN = {"red": "▲▲ red", "amber": "▲ amber"}
FORM_KEYS = ("sig_new_status", "sig_owner", "sig_due", "sig_justification", "sig_comment", "sig_reason")
ADD_KEYS = ("act_action", "act_description", "act_owner", "act_due", "act_reason")
UPDATE_KEYS = ("act_status", "act_outcome", "act_new_owner", "act_new_due", "act_update_reason")
WORKFLOW = load_workflow()


def _reset(keys: tuple[str, ...]) -> None:
    """Forget a form's widget values (after saving, or when the form shows another object)."""
    for key in keys:
        st.session_state.pop(key, None)


require_sign_in()
st.title("Signals and actions")
st.caption(
    "Every amber or red KRI flag, QTL limit and central-monitoring finding of the latest data cut is a "
    "signal that needs a documented decision. The work list shows each signal's state across cuts (new, "
    "persisting, escalated…) and its workflow in the store: status, owner and due date; overdue signals "
    "(due date passed, not resolved or closed) come first, marked ⚠. Below: the actions planned for the "
    "signals, whether the actioned signals improved at later cuts, and the monitoring plan, which ranks the "
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
        # the current status and those the workflow allows after it (key_risk_indicators/signal_workflow.yaml)
        choices = [row["status"], *WORKFLOW.signal.statuses[row["status"]].next]
        status = left.selectbox("Status", choices, key="sig_new_status",
                                help="Only the statuses the workflow allows next. Closing without action needs a "
                                     "justification (and the quality lead's or admin's role); planning without a "
                                     "linked action creates one from the comment.")
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

st.subheader("Linked actions")
st.caption("What was planned for each signal, by whom and by when (overdue: open and past due, marked ⚠, listed "
           "first). Planning an action moves a new or under-review signal to action planned; starting it moves "
           "the signal to in progress; done or cancelled needs an outcome note.")
try:
    linked = action_list(list_actions(store(), user, study_id=analysis.study_id), date.today())
    catalogue = load_action_catalogue().actions
except RbqmError as exc:
    st.error(str(exc))
    st.stop()
late = int(linked["overdue"].sum())
if late:
    st.warning(f"{late} action{'s are' if late > 1 else ' is'} overdue (marked ⚠, listed first).",
               icon=":material/schedule:")
if act_saved := st.session_state.pop("act_saved", None):
    st.success(act_saved)
if linked.is_empty():
    st.info("No action is linked to a signal of this study yet.")
else:
    st.dataframe(
        linked.select(overdue=pl.when("overdue").then(pl.lit("⚠ overdue")).otherwise(pl.lit("")), id="id",
                      signal_id="signal_id", action=pl.col("action").replace_strict(catalogue, default="Other"),
                      description="description", owner="owner", due_date="due_date", status="status",
                      outcome="outcome", planned_cut="planned_cut"),
        hide_index=True, key="act_list",
        column_config={"overdue": st.column_config.TextColumn("", width="small"), "id": "#", "signal_id": "Signal",
                       "action": "Action", "description": st.column_config.TextColumn("What", width="large"),
                       "owner": "Owner", "due_date": st.column_config.DateColumn("Due"), "status": "Status",
                       "outcome": "Outcome", "planned_cut": st.column_config.DateColumn("Planned at cut")},
    )

open_ids = work.filter(~pl.col("status").is_in(CLOSED_STATUSES))["signal_id"].to_list()
if editable and open_ids:
    target = st.selectbox("Plan an action for", open_ids, key="act_signal", on_change=_reset, args=(ADD_KEYS,))
    try:
        suggested = load_actions(study).filter(pl.col("signal_id") == target)
    except RbqmError as exc:
        st.error(str(exc))
        st.stop()
    where = dict(suggested.select("action", "where_to_look").rows())
    with st.form("act_add"):
        what = st.selectbox("Action", [*suggested["action"].to_list(), OTHER], key="act_action",
                            format_func=lambda a: f"{catalogue.get(a, 'Other (describe it below)')}"
                            f"{' (suggested)' if a in where else ''}")
        description = st.text_area("What exactly (blank: where the suggestion says to look)", key="act_description",
                                   height=80)
        left, right = st.columns(2)
        owner = left.text_input("Owner (a username)", key="act_owner")
        due = right.date_input("Due date", value=None, key="act_due")
        reason = st.text_input("Reason (kept in the audit trail)", key="act_reason")
        if st.form_submit_button("Plan the action", type="primary"):
            try:
                added = add_action(store(), user, target, study_id=analysis.study_id, action=what,
                                   description=description.strip() or where.get(what), owner=owner.strip() or None,
                                   due_date=due, reason=reason)
            except RbqmError as exc:
                st.error(str(exc))
            else:
                st.session_state["act_saved"] = f"Planned action #{added.id} for {target}."
                _reset(ADD_KEYS)
                st.rerun()

if editable and not linked.is_empty():
    labels = {r["id"]: f"#{r['id']} {r['signal_id']}: {r['description'][:60]}" for r in linked.iter_rows(named=True)}
    picked = st.selectbox("Update an action", list(labels), format_func=labels.get, key="act_id",
                          on_change=_reset, args=(UPDATE_KEYS,))
    current = linked.row(by_predicate=pl.col("id") == picked, named=True)
    with st.form("act_update"):
        left, middle, right = st.columns(3)
        new_status = left.selectbox("Status", [current["status"], *WORKFLOW.actions.statuses[current["status"]].next],
                                    key="act_status")
        new_owner = middle.text_input("Owner", value=current["owner"] or "", key="act_new_owner")
        new_due = right.date_input("Due date", value=current["due_date"], key="act_new_due")
        outcome = st.text_input("Outcome note (needed for done and cancelled)", value=current["outcome"] or "",
                                key="act_outcome")
        reason = st.text_input("Reason (kept in the audit trail)", key="act_update_reason")
        if st.form_submit_button("Save the action"):
            try:
                update_action(store(), user, picked, reason=reason, status=new_status,
                              owner=new_owner.strip() or None, due_date=new_due, outcome=outcome.strip() or None,
                              expected_version=current["version"])
            except RbqmError as exc:
                st.error(str(exc))
            else:
                st.session_state["act_saved"] = f"Saved action #{picked}."
                _reset(UPDATE_KEYS)
                st.rerun()

st.subheader("Outcomes")
try:
    outcomes = signal_outcomes(analysis, action_baselines(store(), user, study_id=analysis.study_id),
                               levels=load_indicator_levels(study))
except RbqmError as exc:
    st.error(str(exc))
    st.stop()
summary = summarize_outcomes(outcomes)
share = summary.share_improved
columns = st.columns(3)
columns[0].metric("Improved after action", "n/a" if share is None else f"{share:.0%}",
                  delta=None if share is None else f"{100 * (share - summary.benchmark):+.0f} points vs "
                                                   f"{summary.benchmark:.0%} benchmark")
columns[1].metric("Assessed", summary.assessed, help="Actioned signals with a later cut to compare with.")
columns[2].metric("Too early", summary.too_early, help="Actioned at the latest cut: no later cut yet.")
st.caption(f"An actioned signal improved when its flag's severity fell (or it is no longer flagged) at the latest "
           f"cut, or its score moved toward normal by at least the margin (KRI 1 z unit, CSM a tenfold q, QTL a "
           f"tenth of the limit); it is compared with the cut at which it was first actioned. Benchmark: "
           f"{summary.benchmark_source}.")
if not outcomes.is_empty():
    st.dataframe(outcomes.select("signal_id", "planned_cut", "compared_cut", "outcome", "note"), hide_index=True,
                 key="sig_outcomes",
                 column_config={"signal_id": "Signal", "planned_cut": st.column_config.DateColumn("Actioned at cut"),
                                "compared_cut": st.column_config.DateColumn("Compared at cut"),
                                "outcome": "Outcome", "note": st.column_config.TextColumn("Why", width="large")})

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
