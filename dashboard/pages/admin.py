"""Users and roles: the store's accounts, adding and changing them (admins), and the audit trail.

Every change goes through ``rbqm.store.users`` (which checks the permission and writes the audit
record); the page only hides what the signed-in role may not do. ``app.py`` lists this page only for
roles with ``user.view``; a session without it that reaches the file anyway sees "not permitted".
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import polars as pl
import streamlit as st

from rbqm.errors import RbqmError
from rbqm.permissions import Action, Role, roles_allowed
from rbqm.store import AuditChainError, users
from rbqm.store.audit import verify_chain

from auth import ROLE_NAMES, current_user, may, require_sign_in, store  # dashboard/auth.py
from data import audit_trail, filter_audit  # dashboard/data.py

GENERATE, TYPE = "Generate one (shown once)", "Type one"
ROLES = list(Role)


def _role_name(role: Role | str) -> str:
    return ROLE_NAMES.get(str(role), str(role))


def _who(action: Action) -> str:
    return " or ".join(_role_name(role).lower() for role in roles_allowed(action))


def _password(mode: str, typed: str) -> str:
    """A new random password (20 URL-safe characters) or the one typed."""
    return secrets.token_urlsafe(15) if mode == GENERATE else typed


# The forms' submits are callbacks: they run before the page is drawn again, so the page shows the change
# and a form can be reset. ``versions`` are the accounts' versions when the form was drawn: a change made
# meanwhile by someone else is refused (ConflictError) instead of overwritten.

def _apply(form: str, change: Callable[[Any], users.UserInfo], message: Callable[[users.UserInfo], str],
           reset: dict[str, Any], password: str | None = None) -> None:
    """Run one account change in a store write transaction (``change`` gets the session); keep the message
    (or the error) for the next run and reset the form's fields to ``reset``."""
    state = st.session_state
    try:
        with store().write() as session:
            info = change(session)
    except RbqmError as exc:
        state[f"{form}_error"] = str(exc)
        return
    state["adm_saved"] = message(info)
    if password is not None:  # generated: shown once, on the next run
        state["adm_new_password"] = (info.username, password)
    state.update(reset)


def _add() -> None:
    state = st.session_state
    password = _password(state["adm_add_mode"], state["adm_add_password"])
    _apply("adm_add",
           lambda session: users.add_user(session, current_user(), state["adm_add_user"].strip(),
                                          role=state["adm_add_role"], password=password,
                                          reason=state["adm_add_reason"]),
           lambda info: f"Added {info.username} ({_role_name(info.role)}).",
           {"adm_add_user": "", "adm_add_password": "", "adm_add_reason": "account created"},
           password if state["adm_add_mode"] == GENERATE else None)


def _set_role(versions: dict[str, int]) -> None:
    state, target = st.session_state, st.session_state["adm_role_user"]
    _apply("adm_role",
           lambda session: users.set_role(session, current_user(), target, state["adm_role_role"],
                                          reason=state["adm_role_reason"], expected_version=versions.get(target)),
           lambda info: f"{info.username} is now {_role_name(info.role)}.", {"adm_role_reason": ""})


def _set_active(versions: dict[str, int], active: bool) -> None:
    state, target = st.session_state, st.session_state["adm_status_user"]
    change = users.enable_user if active else users.disable_user
    _apply("adm_status",
           lambda session: change(session, current_user(), target, reason=state["adm_status_reason"],
                                  expected_version=versions.get(target)),
           lambda info: f"{info.username} is {'enabled' if active else 'disabled'}"
                        + (" (no change)." if versions.get(target) == info.version else "."),
           {"adm_status_reason": ""})


def _reset_password(versions: dict[str, int]) -> None:
    state, target = st.session_state, st.session_state["adm_pw_user"]
    password = _password(state["adm_pw_mode"], state["adm_pw_password"])
    _apply("adm_password",
           lambda session: users.set_password(session, current_user(), target, password=password,
                                              reason=state["adm_pw_reason"], expected_version=versions.get(target)),
           lambda info: f"Set a new password for {info.username}.",
           {"adm_pw_password": "", "adm_pw_reason": "password reset"},
           password if state["adm_pw_mode"] == GENERATE else None)


def _form_error(form: str) -> None:
    if error := st.session_state.pop(f"{form}_error", None):
        st.error(error)


require_sign_in()
st.title("Users and roles")
st.caption(
    "The accounts of the rbqm store, their roles and whether they may sign in; below, the audit trail of every "
    "change to the store (who, when, what, old and new value, why). Admins add accounts, change roles, "
    "disable or enable accounts and reset passwords; every change needs a reason and is recorded in the "
    "audit trail. An account is never deleted, only disabled, so its history stays readable."
)
if not may(Action.USER_VIEW):
    st.warning(f"Not permitted: only the {_who(Action.USER_VIEW)} role may see the accounts.",
               icon=":material/block:")
    st.stop()

user = current_user()
if saved := st.session_state.pop("adm_saved", None):
    st.success(saved, icon=":material/check:")
if shown := st.session_state.pop("adm_new_password", None):
    st.warning(f"The password of **{shown[0]}**, shown only this once: give it to them through a safe channel. "
               "rbqm keeps only its hash.", icon=":material/key:")
    st.code(shown[1], language=None)

try:
    with store().read() as session:
        accounts = users.list_users(session, user)
except RbqmError as exc:
    st.error(str(exc))
    st.stop()
versions = {a.username: a.version for a in accounts}
status = {a.username: a.active for a in accounts}

st.subheader(f"{len(accounts)} accounts")
st.dataframe(
    pl.DataFrame(
        {"username": [a.username for a in accounts], "role": [_role_name(a.role) for a in accounts],
         "status": ["● active" if a.active else "○ disabled" for a in accounts],
         "version": [a.version for a in accounts], "created": [a.created_at for a in accounts],
         "updated": [a.updated_at for a in accounts], "password_changed": [a.password_changed_at for a in accounts]},
        schema={"username": pl.String, "role": pl.String, "status": pl.String, "version": pl.Int64,
                "created": pl.Datetime("us", "UTC"), "updated": pl.Datetime("us", "UTC"),
                "password_changed": pl.Datetime("us", "UTC")},
    ),
    hide_index=True, key="adm_accounts",
    column_config={"username": "Username", "role": "Role", "status": "Status", "version": "Version",
                   "created": st.column_config.DatetimeColumn("Created (UTC)", format="YYYY-MM-DD HH:mm"),
                   "updated": st.column_config.DatetimeColumn("Last change (UTC)", format="YYYY-MM-DD HH:mm"),
                   "password_changed": st.column_config.DatetimeColumn("Password set (UTC)",
                                                                       format="YYYY-MM-DD HH:mm")},
)

if not may(Action.USER_ADD):
    st.info(f"Read only: only the {_who(Action.USER_ADD)} role may add or change accounts; you are signed in as "
            f"{_role_name(st.session_state['role'])}.", icon=":material/lock:")
else:
    names = [a.username for a in accounts]
    add, role_tab, status_tab, password_tab = st.tabs(["Add an account", "Change a role", "Disable or enable",
                                                       "Reset a password"])
    with add, st.form("adm_add"):
        left, right = st.columns(2)
        left.text_input("Username", key="adm_add_user", help="1 to 64 letters, digits, '.', '_', '@' or '-'.")
        right.selectbox("Role", ROLES, format_func=_role_name, key="adm_add_role")
        left.radio("Password", [GENERATE, TYPE], key="adm_add_mode", horizontal=True)
        right.text_input("Password (when typed; at least 12 characters)", type="password", key="adm_add_password",
                         autocomplete="new-password")
        st.text_input("Reason (kept in the audit trail)", value="account created", key="adm_add_reason")
        _form_error("adm_add")
        st.form_submit_button("Add account", type="primary", on_click=_add)

    with role_tab, st.form("adm_role"):
        left, right = st.columns(2)
        left.selectbox("Account", names, key="adm_role_user")
        right.selectbox("New role", ROLES, format_func=_role_name, key="adm_role_role")
        st.text_input("Reason (required, kept in the audit trail)", key="adm_role_reason")
        _form_error("adm_role")
        st.form_submit_button("Change role", type="primary", on_click=_set_role, args=(versions,))

    with status_tab, st.form("adm_status"):
        st.selectbox("Account", names, key="adm_status_user",
                     format_func=lambda n: f"{n} ({'active' if status[n] else 'disabled'})")
        st.text_input("Reason (required, kept in the audit trail)", key="adm_status_reason")
        _form_error("adm_status")
        left, right = st.columns(2)
        left.form_submit_button("Disable", icon=":material/person_off:", on_click=_set_active, args=(versions, False))
        right.form_submit_button("Enable", icon=":material/person_check:", on_click=_set_active, args=(versions, True))

    with password_tab, st.form("adm_password"):
        left, right = st.columns(2)
        left.selectbox("Account", names, key="adm_pw_user")
        left.radio("New password", [GENERATE, TYPE], key="adm_pw_mode", horizontal=True)
        right.text_input("Password (when typed; at least 12 characters)", type="password", key="adm_pw_password",
                         autocomplete="new-password")
        st.text_input("Reason (kept in the audit trail)", value="password reset", key="adm_pw_reason")
        _form_error("adm_password")
        st.form_submit_button("Reset password", type="primary", on_click=_reset_password, args=(versions,))

st.subheader("Audit trail")
st.caption("Every change to the store, newest first: accounts, QTL limits and breaches, signals, risks. The trail "
           "is append-only and hash-chained; verifying recomputes every hash.")
try:
    trail = audit_trail(user)
except RbqmError as exc:
    st.error(str(exc))
    st.stop()
filters = st.columns([2, 2, 2, 3, 1])
kinds = filters[0].multiselect("Object", sorted(trail["object_type"].unique()), key="adm_audit_types",
                               placeholder="All objects")
actors = filters[1].multiselect("By", sorted(trail["actor"].unique()), key="adm_audit_actors",
                                placeholder="Everyone")
actions = filters[2].multiselect("Action", sorted(trail["action"].unique()), key="adm_audit_actions",
                                 placeholder="All actions")
text = filters[3].text_input("Contains", key="adm_audit_text", placeholder="object id, reason or value")
latest = filters[4].number_input("Latest", min_value=1, max_value=10_000, value=50, step=50, key="adm_audit_n")
records = filter_audit(trail, object_types=kinds, actors=actors, actions=actions, text=text, latest=int(latest))
st.caption(f"{records.height} of {trail.height} records shown.")
st.dataframe(
    records, hide_index=True, key="adm_audit",
    column_config={"id": st.column_config.NumberColumn("#", format="%d"),
                   "at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                   "actor": "By", "action": "Action", "object_type": "Object", "object_id": "Id",
                   "old_value": "Old value", "new_value": "New value",
                   "reason": st.column_config.TextColumn("Reason", width="large")},
)
if st.button("Verify the audit chain", key="adm_verify", icon=":material/verified:"):
    try:
        with store().read() as session:
            chain = verify_chain(session, user)
    except AuditChainError as exc:
        st.error(f"The audit trail is broken: {exc}")
    except RbqmError as exc:
        st.error(str(exc))
    else:
        st.success(f"Intact: {chain.records} records; the last one's hash is {chain.head_hash[:16]}…")
