"""Risk assessment: the study's risk register (RACT-style scores, each risk's indicators at the latest cut),
the overall study risk, the gaps, the review of re-scoring proposals, and changes to the register."""

from __future__ import annotations

import polars as pl
import streamlit as st

from rbqm.errors import RbqmError
from rbqm.permissions import Action, roles_allowed
from rbqm.risk import assess_risks, flat_register, load_risk_register, review_queue
from rbqm.risk_export import workbook_bytes
from rbqm.store.risks import decide_proposal, import_template, list_decisions, list_risks, study_register, update_risk

from auth import ROLE_NAMES, current_user, may, require_sign_in, store  # dashboard/auth.py
from data import analysis_or_stop, choose_study  # dashboard/data.py

LEVEL_SHOWN = {"low": "● low", "medium": "▲ medium", "high": "▲▲ high"}
DIRECTION_SHOWN = {"raise": "↑ raise", "lower": "↓ lower"}
RATING_HELP = {"impact": "1 low, 2 medium, 3 high: how much harm to subjects or the results if it happens",
               "likelihood": "1 unlikely, 2 possible, 3 likely",
               "detectability": "1 easy to detect, 2 medium, 3 hard to detect (a higher score is worse)"}
EDIT_KEYS = ("risk_edit_impact", "risk_edit_likelihood", "risk_edit_detectability", "risk_edit_owner",
             "risk_edit_rationale", "risk_edit_controls", "risk_edit_reason")
REVIEW_KEYS = ("risk_rev_decision", "risk_rev_reason")


def _forget(keys: tuple[str, ...]) -> None:
    for key in keys:
        st.session_state.pop(key, None)


def _shown(column: str, mapping: dict[str, str]) -> pl.Expr:
    return pl.col(column).replace_strict(mapping, default=pl.col(column))


def _who(action: Action) -> str:
    return " or ".join(ROLE_NAMES.get(role, role).lower() for role in roles_allowed(action))


require_sign_in()
st.title("Risk assessment")
st.caption(
    "The study's critical-to-quality risks (ICH E8(R1) factors), each scored impact × likelihood × detectability "
    "(1-3 each, so 1-27; low below 8, medium 8-17, high from 18), with its owner, planned controls and the KRIs, "
    "QTLs and central-monitoring tests that watch it, in words at the latest data cut. The overall study risk is "
    "the weighted mean of the categories' highest scores. At each cut the review proposes raising a likelihood "
    "when the evidence persists or is broad, or lowering it after quiet cuts (docs/risk.md); the quality lead "
    "accepts or rejects each with a reason. Every change is kept in the audit trail."
)

study = choose_study()
analysis = analysis_or_stop(study)
user, can_edit, can_review = current_user(), may(Action.RISK_EDIT), may(Action.RISK_REVIEW)
study_id = analysis.study_id
try:
    stored = study_register(store(), user, study_id)
    versions = {r.risk.id: r.version for r in list_risks(store(), user, study_id)}
    decisions = list_decisions(store(), user, study_id)
    report = assess_risks(stored or load_risk_register(), analysis)
except RbqmError as exc:
    st.error(str(exc))
    st.stop()
queue = review_queue(report.proposals, decisions, report.cut_date)
pending = queue.filter(pl.col("decision").is_null())

if saved := st.session_state.pop("risk_saved", None):
    st.success(saved, icon=":material/check:")
if not (can_edit and can_review):
    role = st.session_state["role"]
    st.info(f"Read only. Only the {_who(Action.RISK_EDIT)} role may change the register or decide the review "
            f"proposals, with a reason kept in the audit trail; you are signed in as {ROLE_NAMES.get(role, role)}.",
            icon=":material/lock:")

register = report.register
high = register.filter(pl.col("level") == "high").height
cards = st.columns(4)
cards[0].metric("Overall study risk", LEVEL_SHOWN[report.study.level],
                help=f"Weighted score {report.study.score:.2f} of 27 at {report.cut_date}")
cards[1].metric("Risks", register.height, f"{high} high", delta_color="off")
cards[2].metric("Review proposals", queue.height, f"{pending.height} to decide", delta_color="off")
cards[3].metric("Gaps", report.gaps.height, help="Risks without an indicator, and indicators that control no risk")

# --- the register ---------------------------------------------------------------------------------------
if stored is None:
    st.subheader(f"Register: the library template (at {report.cut_date})")
    st.warning("This study has no register of its own yet, so the library's typical risks are shown. Start the "
               "study's register from them to edit risks and decide proposals.", icon=":material/info:")
    if can_edit:
        with st.form("risk_import"):
            reason = st.text_input("Reason (kept in the audit trail)", value="started from the library template",
                                   key="risk_import_reason")
            if st.form_submit_button("Start the study's register from the template", type="primary"):
                try:
                    added = import_template(store(), user, study_id, load_risk_register(), reason=reason)
                except RbqmError as exc:
                    st.error(str(exc))
                else:
                    st.session_state["risk_saved"] = f"Started {study_id}'s register with {len(added)} risks."
                    st.rerun()
else:
    st.subheader(f"Register of {study_id} (at {report.cut_date})")

flat = flat_register(report)
st.dataframe(
    flat.select("risk_id", "name", "factor", "impact", "likelihood", "detectability", "score",
                level=_shown("level", LEVEL_SHOWN), owner="owner", controls="controls", indicators="indicators",
                status="status", rationale="rationale"),
    hide_index=True, key="risk_register",
    column_config={
        "risk_id": "Risk", "name": st.column_config.TextColumn("Name", width="medium"), "factor": "CtQ factor",
        "impact": st.column_config.NumberColumn("I", help=RATING_HELP["impact"]),
        "likelihood": st.column_config.NumberColumn("L", help=RATING_HELP["likelihood"]),
        "detectability": st.column_config.NumberColumn("D", help=RATING_HELP["detectability"]),
        "score": st.column_config.NumberColumn("Score", help="impact × likelihood × detectability"),
        "level": "Level", "owner": "Owner", "controls": st.column_config.TextColumn("Planned controls", width="large"),
        "indicators": "Indicators",
        "status": st.column_config.TextColumn(f"Indicators at {report.cut_date}", width="large"),
        "rationale": st.column_config.TextColumn("Rationale", width="large"),
    },
)
downloads = st.columns([1, 1, 4])
downloads[0].download_button("Register (CSV)", flat.write_csv(), file_name=f"{study_id}-risk-register.csv",
                             mime="text/csv", key="risk_csv", icon=":material/download:")
downloads[1].download_button(
    "Risk assessment (Excel)", workbook_bytes(report, decisions=decisions if stored is not None else None),
    file_name=f"{study_id}-risk-assessment.xlsx", key="risk_xlsx", icon=":material/download:",
    mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

with st.expander("Study risk by critical-to-quality factor"):
    st.dataframe(report.study.categories.with_columns(level=_shown("level", LEVEL_SHOWN)), hide_index=True,
                 key="risk_categories",
                 column_config={"category": "Category", "name": "CtQ factor", "weight": "Weight", "risks": "Risks",
                                "score": st.column_config.NumberColumn("Score", help="The highest score of its risks"),
                                "level": "Level"})

# --- gaps ----------------------------------------------------------------------------------------------------
st.subheader("Gaps")
left, right = st.columns(2)
for column, gap, title, empty in (
        (left, "risk without indicator", "Risks that no indicator watches", "Every risk has an indicator."),
        (right, "indicator without risk", "Indicators that control no risk", "Every indicator controls a risk.")):
    rows = report.gaps.filter(pl.col("gap") == gap).select("id", "name")
    column.markdown(f"**{title}** ({rows.height})")
    if rows.is_empty():
        column.caption(empty)
    else:
        column.dataframe(rows, hide_index=True, key=f"risk_gaps_{gap[:4]}",
                         column_config={"id": "Id", "name": st.column_config.TextColumn("Name", width="large")})

# --- review -------------------------------------------------------------------------------------------------
st.subheader(f"Review at {report.cut_date}")
rule = report.rule
st.caption(f"Raise a likelihood when the risk's indicators give evidence (a KRI red, a central-monitoring finding, or "
           f"{rule.amber_indicators} of its indicators amber at a site) at {rule.min_sites} or more sites at each of "
           f"the last {rule.persist_cuts} cuts, at {rule.burst_sites} or more at this cut, or a QTL is breached; "
           f"lower it after {rule.quiet_cuts} cuts without any flag (key_risk_indicators/risk_review.yaml).")
if queue.is_empty():
    st.info("No proposal at this cut: the evidence agrees with the register.")
else:
    st.dataframe(
        queue.select(
            "risk_id", "name", direction=_shown("direction", DIRECTION_SHOWN),
            likelihood=pl.format("{} → {}", "likelihood", "proposed_likelihood"),
            score=pl.format("{} → {}", "score", "proposed_score"),
            level=pl.format("{} → {}", "level", "proposed_level"),
            decision=pl.when(pl.col("decision").is_null()).then(pl.lit("to decide"))
            .otherwise(pl.format("{} by {}: {}", "decision", "decided_by", "reason")),
            evidence="evidence", earlier="earlier"),
        hide_index=True, key="risk_proposals",
        column_config={"risk_id": "Risk", "name": "Name", "direction": "Proposal", "likelihood": "Likelihood",
                       "score": "Score", "level": "Level", "decision": st.column_config.TextColumn("Decision"),
                       "evidence": st.column_config.TextColumn("Evidence", width="large"),
                       "earlier": st.column_config.TextColumn("Earlier decision", width="medium")},
    )
    if stored is None:
        st.caption("Proposals are decided on the study's own register: start it from the template above.")
    elif can_review and not pending.is_empty():
        names = dict(zip(pending["risk_id"], pending["name"], strict=True))
        chosen = st.selectbox("Proposal to decide", list(names), format_func=lambda r: f"{r} · {names[r]}",
                              key="risk_rev_id", on_change=_forget, args=(REVIEW_KEYS,))
        row = pending.row(by_predicate=pl.col("risk_id") == chosen, named=True)
        st.dataframe(report.history.filter(pl.col("risk_id") == chosen).select(
            "cut_date", "computed", "n_flagged_sites", "n_evidence_sites", pl.col("evidence_sites").list.join(", "),
            "qtl_level"), hide_index=True, key="risk_rev_history",
            column_config={"cut_date": "Cut", "computed": "Indicators computed", "n_flagged_sites": "Sites flagged",
                           "n_evidence_sites": "Sites with evidence", "evidence_sites": "Evidence at",
                           "qtl_level": st.column_config.NumberColumn(
                               "QTL", help="0 within limits, 1 secondary limit crossed, 2 tolerance limit breached")})
        with st.form("risk_review"):
            st.markdown(f"**{DIRECTION_SHOWN[row['direction']]} the likelihood of {chosen}** from {row['likelihood']} "
                        f"to {row['proposed_likelihood']} (score {row['score']} → {row['proposed_score']})")
            accept = st.radio("Decision", ["Accept", "Reject"], horizontal=True, key="risk_rev_decision") == "Accept"
            reason = st.text_area("Reason (required; kept in the audit trail with the evidence)", key="risk_rev_reason",
                                  height=80)
            if st.form_submit_button("Record the decision", type="primary"):
                try:
                    done = decide_proposal(store(), user, study_id, chosen, cut_date=report.cut_date,
                                           proposed_likelihood=row["proposed_likelihood"], evidence=row["evidence"],
                                           accept=accept, reason=reason, expected_version=versions.get(chosen))
                except RbqmError as exc:
                    st.error(str(exc))
                else:
                    st.session_state["risk_saved"] = (
                        f"{chosen}: proposal {'accepted' if accept else 'rejected'}; likelihood "
                        f"{done.risk.likelihood}, score {done.risk.score}.")
                    _forget(REVIEW_KEYS)
                    st.rerun()

# --- editing a risk ---------------------------------------------------------------------------------------------
if stored is not None and can_edit:
    st.subheader("Change a risk")
    by_id = {r.id: r for r in stored.risks}
    chosen = st.selectbox("Risk", list(by_id), format_func=lambda r: f"{r} · {by_id[r].name}", key="risk_edit_id",
                          on_change=_forget, args=(EDIT_KEYS,))
    risk = by_id[chosen]
    with st.form("risk_edit"):
        ratings = st.columns(3)
        values = {name: ratings[i].selectbox(name.capitalize(), [1, 2, 3], index=getattr(risk, name) - 1,
                                             help=RATING_HELP[name], key=f"risk_edit_{name}")
                  for i, name in enumerate(("impact", "likelihood", "detectability"))}
        owner = st.text_input("Owner", value=risk.owner or "", key="risk_edit_owner")
        rationale = st.text_area("Rationale", value=risk.rationale, key="risk_edit_rationale", height=80)
        controls = st.text_area("Planned controls (one per line)", value="\n".join(risk.controls),
                                key="risk_edit_controls", height=100)
        reason = st.text_input("Reason for the change (kept in the audit trail)", key="risk_edit_reason")
        if st.form_submit_button("Save", type="primary"):
            try:
                done = update_risk(store(), user, study_id, chosen, reason=reason, expected_version=versions[chosen],
                                   owner=owner.strip() or None, rationale=rationale.strip(),
                                   controls=[c.strip() for c in controls.splitlines() if c.strip()], **values)
            except RbqmError as exc:
                st.error(str(exc))
            else:
                st.session_state["risk_saved"] = (f"Saved {chosen}: score {done.risk.score} (version {done.version}).")
                _forget(EDIT_KEYS)
                st.rerun()
