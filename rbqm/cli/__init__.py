"""The ``rbqm`` command line: one module per command, all registered on one Typer app.

Each command parses its arguments, calls one engine function and renders the result.
User errors (``RbqmError``) are printed to stderr without a traceback and exit 2.
"""

from __future__ import annotations

import sys

import typer

from rbqm.cli import actions, analyze, audit, info, ingest, qtl, report, risk, signals, synth, user, validate
from rbqm.cli._app import app
from rbqm.errors import RbqmError

__all__ = ["app", "main"]
# importing a command module registers it on `app`
_COMMANDS = (actions, analyze, audit, info, ingest, qtl, report, risk, signals, synth, user, validate)


def main() -> None:
    """Entry point of the ``rbqm`` console script and ``python -m rbqm``."""
    try:
        app(standalone_mode=True)
    except RbqmError as exc:  # raised outside a command (e.g. while parsing)
        typer.secho(f"Error: {exc}", err=True, fg="red")
        sys.exit(2)
