"""Evaluate a trained tagger on dev and test and write ``metrics/<model>.json``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from wasabi import msg

from .io_utils import atomic_write_json, read_docbin
from .tagger_eval import evaluate_pipeline, load_pipeline


def evaluate_model(
    model_path: Path, name: str, splits: dict[str, Path], batch_size: int = 64
) -> dict:
    nlp = load_pipeline(model_path)
    result = {"model": name, "path": str(model_path), "pipeline": nlp.pipe_names}
    meta_path = model_path / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        result["training"] = {
            key: meta.get(key) for key in ("performance", "sources") if meta.get(key) is not None
        }
    for split, path in splits.items():
        msg.text(f"Evaluating {name} on {split} ({path})")
        result[split] = evaluate_pipeline(nlp, read_docbin(path, nlp.vocab), batch_size)
    return result


def main(
    model_path: Path = typer.Argument(
        ..., help="Trained pipeline folder (e.g. training/gold/model-best)"
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


if __name__ == "__main__":
    typer.run(main)
