"""Who is acting: the acting user's account, checked against the permission table."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rbqm.permissions import Action, PermissionDenied, require
from rbqm.store.models import User


def authorize(session: Session, actor: str, action: Action) -> User:
    """The acting user's account, if it exists, is enabled and its role allows ``action``."""
    user = session.scalar(select(User).where(User.username == actor))
    if user is None:
        raise PermissionDenied(f"{actor!r} is not a user of this store: act as your own account "
                               "(--actor NAME or RBQM_USER)")
    if not user.active:
        raise PermissionDenied(f"{actor} is disabled and may not {action}")
    require(actor, user.role, action)
    return user
