"""Roles and what each may do: the one table the product enforces (docs/store.md shows it).

Every service function that reads protected data or changes state calls :func:`require`
with the acting user's role and one :class:`Action`; the dashboard may use :func:`allowed`
to hide what a role cannot do, but hiding is never the protection. Adding an action means
adding it to :class:`Action`, to :data:`PERMISSIONS`, to the table in docs/store.md and a
forbidden-action test in tests/store/test_permissions.py.
"""

from __future__ import annotations

from enum import StrEnum

from rbqm.errors import RbqmError

__all__ = ["Role", "Action", "PERMISSIONS", "PermissionDenied", "allowed", "require", "parse_role",
           "roles_allowed"]


class Role(StrEnum):
    """The roles of a store account."""

    ADMIN = "admin"
    QUALITY_LEAD = "quality_lead"
    CENTRAL_MONITOR = "central_monitor"
    SPONSOR_VIEWER = "sponsor_viewer"


class Action(StrEnum):
    """Everything the store protects, named ``object.verb``."""

    USER_VIEW = "user.view"
    USER_ADD = "user.add"
    USER_DISABLE = "user.disable"
    USER_ENABLE = "user.enable"
    USER_SET_ROLE = "user.set_role"
    USER_SET_PASSWORD = "user.set_password"
    AUDIT_VIEW = "audit.view"
    SIGNAL_VIEW = "signal.view"
    SIGNAL_UPDATE = "signal.update"
    SIGNAL_CLOSE = "signal.close"
    QTL_VIEW = "qtl.view"
    QTL_SET_LIMIT = "qtl.set_limit"
    QTL_EVALUATE = "qtl.evaluate"
    QTL_SIGN_OFF = "qtl.sign_off"
    RISK_VIEW = "risk.view"
    RISK_EDIT = "risk.edit"
    RISK_REVIEW = "risk.review"
    DATA_INGEST = "data.ingest"


_EVERYONE = frozenset(Role)
# Who may do what: one row per action. Later workflows (tolerance limits, KRI threshold
# overrides, signals, actions) add their rows here.
_WHO: dict[Action, frozenset[Role]] = {
    Action.USER_VIEW: frozenset({Role.ADMIN, Role.QUALITY_LEAD}),
    Action.USER_ADD: frozenset({Role.ADMIN}),
    Action.USER_DISABLE: frozenset({Role.ADMIN}),
    Action.USER_ENABLE: frozenset({Role.ADMIN}),
    Action.USER_SET_ROLE: frozenset({Role.ADMIN}),
    Action.USER_SET_PASSWORD: frozenset({Role.ADMIN}),
    Action.AUDIT_VIEW: _EVERYONE,
    Action.SIGNAL_VIEW: _EVERYONE,
    Action.SIGNAL_UPDATE: frozenset({Role.ADMIN, Role.QUALITY_LEAD, Role.CENTRAL_MONITOR}),
    Action.SIGNAL_CLOSE: frozenset({Role.ADMIN, Role.QUALITY_LEAD}),
    Action.QTL_VIEW: _EVERYONE,
    Action.QTL_SET_LIMIT: frozenset({Role.ADMIN, Role.QUALITY_LEAD}),
    Action.QTL_EVALUATE: frozenset({Role.ADMIN, Role.QUALITY_LEAD, Role.CENTRAL_MONITOR}),
    Action.QTL_SIGN_OFF: frozenset({Role.ADMIN, Role.QUALITY_LEAD}),
    Action.RISK_VIEW: _EVERYONE,
    Action.RISK_EDIT: frozenset({Role.ADMIN, Role.QUALITY_LEAD}),
    Action.RISK_REVIEW: frozenset({Role.ADMIN, Role.QUALITY_LEAD}),
    Action.DATA_INGEST: frozenset({Role.ADMIN, Role.QUALITY_LEAD, Role.CENTRAL_MONITOR}),
}
PERMISSIONS: dict[Role, frozenset[Action]] = {
    role: frozenset(action for action, roles in _WHO.items() if role in roles) for role in Role
}
"""The actions each role may perform."""


class PermissionDenied(RbqmError):
    """The acting user's role does not allow the action (or the user is unknown or disabled)."""


def parse_role(value: str | Role) -> Role:
    """A role from its name, accepting ``quality-lead`` and ``Quality lead`` for ``quality_lead``.

    Raises ``RbqmError`` naming the valid roles.

    Examples
    --------
    >>> parse_role("Quality lead")
    <Role.QUALITY_LEAD: 'quality_lead'>
    >>> parse_role("owner")
    Traceback (most recent call last):
    ...
    rbqm.errors.RbqmError: unknown role 'owner': choose one of admin, quality_lead, ...
    """
    if isinstance(value, Role):
        return value
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return Role(key)
    except ValueError:
        raise RbqmError(f"unknown role {value!r}: choose one of {', '.join(Role)}") from None


def allowed(role: Role | str, action: Action) -> bool:
    """Whether ``role`` may perform ``action``.

    Examples
    --------
    >>> allowed("admin", Action.USER_ADD), allowed("sponsor_viewer", Action.USER_ADD)
    (True, False)
    """
    return action in PERMISSIONS[parse_role(role)]


def roles_allowed(action: Action) -> list[Role]:
    """The roles that may perform ``action``, in the order of :class:`Role`.

    Examples
    --------
    >>> [str(role) for role in roles_allowed(Action.USER_VIEW)]
    ['admin', 'quality_lead']
    """
    return [role for role in Role if action in PERMISSIONS[role]]


def require(actor: str, role: Role | str, action: Action) -> None:
    """Raise ``PermissionDenied`` unless ``role`` may perform ``action``; the message names both.

    Examples
    --------
    >>> require("carol", "central_monitor", Action.USER_SET_ROLE)
    Traceback (most recent call last):
    ...
    rbqm.permissions.PermissionDenied: carol (role central_monitor) may not user.set_role: only admin may
    """
    if not allowed(role, action):
        who = ", ".join(roles_allowed(action))
        raise PermissionDenied(f"{actor} (role {parse_role(role)}) may not {action}: only {who} may")
