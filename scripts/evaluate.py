"""Evaluate a trained tagger on dev and test and write ``metrics/<model>.json``."""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.eval.evaluate import evaluate_model
from nerloop.io_utils import atomic_write_json


def main(
    model_path: Path = typer.Argument(
        ..., help="A pipeline folder, or a spacy train output (model-best/last chosen on dev)"
    ),
    name: str = typer.Argument(..., help="Model name used in metrics/<name>.json"),
    dev_path: Path = typer.Argument(..., help="Gold dev DocBin"),
    test_path: Path = typer.Argument(..., help="Gold test DocBin"),
    output: Path = typer.Option(..., "--output", "-o", help="Where the metrics JSON goes"),
    batch_size: int = typer.Option(64, help="Sentences per forward pass"),
) -> None:
    """Validation loss, seqeval accuracy and entity P/R/F1 (micro and per type) on dev and test."""
    result = evaluate_model(model_path, name, {"dev": dev_path, "test": test_path}, batch_size)
    atomic_write_json(output, result)
    for split in ("dev", "test"):
        scores = result[split]
        msg.good(
            f"{name} {split}: F1 {scores['f1']:.4f} P {scores['precision']:.4f} "
            f"R {scores['recall']:.4f} acc {scores['accuracy']:.4f} loss {scores['loss']:.4f}"
        )


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
