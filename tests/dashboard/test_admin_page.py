"""The "Users and roles" page through AppTest: who sees it, the accounts, every account change through
rbqm.store (audited), and the audit trail with its filters."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rbqm.store import AuthenticationError, list_records, open_store, users

from .conftest import ACCOUNTS, PASSWORD, sign_in

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
APP = DASHBOARD / "app.py"
PAGE = "pages/admin.py"
FORMS = ["adm_add", "adm_role", "adm_status", "adm_password"]


@pytest.fixture
def store_url(fresh_store_url: str, empty_data_dir: Path) -> str:
    """Each test's own store with the test accounts (the page needs no study)."""
    return fresh_store_url


def open_admin(role: str = "admin") -> AppTest:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=60), role).run()
    return at.switch_page(PAGE).run()


def submit(at: AppTest, form: str, label: str) -> AppTest:
    return at.button(key=f"FormSubmitter:{form}-{label}").click().run()


def account(url: str, username: str) -> users.UserInfo:
    store = open_store(url)
    try:
        with store.read() as session:
            return users.get_user(session, "ada", username)
    finally:
        store.close()


def audit(url: str) -> list:
    store = open_store(url)
    try:
        with store.read() as session:
            return list_records(session, "ada")
    finally:
        store.close()


def can_sign_in(url: str, username: str, password: str) -> bool:
    store = open_store(url)
    try:
        with store.read() as session:
            users.authenticate(session, username, password)
        return True
    except AuthenticationError:
        return False
    finally:
        store.close()


def test_admin_sees_every_account_the_forms_and_the_trail(store_url: str) -> None:
    at = open_admin()
    assert not at.exception, at.exception
    assert at.title[0].value == "Users and roles"
    table = at.dataframe[0].value
    assert table["username"].tolist() == sorted(ACCOUNTS)
    assert table["role"].tolist() == ["Admin", "Central monitor", "Quality lead", "Sponsor viewer (read only)"]
    assert set(table["status"]) == {"● active"} and set(table["version"]) == {1}
    assert [f.proto.form.form_id for f in at.get("form")] == FORMS
    trail = at.dataframe[1].value
    records = audit(store_url)
    assert trail["id"].tolist() == [r.id for r in reversed(records)]  # newest first
    assert set(trail["action"]) == {"user.add"}


def test_quality_lead_sees_the_accounts_read_only(store_url: str) -> None:
    at = open_admin("quality_lead")
    assert not at.exception
    assert len(at.dataframe[0].value) == len(ACCOUNTS)
    assert not at.get("form")
    assert "only the admin role may add or change accounts" in at.info[0].value


@pytest.mark.parametrize("role", ["central_monitor", "sponsor_viewer"])
def test_other_roles_do_not_get_the_page(store_url: str, role: str) -> None:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=60), role).run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)


@pytest.mark.parametrize("role", ["central_monitor", "sponsor_viewer"])
def test_the_page_itself_refuses_other_roles(store_url: str, role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run without app.py's menu (as Streamlit's legacy deep link does): the page checks the role itself."""
    monkeypatch.syspath_prepend(str(DASHBOARD))
    at = sign_in(AppTest.from_file(str(DASHBOARD / PAGE), default_timeout=60), role).run()
    assert not at.exception, at.exception
    assert "Not permitted" in at.warning[0].value and "admin or quality lead" in at.warning[0].value
    assert not at.dataframe and not at.get("form")


def test_add_an_account_with_a_generated_password_shown_once(store_url: str) -> None:
    at = open_admin()
    at.text_input(key="adm_add_user").input("nina")
    at.selectbox(key="adm_add_role").set_value("central_monitor")
    submit(at, "adm_add", "Add account")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success[0].value == "Added nina (Central monitor)."
    password = at.code[0].value
    assert len(password) == 20 and can_sign_in(store_url, "nina", password)
    assert "nina" in at.dataframe[0].value["username"].tolist()
    last = audit(store_url)[-1]
    assert (last.actor, last.action, last.object_id, last.new_value["role"]) == (
        "ada", "user.add", "nina", "central_monitor")
    assert password not in str(last.new_value)
    at.run()
    assert not at.code  # shown once only
    assert at.text_input(key="adm_add_user").value == ""


def test_add_an_account_with_a_typed_password(store_url: str) -> None:
    at = open_admin()
    at.text_input(key="adm_add_user").input("omar")
    at.radio(key="adm_add_mode").set_value("Type one")
    at.text_input(key="adm_add_password").input("short")
    submit(at, "adm_add", "Add account")
    assert "at least 12 characters" in at.error[0].value
    at.text_input(key="adm_add_password").input("omar's own long passphrase")
    submit(at, "adm_add", "Add account")
    assert not at.error and not at.code
    assert can_sign_in(store_url, "omar", "omar's own long passphrase")


def test_change_a_role_needs_a_reason(store_url: str) -> None:
    at = open_admin()
    at.selectbox(key="adm_role_user").set_value("cleo")
    at.selectbox(key="adm_role_role").set_value("quality_lead")
    submit(at, "adm_role", "Change role")
    assert "give a reason" in at.error[0].value
    assert str(account(store_url, "cleo").role) == "central_monitor"
    at.text_input(key="adm_role_reason").input("promoted")
    submit(at, "adm_role", "Change role")
    assert at.success[0].value == "cleo is now Quality lead."
    assert str(account(store_url, "cleo").role) == "quality_lead"
    last = audit(store_url)[-1]
    assert (last.action, last.old_value["role"], last.new_value["role"], last.reason) == (
        "user.set_role", "central_monitor", "quality_lead", "promoted")


def test_disable_and_enable_an_account(store_url: str) -> None:
    at = open_admin()
    at.selectbox(key="adm_status_user").set_value("sam")
    at.text_input(key="adm_status_reason").input("left the study")
    submit(at, "adm_status", "Disable")
    assert at.success[0].value == "sam is disabled."
    assert not can_sign_in(store_url, "sam", PASSWORD)
    table = at.dataframe[0].value
    assert table.loc[table["username"] == "sam", "status"].item() == "○ disabled"
    at.selectbox(key="adm_status_user").set_value("sam")
    at.text_input(key="adm_status_reason").input("back")
    submit(at, "adm_status", "Enable")
    assert at.success[0].value == "sam is enabled."
    assert can_sign_in(store_url, "sam", PASSWORD)
    assert [r.action for r in audit(store_url)[-2:]] == ["user.disable", "user.enable"]


def test_the_last_admin_cannot_be_disabled(store_url: str) -> None:
    at = open_admin()
    at.selectbox(key="adm_status_user").set_value("ada")
    at.text_input(key="adm_status_reason").input("oops")
    submit(at, "adm_status", "Disable")
    assert "only active admin" in at.error[0].value
    assert account(store_url, "ada").active


def test_reset_a_password(store_url: str) -> None:
    at = open_admin()
    at.selectbox(key="adm_pw_user").set_value("quinn")
    submit(at, "adm_password", "Reset password")
    assert at.success[0].value == "Set a new password for quinn."
    new = at.code[0].value
    assert can_sign_in(store_url, "quinn", new) and not can_sign_in(store_url, "quinn", PASSWORD)
    last = audit(store_url)[-1]
    assert (last.action, last.object_id, last.reason) == ("user.set_password", "quinn", "password reset")


def test_a_change_made_meanwhile_is_refused(store_url: str) -> None:
    at = open_admin()
    store = open_store(store_url)
    try:
        with store.write() as session:  # another admin, while this page is open
            users.set_role(session, "ada", "cleo", "sponsor_viewer", reason="elsewhere")
    finally:
        store.close()
    at.selectbox(key="adm_role_user").set_value("cleo")
    at.selectbox(key="adm_role_role").set_value("quality_lead")
    at.text_input(key="adm_role_reason").input("promoted")
    submit(at, "adm_role", "Change role")
    assert "changed by someone else" in at.error[0].value
    assert str(account(store_url, "cleo").role) == "sponsor_viewer"


def test_audit_trail_filters_and_verification(store_url: str) -> None:
    store = open_store(store_url)
    try:
        with store.write() as session:
            users.disable_user(session, "ada", "sam", reason="left the study")
            users.set_role(session, "ada", "cleo", "quality_lead", reason="promoted")
    finally:
        store.close()
    at = open_admin()
    assert len(at.dataframe[1].value) == len(ACCOUNTS) + 2
    at.multiselect(key="adm_audit_actions").set_value(["user.disable", "user.set_role"]).run()
    assert at.dataframe[1].value["object_id"].tolist() == ["cleo", "sam"]
    at.text_input(key="adm_audit_text").input("LEFT THE").run()
    assert at.dataframe[1].value["object_id"].tolist() == ["sam"]
    at.multiselect(key="adm_audit_actions").set_value([]).run()
    at.text_input(key="adm_audit_text").input("").run()
    at.multiselect(key="adm_audit_types").set_value(["user"]).run()
    at.number_input(key="adm_audit_n").set_value(2).run()
    assert at.dataframe[1].value["action"].tolist() == ["user.set_role", "user.disable"]  # the newest two
    assert "2 of 6 records shown." in [c.value for c in at.caption]
    at.button(key="adm_verify").click().run()
    assert at.success[0].value.startswith("Intact: 6 records")
