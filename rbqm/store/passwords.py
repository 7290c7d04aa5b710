"""Password hashing with Argon2id (argon2-cffi). Passwords are never stored, logged or echoed.

The store keeps only the encoded hash (algorithm, parameters, salt and digest), so the
parameters can be raised later without breaking existing accounts.
"""

from __future__ import annotations

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_password", "verify_password", "PARAMETERS"]

PARAMETERS = profiles.RFC_9106_LOW_MEMORY
"""Argon2id, RFC 9106's second recommended profile: 64 MiB, 3 passes, 4 lanes (argon2-cffi's default)."""
_HASHER = PasswordHasher.from_parameters(PARAMETERS)


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password``, salted at random, as one encoded string.

    Examples
    --------
    >>> hash_password("correct horse battery").startswith("$argon2id$")
    True
    """
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (a hash from :func:`hash_password`).

    Examples
    --------
    >>> stored = hash_password("correct horse battery")
    >>> verify_password(stored, "correct horse battery"), verify_password(stored, "wrong")
    (True, False)
    """
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
