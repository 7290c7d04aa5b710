"""``rbqm user``: add, list, disable, enable, set-role and set-password of store accounts.

Every command that touches the store takes ``--db URL`` (default ``$RBQM_DATABASE_URL``, else
``DATA_DIR/rbqm.db``) and ``--actor NAME`` (who is acting: default ``$RBQM_USER``, else the OS
user name). Passwords come from ``$RBQM_PASSWORD`` or are prompted for twice; never echoed.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from rbqm.cli._app import app, user_errors
from rbqm.errors import RbqmError
from rbqm.permissions import parse_role

if TYPE_CHECKING:
    from rbqm.store import Store

DbUrl = Annotated[str | None, typer.Option(
    "--db", metavar="URL", help="Store database URL: sqlite:///PATH or postgresql://USER@HOST/DB "
                                "(default $RBQM_DATABASE_URL, else DATA_DIR/rbqm.db).")]
Actor = Annotated[str | None, typer.Option(
    "--actor", metavar="NAME",
    help="Your username in the store (default $RBQM_USER, else your OS user name).")]
Reason = Annotated[str, typer.Option("--reason", help="Why: recorded in the audit trail.")]
ExpectVersion = Annotated[int | None, typer.Option(
    "--expect-version", metavar="N", help="Refuse (exit 2) if the account is no longer at version N "
                                          "(from rbqm user list): someone else changed it.")]
ROLES_HELP = "admin, quality_lead, central_monitor or sponsor_viewer (see docs/store.md)."
PASSWORD_ENV = "RBQM_PASSWORD"

user_app = typer.Typer(help="Store accounts: add, list, disable, enable, set-role, set-password.",
                       no_args_is_help=True)
app.add_typer(user_app, name="user")


def resolve_actor(actor: str | None) -> str:
    """Who is acting: ``--actor``, else ``$RBQM_USER``, else the OS user name."""
    name = actor or os.environ.get("RBQM_USER")
    if not name:
        try:
            name = getpass.getuser()
        except OSError as exc:
            raise RbqmError("cannot tell who is acting: pass --actor NAME or set RBQM_USER") from exc
    return name


@contextmanager
def open_cli_store(db: str | None) -> Iterator[Store]:
    """The store for one command, closed at the end (user errors exit 2)."""
    from rbqm.store import open_store

    with user_errors():
        store = open_store(db)
    try:
        yield store
    finally:
        store.close()


def read_password(username: str) -> str:
    """``$RBQM_PASSWORD`` if set, else asked for twice without echo."""
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    try:
        return typer.prompt(f"Password for {username}", hide_input=True, confirmation_prompt=True)
    except typer.Abort as exc:
        raise RbqmError(f"no password for {username}: set {PASSWORD_ENV} or answer the prompt") from exc


@user_app.command("add")
def add_command(
    username: Annotated[str, typer.Argument(help="The new account's username.")],
    role: Annotated[str, typer.Option("--role", help=ROLES_HELP)],
    reason: Reason = "account created",
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """Add an account (admins only; the first account of an empty store must be an admin, added by anyone)."""
    from rbqm.store import users

    with user_errors():
        who = resolve_actor(actor)
        role_value = parse_role(role)
        password = read_password(username)
        with open_cli_store(db) as store, store.write() as session:
            first = not users.has_users(session)
            info = users.add_user(session, who, username, role=role_value, password=password, reason=reason)
    typer.echo(f"Added {info.username} ({info.role})" + (", the store's first admin." if first else "."))


@user_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """List every account with its role, status and version (admins and quality leads)."""
    from rbqm.store import users

    with user_errors(), open_cli_store(db) as store, store.read() as session:
        accounts = users.list_users(session, resolve_actor(actor))
    if as_json:
        typer.echo(json.dumps([account.to_dict() for account in accounts], indent=2))
        return
    rows = [("USERNAME", "ROLE", "STATUS", "VERSION", "UPDATED (UTC)")]
    rows += [(a.username, str(a.role), "active" if a.active else "disabled", str(a.version),
              f"{a.updated_at:%Y-%m-%d %H:%M:%S}") for a in accounts]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _change(db: str | None, actor: str | None, change, username: str, **kwargs) -> None:
    """Run one account change in one write transaction and print the account's state after it."""
    with user_errors(), open_cli_store(db) as store, store.write() as session:
        info = change(session, resolve_actor(actor), username, **kwargs)
    status = "active" if info.active else "disabled"
    typer.echo(f"{info.username}: {info.role}, {status}, version {info.version}.")


@user_app.command("disable")
def disable_command(
    username: Annotated[str, typer.Argument(help="The account to disable.")],
    reason: Reason,
    expect_version: ExpectVersion = None,
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """Disable an account: it can no longer sign in or act. Its history stays (admins only)."""
    from rbqm.store import users

    _change(db, actor, users.disable_user, username, reason=reason, expected_version=expect_version)


@user_app.command("enable")
def enable_command(
    username: Annotated[str, typer.Argument(help="The account to enable again.")],
    reason: Reason,
    expect_version: ExpectVersion = None,
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """Enable a disabled account again (admins only)."""
    from rbqm.store import users

    _change(db, actor, users.enable_user, username, reason=reason, expected_version=expect_version)


@user_app.command("set-role")
def set_role_command(
    username: Annotated[str, typer.Argument(help="The account.")],
    role: Annotated[str, typer.Argument(help=ROLES_HELP)],
    reason: Reason,
    expect_version: ExpectVersion = None,
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """Give an account another role (admins only)."""
    from rbqm.store import users

    with user_errors():
        role_value = parse_role(role)
    _change(db, actor, users.set_role, username, role=role_value, reason=reason,
            expected_version=expect_version)


@user_app.command("set-password")
def set_password_command(
    username: Annotated[str, typer.Argument(help="The account.")],
    reason: Reason = "password reset",
    expect_version: ExpectVersion = None,
    db: DbUrl = None,
    actor: Actor = None,
) -> None:
    """Set an account's password, from $RBQM_PASSWORD or asked for twice (admins only)."""
    from rbqm.store import users

    with user_errors():
        password = read_password(username)
    _change(db, actor, users.set_password, username, password=password, reason=reason,
            expected_version=expect_version)
