"""Local accounts: add, list, disable, enable, change role or password, authenticate.

Every function takes an open session (``store.read()`` to look, ``store.write()`` to change)
and the acting username; it checks the actor's role against ``rbqm.permissions`` first and
records each change in the audit trail in the same transaction. Changes accept
``expected_version``: the version the caller last saw. If the account changed since, a
``ConflictError`` says so and nothing is written.

The first account of an empty store must be an admin, and anyone may create it (bootstrap).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from rbqm.permissions import Action, Role, parse_role
from rbqm.store._auth import authorize
from rbqm.store.audit import record_change
from rbqm.store.errors import ConflictError, NotFoundError, StoreError
from rbqm.store.models import AuditRecord, User, utc_now
from rbqm.store.passwords import hash_password, verify_password

__all__ = ["UserInfo", "add_user", "list_users", "get_user", "disable_user", "enable_user", "set_role",
           "set_password", "authenticate", "has_users", "MIN_PASSWORD_LENGTH", "AuthenticationError"]

MIN_PASSWORD_LENGTH = 12
_MAX_PASSWORD_LENGTH = 1024
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class AuthenticationError(StoreError):
    """Unknown user, disabled account or wrong password (one message for all three)."""


@dataclass(frozen=True)
class UserInfo:
    """An account as the product shows it: never the password or its hash."""

    username: str
    role: Role
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime

    @classmethod
    def from_row(cls, user: User) -> UserInfo:
        return cls(user.username, Role(user.role), user.active, user.version, user.created_at,
                   user.updated_at, user.password_changed_at)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (timestamps in ISO 8601 UTC)."""
        return {"username": self.username, "role": str(self.role), "active": self.active,
                "version": self.version, "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat(),
                "password_changed_at": self.password_changed_at.isoformat()}


def _audited(user: User) -> dict[str, Any]:
    """What the audit trail keeps of an account (never the password hash)."""
    return {"username": user.username, "role": user.role, "active": user.active}


def _check_password(username: str, password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise StoreError(f"the password for {username} must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > _MAX_PASSWORD_LENGTH:
        raise StoreError(f"the password for {username} must have at most {_MAX_PASSWORD_LENGTH} characters")
    if password.strip().casefold() == username.casefold():
        raise StoreError(f"the password for {username} must not be the username")


def has_users(session: Session) -> bool:
    """Whether the store has any account yet (if not, the first one added must be an admin).

    Examples
    --------
    >>> from rbqm.store import open_store
    >>> with open_store("sqlite://").read() as session:
    ...     has_users(session)
    False
    """
    return bool(session.scalar(select(exists().where(User.id.is_not(None)))))


def add_user(session: Session, actor: str, username: str, *, role: Role | str, password: str,
             reason: str = "account created") -> UserInfo:
    """Create an account (needs ``user.add``, except for the first account: an admin, by anyone).

    Parameters
    ----------
    actor
        Who is acting: an admin's username, or anyone when the store has no account yet.
    username
        1 to 64 letters, digits, ``.``, ``_``, ``@`` or ``-``, starting with a letter or digit.
    role
        A :class:`rbqm.permissions.Role` or its name.
    password
        At least 12 characters; only its Argon2id hash is stored.
    reason
        Why, for the audit trail.

    Examples
    --------
    >>> from rbqm.store import open_store
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     add_user(session, "root", "alice", role="admin", password="a long passphrase").role
    <Role.ADMIN: 'admin'>
    """
    role = parse_role(role)
    if not _USERNAME.fullmatch(username or ""):
        raise StoreError(f"invalid username {username!r}: use 1 to 64 letters, digits, '.', '_', '@' or '-', "
                         "starting with a letter or digit")
    _check_password(username, password)
    if has_users(session):
        authorize(session, actor, Action.USER_ADD)
    elif role is not Role.ADMIN:
        raise StoreError(f"the store has no users yet: the first account must be an admin "
                         f"(rbqm user add NAME --role admin), not {role}")
    elif not (actor or "").strip():
        raise StoreError("name who is acting (--actor or RBQM_USER)")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise ConflictError(f"user {username!r} already exists (rbqm user list)")
    now = utc_now()
    user = User(username=username, role=str(role), password_hash=hash_password(password), active=True,
                created_at=now, updated_at=now, password_changed_at=now)
    session.add(user)
    session.flush()
    record_change(session, actor=actor, action=Action.USER_ADD, object_type="user", object_id=username,
                  old=None, new=_audited(user), reason=reason)
    return UserInfo.from_row(user)


def list_users(session: Session, actor: str) -> list[UserInfo]:
    """Every account, by username, enabled or not (needs ``user.view``).

    Examples
    --------
    >>> from rbqm.store import open_store
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     _ = add_user(session, "root", "alice", role="admin", password="a long passphrase")
    >>> with store.read() as session:
    ...     [(user.username, str(user.role), user.version) for user in list_users(session, "alice")]
    [('alice', 'admin', 1)]
    """
    authorize(session, actor, Action.USER_VIEW)
    return [UserInfo.from_row(user) for user in session.scalars(select(User).order_by(User.username))]


def get_user(session: Session, actor: str, username: str) -> UserInfo:
    """One account (needs ``user.view``); ``NotFoundError`` if there is none.

    Examples
    --------
    >>> from rbqm.store import open_store
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     _ = add_user(session, "root", "alice", role="admin", password="a long passphrase")
    >>> with store.read() as session:
    ...     get_user(session, "alice", "alice").active
    True
    """
    authorize(session, actor, Action.USER_VIEW)
    return UserInfo.from_row(_load(session, username))


@cache
def _dummy_hash() -> str:
    """A real hash to check unknown users against, so they take as long as a wrong password."""
    return hash_password("no such user: dummy password")


def _load(session: Session, username: str, *, lock: bool = False) -> User:
    query = select(User).where(User.username == username)
    user = session.scalar(query.with_for_update() if lock else query)
    if user is None:
        raise NotFoundError(f"no user {username!r} in the store (rbqm user list)")
    return user


def _for_change(session: Session, actor: str, action: Action, username: str,
                expected_version: int | None) -> User:
    authorize(session, actor, action)
    user = _load(session, username, lock=True)
    if expected_version is not None and user.version != expected_version:
        last = session.scalar(select(AuditRecord).where(AuditRecord.object_type == "user",
                                                        AuditRecord.object_id == username)
                              .order_by(AuditRecord.id.desc()).limit(1))
        by = (f" (last change: {last.action} by {last.actor} at {last.at:%Y-%m-%d %H:%M:%S} UTC)"
              if last else "")
        raise ConflictError(f"user {username!r} was changed by someone else: you read version "
                            f"{expected_version}, the store has version {user.version}{by}. "
                            "Nothing was written; read it again and redo your change.")
    return user


def _other_active_admins(session: Session, user: User) -> bool:
    return bool(session.scalar(select(exists().where(User.role == str(Role.ADMIN), User.active.is_(True),
                                                     User.id != user.id))))


def _apply(session: Session, actor: str, action: Action, user: User, reason: str, **changes: Any) -> UserInfo:
    """Apply ``changes`` to ``user`` and record them; a change to nothing new writes nothing."""
    if all(getattr(user, name) == value for name, value in changes.items()):
        return UserInfo.from_row(user)
    old = _audited(user)
    for name, value in changes.items():
        setattr(user, name, value)
    user.updated_at = utc_now()
    _flush(session, user)
    record_change(session, actor=actor, action=action, object_type="user", object_id=user.username,
                  old=old, new=_audited(user), reason=reason)
    return UserInfo.from_row(user)


def _flush(session: Session, user: User) -> None:
    """Write the change: ``UPDATE ... WHERE version = n`` matches nothing if the row changed since read."""
    name, read = user.username, user.version
    try:
        session.flush()
    except StaleDataError as exc:
        raise ConflictError(f"user {name!r} was changed by someone else after version {read} was read; "
                            "nothing was written. Read it again and redo your change.") from exc


def _keep_an_admin(session: Session, user: User, what: str) -> None:
    if user.role == Role.ADMIN and user.active and not _other_active_admins(session, user):
        raise StoreError(f"{user.username} is the only active admin: {what} would leave no one to manage "
                         "accounts; add or enable another admin first")


def disable_user(session: Session, actor: str, username: str, *, reason: str,
                 expected_version: int | None = None) -> UserInfo:
    """Disable an account: it can no longer sign in or act (needs ``user.disable``). Kept for the audit trail.

    Examples
    --------
    >>> from rbqm.store import open_store
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     _ = add_user(session, "root", "alice", role="admin", password="a long passphrase")
    ...     _ = add_user(session, "alice", "bob", role="central_monitor", password="another passphrase")
    ...     disable_user(session, "alice", "bob", reason="left the study").active
    False
    """
    user = _for_change(session, actor, Action.USER_DISABLE, username, expected_version)
    _keep_an_admin(session, user, "disabling them")
    return _apply(session, actor, Action.USER_DISABLE, user, reason, active=False)


def enable_user(session: Session, actor: str, username: str, *, reason: str,
                expected_version: int | None = None) -> UserInfo:
    """Enable a disabled account again (needs ``user.enable``).

    Examples
    --------
    >>> from rbqm.store import open_store
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     _ = add_user(session, "root", "alice", role="admin", password="a long passphrase")
    ...     _ = add_user(session, "alice", "bob", role="central_monitor", password="another passphrase")
    ...     _ = disable_user(session, "alice", "bob", reason="on leave")
    ...     enable_user(session, "alice", "bob", reason="back from leave").active
    True
    """
    user = _for_change(session, actor, Action.USER_ENABLE, username, expected_version)
    return _apply(session, actor, Action.USER_ENABLE, user, reason, active=True)


def set_role(session: Session, actor: str, username: str, role: Role | str, *, reason: str,
             expected_version: int | None = None) -> UserInfo:
    """Give an account another role (needs ``user.set_role``).

    Examples
    --------
    >>> from rbqm.store import open_store
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     _ = add_user(session, "root", "alice", role="admin", password="a long passphrase")
    ...     bob = add_user(session, "alice", "bob", role="central_monitor", password="another passphrase")
    ...     set_role(session, "alice", "bob", "quality lead", reason="promoted",
    ...              expected_version=bob.version).version
    2
    """
    role = parse_role(role)
    user = _for_change(session, actor, Action.USER_SET_ROLE, username, expected_version)
    if role is not Role.ADMIN:
        _keep_an_admin(session, user, f"making them {role}")
    return _apply(session, actor, Action.USER_SET_ROLE, user, reason, role=str(role))


def set_password(session: Session, actor: str, username: str, *, password: str,
                 reason: str = "password reset", expected_version: int | None = None) -> UserInfo:
    """Set an account's password (needs ``user.set_password``). The audit trail records only when.

    Examples
    --------
    >>> from rbqm.store import open_store
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     _ = add_user(session, "root", "alice", role="admin", password="a long passphrase")
    ...     set_password(session, "alice", "alice", password="a new long passphrase").version
    2
    """
    _check_password(username, password)
    user = _for_change(session, actor, Action.USER_SET_PASSWORD, username, expected_version)
    old = {"password_changed_at": user.password_changed_at}
    user.password_hash = hash_password(password)
    user.password_changed_at = user.updated_at = utc_now()
    _flush(session, user)
    record_change(session, actor=actor, action=Action.USER_SET_PASSWORD, object_type="user",
                  object_id=username, old=old, new={"password_changed_at": user.password_changed_at},
                  reason=reason)
    return UserInfo.from_row(user)


def authenticate(session: Session, username: str, password: str) -> UserInfo:
    """The account if ``password`` is right and the account enabled; else ``AuthenticationError``.

    The error does not say which of user, password or status was wrong, and an unknown user
    costs as much time as a wrong password.

    Examples
    --------
    >>> from rbqm.store import open_store
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     _ = add_user(session, "root", "alice", role="admin", password="a long passphrase")
    >>> with store.read() as session:
    ...     authenticate(session, "alice", "a long passphrase").username
    'alice'
    """
    user = session.scalar(select(User).where(User.username == username))
    matches = verify_password(user.password_hash if user else _dummy_hash(), password)
    if user is None or not matches or not user.active:
        raise AuthenticationError("unknown user, wrong password or disabled account")
    return UserInfo.from_row(user)
