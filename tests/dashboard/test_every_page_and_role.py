"""Every page of dashboard/pages/ for every role of rbqm.permissions, through AppTest from the entrypoint.

Pages and roles are discovered (a glob and ``Role``), so a new page or role is tested without editing
this file. For each pair: the page is in the role's menu exactly when the role may see it, it runs
without an exception or error, and its change forms appear exactly for the roles whose permission
allows the change (a read-only role sees no form on any page).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rbqm.permissions import PERMISSIONS, Action, Role, allowed
from rbqm.store import DATABASE_URL_ENV, open_store, users

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
APP = DASHBOARD / "app.py"
PAGES = sorted(p.name for p in (DASHBOARD / "pages").glob("*.py") if not p.name.startswith("_"))
ROLES = list(Role)
PASSWORD = "a long test passphrase"

MENU: dict[str, Action] = {"admin.py": Action.USER_VIEW}
"""Pages only some roles get in the menu: page -> the action needed to see it (the others: everyone)."""
FORMS: dict[str, dict[str, Action]] = {
    "qtl.py": {"qtl_limits_form": Action.QTL_SET_LIMIT},
    "signals.py": {"sig_update": Action.SIGNAL_UPDATE, "act_add": Action.SIGNAL_UPDATE},
    "data_intake.py": {"data_ingest": Action.DATA_INGEST},
    # the role store holds no risk register: the page offers to start one from the template
    "risk.py": {"risk_import": Action.RISK_EDIT},
    "admin.py": {"adm_add": Action.USER_ADD, "adm_role": Action.USER_SET_ROLE, "adm_status": Action.USER_DISABLE,
                 "adm_password": Action.USER_SET_PASSWORD},
}
"""The change forms of a page: form id -> the action it needs (shown exactly to the roles allowed it)."""
TITLES = {"admin.py": "Users and roles", "qtl.py": "Quality tolerance limits", "signals.py": "Signals and actions",
          "risk.py": "Risk assessment"}


def read_only(role: Role) -> bool:
    """A role that may only look (every action it may perform is a ``*.view``)."""
    return all(action.endswith(".view") for action in PERMISSIONS[role])


def user_of(role: Role) -> str:
    return f"{role}_user".replace("_", "-")


@pytest.fixture(scope="module")
def _role_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with one account per role of ``rbqm.permissions.Role``."""
    url = f"sqlite:///{tmp_path_factory.mktemp('roles') / 'rbqm.db'}"
    store = open_store(url)
    with store.write() as session:
        users.add_user(session, "root", user_of(Role.ADMIN), role=Role.ADMIN, password=PASSWORD)
        for role in ROLES[1:] if ROLES[0] is Role.ADMIN else ROLES:
            users.add_user(session, user_of(Role.ADMIN), user_of(role), role=role, password=PASSWORD)
    store.close()
    return url


@pytest.fixture(autouse=True)
def store_url(_role_store: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Overrides conftest's: the dashboard uses the store with one account per role."""
    monkeypatch.setenv(DATABASE_URL_ENV, _role_store)
    return _role_store


@pytest.fixture(autouse=True)
def _fresh_streamlit_cache() -> Iterator[None]:
    """Overrides conftest's: the same study for every test here, so the analysis is computed once."""
    yield


@pytest.fixture(autouse=True)
def demo_dir(generated_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RBQM_DATA_DIR", str(generated_data))
    return generated_data


def test_every_page_and_role_is_covered() -> None:
    assert {"admin.py", "qtl.py", "signals.py", "overview.py"} <= set(PAGES)
    assert set(FORMS) | set(MENU) <= set(PAGES), "a page named here no longer exists"
    assert {Role.ADMIN, Role.SPONSOR_VIEWER} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES, ids=str)
@pytest.mark.parametrize("page", PAGES)
def test_page_for_role(page: str, role: Role) -> None:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["user"], at.session_state["role"] = user_of(role), str(role)
    at.run()
    assert not at.exception, at.exception
    needed = MENU.get(page)
    if needed is not None and not allowed(role, needed):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"pages/{page}")  # not in this role's menu
        return
    at.switch_page(f"pages/{page}").run()
    assert not at.exception, f"{page} as {role}: {at.exception}"
    assert not at.error, f"{page} as {role}: {[e.value for e in at.error]}"
    assert at.title, f"{page} as {role} shows no title"
    if page in TITLES:
        assert at.title[0].value == TITLES[page]
    forms = {block.proto.form.form_id for block in at.get("form")}
    for form, action in FORMS.get(page, {}).items():
        assert (form in forms) is allowed(role, action), f"{page} as {role}: form {form}"
    if read_only(role):
        assert not forms, f"{page} shows the read-only role {role} the forms {sorted(forms)}"


def _bare_strings(body: list, top: bool) -> list[int]:
    """Line numbers of string statements outside functions and classes, but the module docstring."""
    lines = []
    for i, node in enumerate(body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            if not (top and i == 0):
                lines.append(node.lineno)
        for field in ("body", "orelse", "finalbody", "handlers"):
            if isinstance(inner := getattr(node, field, None), list):
                lines += _bare_strings(inner, False)
    return lines


@pytest.mark.parametrize("page", sorted(p.name for p in (APP.parent / "pages").glob("*.py")) + ["../app.py"])
def test_no_page_writes_a_stray_docstring(page: str) -> None:
    """Streamlit's magic writes every bare string of a page script onto the page (a "docstring" under a
    constant showed above the heatmap's title): document a page's constants with comments."""
    source = (APP.parent / "pages" / page).read_text()
    assert _bare_strings(ast.parse(source).body, True) == []
