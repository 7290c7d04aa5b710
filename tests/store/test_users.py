"""Accounts: adding, listing, disabling, roles, passwords; each change in the audit trail."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher, profiles
from sqlalchemy import select, text

from rbqm.permissions import Role
from rbqm.store import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    StoreError,
    audit,
    open_store,
    passwords,
    users,
)
from rbqm.store.audit import check_chain
from rbqm.store.models import AuditRecord, User
from tests.store.conftest import ADMIN, LEAD, MONITOR, PEOPLE, VIEWER, password_of


def history(store, username):
    with store.read() as session:
        return [(e.action, e.actor, e.old_value, e.new_value, e.reason)
                for e in audit.list_records(session, ADMIN, object_type="user", object_id=username)]


def test_people_are_listed_with_roles_and_version_1(store, people):
    with store.read() as session:
        listed = users.list_users(session, ADMIN)
    assert [(u.username, u.role, u.active, u.version) for u in listed] == sorted(
        (name, role, True, 1) for role, name in PEOPLE.items())
    assert all(u.created_at.tzinfo is not None for u in listed)


def test_add_records_who_what_new_value_and_reason(store, people):
    with store.write() as session:
        users.add_user(session, ADMIN, "newbie", role="Central monitor", password=password_of("newbie"),
                       reason="joins the CM team")
    assert history(store, "newbie") == [
        ("user.add", ADMIN, None, {"username": "newbie", "role": "central_monitor", "active": True},
         "joins the CM team")]


def test_set_role_disable_enable_record_old_and_new(store, people):
    with store.write() as session:
        assert users.set_role(session, ADMIN, MONITOR, Role.QUALITY_LEAD, reason="promoted").version == 2
    with store.write() as session:
        assert users.disable_user(session, ADMIN, MONITOR, reason="left").version == 3
    with store.write() as session:
        info = users.enable_user(session, ADMIN, MONITOR, reason="came back", expected_version=3)
    assert (info.role, info.active, info.version) == (Role.QUALITY_LEAD, True, 4)
    steps = history(store, MONITOR)[1:]
    assert [(action, old["role"], old["active"], new["role"], new["active"], reason)
            for action, _, old, new, reason in steps] == [
        ("user.set_role", "central_monitor", True, "quality_lead", True, "promoted"),
        ("user.disable", "quality_lead", True, "quality_lead", False, "left"),
        ("user.enable", "quality_lead", False, "quality_lead", True, "came back"),
    ]


def test_change_to_the_same_value_writes_nothing(store, people):
    with store.write() as session:
        assert users.set_role(session, ADMIN, MONITOR, "central_monitor", reason="no-op").version == 1
    assert len(history(store, MONITOR)) == 1


def test_reason_is_required(store, people):
    with pytest.raises(StoreError, match="give a reason"), store.write() as session:
        users.set_role(session, ADMIN, MONITOR, "quality_lead", reason="  ")
    with store.read() as session:
        assert users.get_user(session, ADMIN, MONITOR).role is Role.CENTRAL_MONITOR


def test_expected_version_conflict_names_object_and_versions(store, people):
    with store.write() as session:
        users.set_role(session, ADMIN, MONITOR, "quality_lead", reason="first change")
    with pytest.raises(ConflictError) as caught, store.write() as session:
        users.set_role(session, ADMIN, MONITOR, "sponsor_viewer", reason="second change", expected_version=1)
    message = str(caught.value)
    assert "user 'monty' was changed by someone else" in message
    assert "you read version 1, the store has version 2" in message
    assert f"user.set_role by {ADMIN}" in message
    with store.read() as session:
        assert users.get_user(session, ADMIN, MONITOR).role is Role.QUALITY_LEAD


def test_duplicate_username_is_a_conflict(store, people):
    with pytest.raises(ConflictError, match="user 'vera' already exists"), store.write() as session:
        users.add_user(session, ADMIN, VIEWER, role="admin", password=password_of("other"))


@pytest.mark.parametrize("username", ["", "-dash", "a b", "x" * 65, "semi;colon"])
def test_invalid_username(store, people, username):
    with pytest.raises(StoreError, match="invalid username"), store.write() as session:
        users.add_user(session, ADMIN, username, role="admin", password=password_of("ok"))


@pytest.mark.parametrize("password, message", [
    ("short", "at least 12 characters"), ("x" * 1025, "at most 1024"),
    ("Newbie-Account", "not be the username"),
])
def test_weak_password_refused_without_echoing_it(store, people, password, message):
    with pytest.raises(StoreError, match=message) as caught, store.write() as session:
        users.add_user(session, ADMIN, "newbie-account", role="admin", password=password)
    assert password not in str(caught.value)


def test_unknown_user_is_not_found(store, people):
    with pytest.raises(NotFoundError, match="no user 'ghost'"), store.write() as session:
        users.disable_user(session, ADMIN, "ghost", reason="x")


def test_last_active_admin_cannot_be_disabled_or_demoted(store, people):
    with pytest.raises(StoreError, match="ada is the only active admin"), store.write() as session:
        users.disable_user(session, ADMIN, ADMIN, reason="oops")
    with pytest.raises(StoreError, match="ada is the only active admin"), store.write() as session:
        users.set_role(session, ADMIN, ADMIN, "sponsor_viewer", reason="oops")
    with store.write() as session:
        users.set_role(session, ADMIN, LEAD, "admin", reason="second admin")
        users.disable_user(session, ADMIN, ADMIN, reason="handing over")
    with store.read() as session:
        assert not users.get_user(session, LEAD, ADMIN).active


def test_authenticate(store, people):
    with store.read() as session:
        assert users.authenticate(session, VIEWER, password_of(VIEWER)).role is Role.SPONSOR_VIEWER
        for name, password in [(VIEWER, "wrong password!"), ("ghost", password_of(VIEWER))]:
            with pytest.raises(AuthenticationError, match="unknown user, wrong password or disabled account"):
                users.authenticate(session, name, password)
    with store.write() as session:
        users.disable_user(session, ADMIN, VIEWER, reason="left")
    with store.read() as session, pytest.raises(AuthenticationError):
        users.authenticate(session, VIEWER, password_of(VIEWER))


def test_set_password_changes_it_and_audits_only_the_time(store, people):
    new = "a completely new passphrase"
    with store.write() as session:
        users.set_password(session, ADMIN, VIEWER, password=new)
    with store.read() as session:
        assert users.authenticate(session, VIEWER, new).version == 2
        with pytest.raises(AuthenticationError):
            users.authenticate(session, VIEWER, password_of(VIEWER))
    action, _, old, new_value, reason = history(store, VIEWER)[-1]
    assert (action, reason, set(old), set(new_value)) == ("user.set_password", "password reset",
                                                          {"password_changed_at"}, {"password_changed_at"})


def _stored_text(store) -> str:
    """Every value of every row of every table, as text."""
    with store.read() as session:
        names = ["users", "audit_records", "audit_head"]
        rows = (row for name in names for row in session.execute(text(f"SELECT * FROM {name}")))
        return "\n".join(map(repr, rows))


def test_password_is_never_stored_or_audited_in_clear(store, store_url, people):
    secret = "Unique-Secret-Passphrase-4711"
    with store.write() as session:
        users.add_user(session, ADMIN, "newbie", role="admin", password=secret)
        users.set_password(session, ADMIN, VIEWER, password=secret + "-2")
    stored = _stored_text(store)
    with store.read() as session:
        exported = audit.export_records(session, ADMIN, fmt="json") + audit.export_records(session, ADMIN)
        hashes = [u.password_hash for u in session.scalars(select(User))]
    for password in [secret, secret + "-2", *map(password_of, PEOPLE.values())]:
        assert password not in stored and password not in exported
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert not any(h in exported for h in hashes)  # not even the hash goes into the audit trail
    if store.backend == "sqlite":  # the raw bytes of the database file and its write-ahead log
        store.close()
        path = Path(store_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert secret.encode() not in raw and (secret + "-2").encode() not in raw
        assert b"$argon2id$" in raw


def test_production_hash_parameters(monkeypatch):
    monkeypatch.setattr(passwords, "_HASHER", PasswordHasher.from_parameters(passwords.PARAMETERS))
    assert passwords.PARAMETERS == profiles.RFC_9106_LOW_MEMORY
    stored = passwords.hash_password("a long passphrase")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert passwords.verify_password(stored, "a long passphrase")
    assert not passwords.verify_password("not a hash", "a long passphrase")


def test_every_change_is_audited_once(store, people):
    with store.write() as session:
        users.set_role(session, ADMIN, MONITOR, "quality_lead", reason="a")
        users.disable_user(session, ADMIN, VIEWER, reason="b")
        users.set_password(session, ADMIN, LEAD, password="another long passphrase")
    with store.read() as session:
        actions = session.scalars(select(AuditRecord.action).order_by(AuditRecord.id)).all()
        assert check_chain(session).records == len(actions) == 7
    assert actions[4:] == ["user.set_role", "user.disable", "user.set_password"]


def test_reopened_store_keeps_everything(store_url, people, store):
    store.close()
    again = open_store(store_url)
    try:
        with again.read() as session:
            assert len(users.list_users(session, ADMIN)) == 4
            assert check_chain(session).records == 4
    finally:
        again.close()
