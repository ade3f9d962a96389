"""Train a ``bio_ner`` pipeline programmatically on in-memory Docs, evaluating on dev each epoch.

Shared by the expert-budget experiment (``scripts/kfold.py``, ``scripts/init_model.py``) and the
active-learning loop. A pipeline comes either fresh from a training config (``init_nlp``, as
``spacy train`` does) or warm-started from a trained pipeline folder (e.g. the LLM-only model);
``finetune`` then trains it for a fixed number of epochs with the optimizer and batcher of the
pipeline's ``[training]`` block (learning rate, dropout and batch size can be overridden), scores it
on dev with ``scripts.tagger_eval.evaluate_pipeline`` (entity F1, seqeval accuracy, validation
loss) after each epoch, and keeps the history and the best and last weights.

Runs are deterministic for a seed on CPU (``spacy.util.fix_random_seed`` fixes random, numpy and
torch; the shuffling has its own seeded generator).
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.io_utils import read_docbin
from nerloop.training import (
    BatchWordsOption,
    DropoutOption,
    GpuIdOption,
    LearnRateOption,
    train_on_docs,
)


def main(
    train_path: Path = typer.Argument(..., exists=True, help="Training DocBin"),
    dev_path: Path = typer.Argument(..., exists=True, help="Gold dev DocBin"),
    output_dir: Path = typer.Argument(..., help="Writes model-best, model-last, history.json"),
    init_model: Path | None = typer.Option(
        None, "--init-model", exists=True, file_okay=False, help="Warm start from this pipeline"
    ),
    config_path: Path | None = typer.Option(
        None, "--config", exists=True, dir_okay=False, help="Fresh pipeline from this config"
    ),
    epochs: int = typer.Option(5, min=1, help="Epochs"),
    seed: int = typer.Option(0, help="Seed (random, numpy, torch, shuffling)"),
    learn_rate: LearnRateOption = None,
    dropout: DropoutOption = None,
    batch_words: BatchWordsOption = None,
    gpu_id: GpuIdOption = -1,
) -> None:
    """Fine-tune a pipeline (or train one from a config) on a DocBin, scoring dev every epoch."""
    if (init_model is None) == (config_path is None):
        msg.fail("Give --init-model PATH (warm start) or --config PATH (fresh)", exits=1)
    train_docs = read_docbin(train_path)
    dev_docs = read_docbin(dev_path)
    result = train_on_docs(
        train_docs,
        dev_docs,
        init_model=init_model,
        config_path=config_path,
        output_dir=output_dir,
        gpu_id=gpu_id,
        epochs=epochs,
        seed=seed,
        learn_rate=learn_rate,
        dropout=dropout,
        batch_words=batch_words,
    )
    best = result.best_scores
    msg.good(
        f"Saved {output_dir}: best epoch {result.best_epoch}, dev F1 {best['f1']:.4f} "
        f"acc {best['accuracy']:.4f} loss {best['loss']:.4f}"
    )


if __name__ == "__main__":
    typer.run(main)
