"""A Markdown table comparing trained models from their ``metrics/<model>.json`` files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nerloop.cli import run_app
from nerloop.io_utils import atomic_write_text
from nerloop.report.model_table import model_table


def main(
    metrics_files: list[Path] = typer.Argument(..., help="metrics/<model>.json files"),
    output: Path = typer.Option(..., "--output", "-o", help="Markdown output"),
) -> None:
    """Write the comparison table of the given models."""
    results = [json.loads(path.read_text()) for path in metrics_files if path.exists()]
    table = model_table(results)
    atomic_write_text(output, table)
    print(table)


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
