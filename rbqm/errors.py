"""The errors rbqm raises for problems a user can fix.

Every message names what was wrong (file, table, column, row or key) and what
would be valid. The command line prints them without a traceback and exits 2.
"""

from __future__ import annotations

__all__ = ["RbqmError", "SchemaError", "DefinitionError", "StudyFormatError"]


class RbqmError(ValueError):
    """Base class for user-facing errors."""


class SchemaError(RbqmError):
    """A table does not match the study folder format (docs/data-format.md)."""


class StudyFormatError(RbqmError):
    """A study folder or file cannot be read (missing, unreadable, unknown format)."""


class DefinitionError(RbqmError):
    """A declarative definition (YAML) is invalid."""
