"""Benchmark one active learning iteration, CNN against frozen-encoder tagger, side by side
(``nerloop.bench.experiment``).

    python -m scripts.bench_experiment compare training/llama405b/init_12/model-best \
        training/frozen/llama405b/init_12/model-best corpus/cheap/llama405b.spacy \
        corpus/train.spacy corpus/dev.spacy corpus/mixed/llama405b/init_12.json \
        --output metrics/bench_experiment.json
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from wasabi import msg

from nerloop.bench.experiment import one_iteration, run_benchmark
from nerloop.cli import run_app
from nerloop.io_utils import atomic_write_json

app = typer.Typer(add_completion=False)


@app.command()
def compare(
    cnn_model: Path = typer.Argument(..., exists=True, help="The CNN init model"),
    frozen_model: Path = typer.Argument(..., exists=True, help="The frozen-encoder init model"),
    cheap_path: Path = typer.Argument(..., exists=True, help="The cheap DocBin"),
    gold_path: Path = typer.Argument(..., exists=True, help="The gold train DocBin"),
    dev_path: Path = typer.Argument(..., exists=True, help="The gold dev DocBin"),
    expert_ids_path: Path = typer.Argument(..., exists=True, help="The init model's expert ids"),
    output: Path = typer.Option(..., "--output", help="Write the JSON report here"),
    repetitions: int = typer.Option(3, min=1, help="Alternating repetitions"),
    batch_to_add: int = typer.Option(10, min=1, help="Sentences picked"),
    epochs: int = typer.Option(2, min=1, help="Fine-tuning epochs"),
    store_summary: Path | None = typer.Option(
        None, "--store-summary", help="The features step's summary JSON (store size)"
    ),
) -> None:
    """Time an iteration of each model in alternating fresh processes."""
    store_bytes = None
    if store_summary is not None:
        stores = json.loads(store_summary.read_text())["stores"]
        store_bytes = sum(store["bytes"] for store in stores)
    report = run_benchmark(
        {"cnn": cnn_model, "frozen": frozen_model},
        cheap_path,
        gold_path,
        dev_path,
        expert_ids_path,
        repetitions=repetitions,
        batch_to_add=batch_to_add,
        epochs=epochs,
        store_bytes=store_bytes,
    )
    atomic_write_json(output, report)
    for name, medians in report["medians"].items():
        msg.info(
            f"{name}: iteration {medians['iteration_seconds']:.1f} s (score "
            f"{medians['score_seconds']:.1f} s, fine-tune {medians['finetune_seconds']:.1f} s), "
            f"peak {medians['peak_rss_mb']:.0f} MB"
        )
    for key, value in report["ratios"].items():
        msg.text(f"{key}: {value:.2f}x")


@app.command()
def one(
    model: Path = typer.Argument(..., exists=True),
    cheap_path: Path = typer.Argument(..., exists=True),
    gold_path: Path = typer.Argument(..., exists=True),
    dev_path: Path = typer.Argument(..., exists=True),
    expert_ids_path: Path = typer.Argument(..., exists=True),
    batch_to_add: int = typer.Option(10, min=1),
    epochs: int = typer.Option(2, min=1),
) -> None:
    """One iteration in this process; prints its JSON (used by compare)."""
    result = one_iteration(
        model,
        cheap_path,
        gold_path,
        dev_path,
        expert_ids_path,
        batch_to_add=batch_to_add,
        epochs=epochs,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    run_app(app)
