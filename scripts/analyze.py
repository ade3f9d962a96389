"""Data analysis, the study's first stage: tag distributions per split and LLM label quality."""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.eval.analyze import SPLITS, analyze, quality_table


def main(
    corpus_dir: Path = typer.Argument(..., help="Folder with {train,dev,test}.spacy and cheap/"),
    metrics_dir: Path = typer.Argument(..., help="Where the JSON and Markdown go"),
    plots_dir: Path = typer.Argument(..., help="Where the PNG charts go"),
) -> None:
    """Write tag distributions (JSON + PNG) and LLM label quality against gold."""
    result = analyze(corpus_dir, metrics_dir, plots_dir)
    for split in SPLITS:
        ents = result["distributions"][split]["entity"]
        msg.info(f"{split}: {sum(ents.values()):,} entities {ents}")
    if result["quality"]:
        print(quality_table(result["quality"]))


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
