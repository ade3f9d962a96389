"""What every CLI in ``scripts/`` shares: one error wrapper and spaCy-style config overrides.

A step's CLI parses its arguments, calls one library function and reports. ``run_app`` runs its
typer app and turns a ``NerloopError`` into ``msg.fail`` with exit code 1; any other exception is
a bug and keeps its traceback. ``config_overrides`` reads ``--section.key value`` pairs the way
``spacy train`` does (``spacy.cli._util.parse_config_overrides``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer
from spacy.cli._util import parse_config_overrides
from wasabi import msg

from nerloop.errors import NerloopError, SettingsError

# typer context settings of a command that takes config overrides as extra arguments
OVERRIDES_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def config_overrides(ctx: typer.Context) -> dict[str, Any]:
    """The ``--section.key value`` overrides among a command's extra arguments.

    ctx (typer.Context): the command's context (``context_settings=OVERRIDES_CONTEXT``).
    RETURNS (dict): dotted keys to values, as ``spacy train`` parses them.
    """
    try:
        return parse_config_overrides(list(ctx.args))
    except SystemExit as err:  # spaCy's parser exits on a malformed override
        raise SettingsError(f"invalid config overrides: {' '.join(ctx.args)}") from err


def fail_on_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a library call so a ``NerloopError`` becomes ``msg.fail`` (exit code 1)."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NerloopError as err:
            msg.fail(str(err), exits=1)

    wrapped.__name__ = getattr(func, "__name__", "wrapped")
    wrapped.__doc__ = func.__doc__
    return wrapped


def run_app(app: typer.Typer | Callable[..., Any]) -> None:
    """Run a typer app (or a single command function) with the project's error handling."""
    if not isinstance(app, typer.Typer):
        command = app
        app = typer.Typer(add_completion=False)
        app.command(context_settings=OVERRIDES_CONTEXT)(command)
    try:
        app(standalone_mode=False)
    except NerloopError as err:
        msg.fail(str(err), exits=1)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except SystemExit:
        raise
    except Exception as err:  # click's usage errors
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Abort):
            sys.exit(1)
        raise
