"""Sign-in with the store's accounts (``rbqm user add``), for ``app.py``.

The store is the one the CLI uses: ``$RBQM_DATABASE_URL``, else ``$RBQM_DATA_DIR/rbqm.db``
(``rbqm.store.resolve_url``). A signed-in user is ``st.session_state["user"]`` (username) and
``st.session_state["role"]`` (role name). The role is the one the account had at sign-in.
Hiding widgets a role may not use is a convenience: the store's functions
check the permission themselves.
"""

from __future__ import annotations

import streamlit as st

from rbqm.errors import RbqmError
from rbqm.permissions import Action, allowed
from rbqm.store import AuthenticationError, Store, open_store, resolve_url, users

__all__ = ["store", "signed_in", "sign_in_page", "account_sidebar", "require_sign_in", "may", "current_user",
           "ROLE_NAMES"]

ROLE_NAMES = {"admin": "Admin", "quality_lead": "Quality lead", "central_monitor": "Central monitor",
              "sponsor_viewer": "Sponsor viewer (read only)"}


@st.cache_resource(show_spinner=False)
def _open_store(url: str) -> Store:
    """One store (engine and connection pool) per database URL, shared by every session."""
    return open_store(url)


def store() -> Store:
    """The dashboard's store (``RBQM_DATABASE_URL``, else ``$RBQM_DATA_DIR/rbqm.db``); opened once per URL."""
    return _open_store(resolve_url())


def current_user() -> str:
    """The signed-in username (call after :func:`require_sign_in`)."""
    return st.session_state["user"]


def may(action: Action) -> bool:
    """Whether the signed-in user's role allows ``action`` (to hide what it may not do)."""
    role = st.session_state.get("role")
    return bool(role) and allowed(role, action)


def _sign_in(username: str, password: str) -> None:
    with store().read() as session:
        info = users.authenticate(session, username, password)
    st.session_state["user"] = info.username
    st.session_state["role"] = str(info.role)


def _sign_out() -> None:
    for key in ("user", "role", "login_password"):
        st.session_state.pop(key, None)


def signed_in() -> bool:
    """Whether a user is signed in in this browser session."""
    return bool(st.session_state.get("user") and st.session_state.get("role"))


def account_sidebar() -> None:
    """The signed-in user's name and role, and the "Sign out" button, in the sidebar."""
    role = st.session_state["role"]
    with st.sidebar:
        st.caption(f"Signed in as **{st.session_state['user']}** · {ROLE_NAMES.get(role, role)}")
        st.button("Sign out", key="sign_out", on_click=_sign_out, icon=":material/logout:")


def require_sign_in() -> None:
    """Each page's first call: unless a user is signed in, show the sign-in form and stop the run.

    ``app.py`` routes signed-out sessions to the form already; this also covers a page that
    Streamlit runs without ``app.py`` (a fresh server's first request for a deep link such as
    ``/heatmap`` runs ``pages/heatmap.py`` alone, in its legacy pages/ mode).
    """
    if not signed_in():
        sign_in_page()
        st.stop()


def sign_in_page() -> None:
    """The sign-in form (the only page of a signed-out session)."""
    _sign_in_form()


def _sign_in_form() -> None:
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("rbqm")
        st.caption("Risk-based quality management for clinical trials. Sign in with your rbqm account "
                   "(an administrator adds it with `rbqm user add`).")
        try:
            with store().read() as session:
                empty = not users.has_users(session)
        except RbqmError as exc:
            st.error(f"The dashboard cannot open its store: {exc}")
            st.stop()
        if empty:
            st.info("This store has no accounts yet. Add the first administrator with "
                    "`rbqm user add NAME --role admin` (`make run` adds a demo account and prints how to sign in).")
        with st.form("login", border=True):
            username = st.text_input("Username", key="login_user", autocomplete="username")
            password = st.text_input("Password", type="password", key="login_password",
                                     autocomplete="current-password")
            submitted = st.form_submit_button("Sign in", type="primary", width="stretch")
        if submitted:
            if not username.strip() or not password:
                st.error("Enter your username and password.")
                return
            try:
                _sign_in(username.strip(), password)
            except AuthenticationError:
                st.error("Sign-in failed: unknown user, wrong password or disabled account.")
                return
            except RbqmError as exc:
                st.error(f"Sign-in failed: {exc}")
                return
            st.rerun()
