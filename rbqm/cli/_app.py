"""The Typer app every command registers on, and the shared error handling."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date

import typer

from rbqm.errors import RbqmError

app = typer.Typer(
    name="rbqm",
    help="Risk-based quality management analytics for clinical trials.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Risk-based quality management analytics for clinical trials."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn an ``RbqmError`` into a one-line message on stderr and exit status 2."""
    try:
        yield
    except RbqmError as exc:
        typer.secho(f"Error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from exc


def echo_table(rows: list[tuple[str, object]], echo: Callable[[str], None] = typer.echo) -> None:
    """Print label/value pairs as an aligned two-column table."""
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        echo(f"{label:<{width}}  {value}")


def parse_date(value: str | None, option: str) -> date | None:
    """An ISO 8601 date option, or a user error naming the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise RbqmError(f"{option} must be an ISO 8601 date such as 2025-06-30, got {value!r}") from exc
