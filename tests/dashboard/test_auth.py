"""Signing in to the dashboard with the store's accounts (dashboard/auth.py), through AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.proto.TextInput_pb2 import TextInput
from streamlit.testing.v1 import AppTest

from rbqm.store import DATABASE_URL_ENV, open_store, users

from .conftest import PASSWORD, sign_in

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def signed_out() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=30).run()


def submit(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login_user").input(username)
    at.text_input(key="login_password").input(password)
    return at.button[0].click().run()


def test_signed_out_shows_only_the_sign_in_form(study_data_dir: Path) -> None:
    at = signed_out()
    assert not at.exception
    assert at.text_input(key="login_user").label == "Username"
    assert at.text_input(key="login_password").proto.type == TextInput.PASSWORD
    assert not at.metric and not at.selectbox  # no page before signing in
    assert "user" not in at.session_state


def test_wrong_password_is_refused(study_data_dir: Path) -> None:
    at = submit(signed_out(), "ada", "not the password at all")
    assert not at.exception
    assert len(at.error) == 1 and "Sign-in failed" in at.error[0].value
    assert "user" not in at.session_state
    assert not at.metric


def test_unknown_user_gets_the_same_message(study_data_dir: Path) -> None:
    at = submit(signed_out(), "nobody", PASSWORD)
    assert at.error[0].value == "Sign-in failed: unknown user, wrong password or disabled account."


def test_empty_fields_ask_for_both(study_data_dir: Path) -> None:
    at = submit(signed_out(), "", "")
    assert "Enter your username and password." in at.error[0].value


def test_right_password_signs_in_and_shows_the_pages(study_data_dir: Path) -> None:
    at = submit(signed_out(), "cleo", PASSWORD)
    assert not at.exception, at.exception
    assert at.session_state["user"] == "cleo"
    assert at.session_state["role"] == "central_monitor"
    assert at.title[0].value == "Study overview" and at.metric
    assert any("cleo" in caption.value for caption in at.sidebar.caption)


def test_sign_out_returns_to_the_form(study_data_dir: Path) -> None:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=30)).run()
    assert at.metric
    at.button(key="sign_out").click().run()
    assert not at.exception
    assert "user" not in at.session_state
    assert not at.metric and at.text_input(key="login_user")


def test_disabled_account_cannot_sign_in(study_data_dir: Path, fresh_store_url: str) -> None:
    store = open_store(fresh_store_url)
    with store.write() as session:
        users.disable_user(session, "ada", "sam", reason="left the study")
    store.close()
    at = submit(signed_out(), "sam", PASSWORD)
    assert "Sign-in failed" in at.error[0].value and "user" not in at.session_state


def test_empty_store_says_how_to_add_the_first_admin(study_data_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, f"sqlite:///{tmp_path / 'empty.db'}")
    at = signed_out()
    assert not at.exception
    assert "rbqm user add" in at.info[0].value


def test_unopenable_store_is_an_error_not_a_traceback(study_data_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, "nosuchdb://nowhere")
    at = signed_out()
    assert not at.exception
    assert "cannot open its store" in at.error[0].value


@pytest.mark.parametrize("page", ["overview.py", "heatmap.py", "signals.py"])
def test_a_page_run_without_app_py_still_asks_to_sign_in(study_data_dir: Path, page: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh server's first deep link runs the page alone (Streamlit's legacy pages/ mode)."""
    monkeypatch.syspath_prepend(str(APP.parent))
    at = AppTest.from_file(str(APP.parent / "pages" / page), default_timeout=30).run()
    assert not at.exception
    assert at.text_input(key="login_user") and not at.selectbox and not at.metric


def test_no_page_is_named_like_a_dashboard_module() -> None:
    """A page run alone has ``pages/`` first on ``sys.path``: a ``pages/data.py`` would shadow the loaders of
    ``dashboard/data.py`` and every page's ``from data import ...`` would fail."""
    modules = {p.stem for p in APP.parent.glob("*.py")}
    pages = {p.stem for p in (APP.parent / "pages").glob("*.py")}
    assert not modules & pages
