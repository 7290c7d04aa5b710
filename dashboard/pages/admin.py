"""Users and roles: the store's accounts, adding and changing them (admins), and the audit trail.

Every change goes through ``rbqm.store.users`` (which checks the permission and writes the audit
record); the page only hides what the signed-in role may not do. ``app.py`` lists this page only for
roles with ``user.view``; a session without it that reaches the file anyway sees "not permitted".
"""

from __future__ import annotations

import secrets

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
ADD_KEYS = ("adm_add_user", "adm_add_password", "adm_add_reason")
PASSWORD_KEYS = ("adm_pw_password", "adm_pw_reason")


def _role_name(role: Role | str) -> str:
    return ROLE_NAMES.get(str(role), str(role))


def _who(action: Action) -> str:
    return " or ".join(_role_name(role).lower() for role in roles_allowed(action))


def _password(mode: str, typed: str) -> str:
    """A new random password (20 URL-safe characters) or the one typed."""
    return secrets.token_urlsafe(15) if mode == GENERATE else typed


def _done(message: str, *, clear: tuple[str, ...] = (), password: tuple[str, str] | None = None) -> None:
    """Remember what to say after the rerun (and a generated password to show once), clear the form."""
    st.session_state["adm_saved"] = message
    if password:
        st.session_state["adm_new_password"] = password
    for key in clear:
        st.session_state.pop(key, None)
    st.rerun()


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
# Changes carry the version each account had when the user last saw this list: a change made meanwhile
# by someone else is refused (ConflictError) instead of silently overwritten.
seen = st.session_state.get("adm_seen", {})
st.session_state["adm_seen"] = {a.username: a.version for a in accounts}
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
        username = left.text_input("Username", key="adm_add_user",
                                   help="1 to 64 letters, digits, '.', '_', '@' or '-'.")
        role = right.selectbox("Role", ROLES, format_func=_role_name, key="adm_add_role")
        mode = left.radio("Password", [GENERATE, TYPE], key="adm_add_mode", horizontal=True)
        typed = right.text_input("Password (when typed; at least 12 characters)", type="password",
                                 key="adm_add_password", autocomplete="new-password")
        reason = st.text_input("Reason (kept in the audit trail)", value="account created", key="adm_add_reason")
        if st.form_submit_button("Add account", type="primary"):
            password = _password(mode, typed)
            try:
                with store().write() as session:
                    info = users.add_user(session, user, username.strip(), role=role, password=password,
                                          reason=reason)
            except RbqmError as exc:
                st.error(str(exc))
            else:
                _done(f"Added {info.username} ({_role_name(info.role)}).", clear=ADD_KEYS,
                      password=(info.username, password) if mode == GENERATE else None)

    with role_tab, st.form("adm_role"):
        left, right = st.columns(2)
        target = left.selectbox("Account", names, key="adm_role_user")
        new_role = right.selectbox("New role", ROLES, format_func=_role_name, key="adm_role_role")
        reason = st.text_input("Reason (required, kept in the audit trail)", key="adm_role_reason")
        if st.form_submit_button("Change role", type="primary"):
            try:
                with store().write() as session:
                    info = users.set_role(session, user, target, new_role, reason=reason,
                                          expected_version=seen.get(target))
            except RbqmError as exc:
                st.error(str(exc))
            else:
                _done(f"{info.username} is now {_role_name(info.role)}.", clear=("adm_role_reason",))

    with status_tab, st.form("adm_status"):
        target = st.selectbox("Account", names, key="adm_status_user",
                              format_func=lambda n: f"{n} ({'active' if status[n] else 'disabled'})")
        reason = st.text_input("Reason (required, kept in the audit trail)", key="adm_status_reason")
        left, right = st.columns(2)
        disable = left.form_submit_button("Disable", icon=":material/person_off:")
        enable = right.form_submit_button("Enable", icon=":material/person_check:")
        if disable or enable:
            change, verb = (users.disable_user, "disabled") if disable else (users.enable_user, "enabled")
            try:
                with store().write() as session:
                    info = change(session, user, target, reason=reason, expected_version=seen.get(target))
            except RbqmError as exc:
                st.error(str(exc))
            else:
                _done(f"{info.username} is {verb}" + ("." if info.active != status[target] else " (no change)."),
                      clear=("adm_status_reason",))

    with password_tab, st.form("adm_password"):
        left, right = st.columns(2)
        target = left.selectbox("Account", names, key="adm_pw_user")
        mode = left.radio("New password", [GENERATE, TYPE], key="adm_pw_mode", horizontal=True)
        typed = right.text_input("Password (when typed; at least 12 characters)", type="password",
                                 key="adm_pw_password", autocomplete="new-password")
        reason = st.text_input("Reason (kept in the audit trail)", value="password reset", key="adm_pw_reason")
        if st.form_submit_button("Reset password", type="primary"):
            password = _password(mode, typed)
            try:
                with store().write() as session:
                    info = users.set_password(session, user, target, password=password, reason=reason,
                                              expected_version=seen.get(target))
            except RbqmError as exc:
                st.error(str(exc))
            else:
                _done(f"Set a new password for {info.username}.", clear=PASSWORD_KEYS,
                      password=(info.username, password) if mode == GENERATE else None)

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
