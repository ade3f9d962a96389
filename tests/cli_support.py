"""Run a step's CLI the way ``python -m scripts.<step>`` does, in process."""

from __future__ import annotations

import sys
from unittest import mock

import click
import typer
from click.testing import CliRunner, Result

from nerloop.cli import run_app


def run_cli(app: typer.Typer, args: list[str]) -> Result:
    """Invoke ``app`` through ``nerloop.cli.run_app`` with ``args`` as the command line, so a
    ``NerloopError`` ends as ``msg.fail`` and exit code 1; output and exit code are captured."""

    def entry() -> None:
        with mock.patch.object(sys, "argv", ["cli", *args]):
            run_app(app)

    return CliRunner().invoke(click.Command("cli", callback=entry), [])
