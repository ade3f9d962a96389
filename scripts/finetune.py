"""Fine-tune a ``bio_ner`` pipeline (or train one from a config) on a DocBin, scoring dev
every epoch; writes model-best, model-last and history.json (``nerloop.training``).

    python -m scripts.finetune mixed.spacy corpus/dev.spacy out --config configs/tagger_cnn.cfg
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import OVERRIDES_CONTEXT, config_overrides, run_app
from nerloop.io_utils import read_docbin
from nerloop.training import train_on_docs
from scripts.options import BatchWordsOption, DropoutOption, GpuIdOption, LearnRateOption


def main(
    ctx: typer.Context,
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
    """Fine-tune a pipeline (or train one from a config) on a DocBin, scoring dev every epoch.
    Extra ``--section.key value`` options override the config of a fresh pipeline, e.g.
    ``--paths.features features`` (the frozen encoder's feature store)."""
    overrides = config_overrides(ctx)
    if overrides and config_path is None:
        msg.fail(f"Config overrides {sorted(overrides)} need --config (a fresh pipeline)", exits=1)
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
        overrides=overrides,
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


app = typer.Typer(add_completion=False)
app.command(context_settings=OVERRIDES_CONTEXT)(main)

if __name__ == "__main__":
    run_app(app)
