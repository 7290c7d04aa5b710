"""The errors the store raises for problems a user can fix (the command line exits 2 on each)."""

from __future__ import annotations

from rbqm.errors import RbqmError
from rbqm.permissions import PermissionDenied

__all__ = ["StoreError", "NotFoundError", "ConflictError", "AuditChainError", "PermissionDenied"]


class StoreError(RbqmError):
    """The store cannot do what was asked (bad URL, unreachable database, invalid value)."""


class NotFoundError(StoreError):
    """An object (a user, ...) does not exist in the store."""


class ConflictError(StoreError):
    """Someone else changed the object first, or it already exists: nothing was written.

    Read the object again and redo the change.
    """


class AuditChainError(StoreError):
    """The audit trail's hash chain is broken: a record was altered, removed or reordered.

    ``record_id`` is the first broken record; ``problem`` says what is wrong with it.
    """

    def __init__(self, record_id: int, problem: str) -> None:
        self.record_id = record_id
        self.problem = problem
        super().__init__(f"audit trail broken at record #{record_id}: {problem}")
