"""Data analysis, the study's first stage: tag distributions per split and LLM label quality."""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.eval.analyze import SPLITS, analyze, quality_table
from nerloop.labels import load_scheme


def main(
    corpus_dir: Path = typer.Argument(..., help="Folder with {train,dev,test}.spacy and cheap/"),
    metrics_dir: Path = typer.Argument(..., help="Where the JSON and Markdown go"),
    plots_dir: Path = typer.Argument(..., help="Where the PNG charts go"),
    labels: Path | None = typer.Option(
        None, "--labels", help="Label scheme file (default: nerloop/schemes/conll2003.cfg)"
    ),
) -> None:
    """Write tag distributions (JSON + PNG) and LLM label quality against gold."""
    scheme = load_scheme(labels)
    result = analyze(corpus_dir, metrics_dir, plots_dir, labels=scheme)
    for split in SPLITS:
        ents = result["distributions"][split]["entity"]
        msg.info(f"{split}: {sum(ents.values()):,} entities {ents}")
    if result["quality"]:
        print(quality_table(result["quality"], labels=scheme))


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
