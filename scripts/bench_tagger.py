"""Benchmark: our spaCy BiLSTM tagger against the study's plain PyTorch implementation.

    python -m scripts.bench_tagger corpus/train.spacy --output metrics/bench_tagger.json

Same backbone, sentences and batch size for both, alternating repetitions; reports words per
second (medians) and the ratios ours / plain (see ``nerloop.bench.tagger``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.bench.tagger import run_benchmark
from nerloop.cli import run_app
from nerloop.io_utils import atomic_write_json


def main(
    corpus_path: Path = typer.Argument(..., help="Gold DocBin to draw sentences from"),
    output: Path = typer.Option(Path("metrics/bench_tagger.json"), "--output", "-o"),
    config_path: Path = typer.Option(Path("configs/tagger_trf_cpu.cfg"), "--config"),
    model_path: str = typer.Option("", help="Transformer folder (default: the offline MiniLM)"),
    n_sentences: int = typer.Option(256, help="Sentences per repetition"),
    batch_size: int = typer.Option(32, help="Sentences per batch (both implementations)"),
    repetitions: int = typer.Option(3, help="Alternating repetitions; medians are reported"),
    lstm_width: int = typer.Option(256, help="BiLSTM width (both implementations)"),
    with_word_features: bool = typer.Option(False, help="Keep our config's case-aware features"),
    threads: int = typer.Option(2, help="torch threads"),
    seed: int = typer.Option(0),
) -> None:
    """Training and inference words/second of our tagger vs the plain PyTorch implementation."""
    result = run_benchmark(
        corpus_path, config_path, model_path, n_sentences, batch_size, repetitions,
        lstm_width, with_word_features, threads, seed,
    )  # fmt: skip
    atomic_write_json(output, result)
    speeds = result["words_per_second"]
    for kind in ("infer", "train"):
        ours, plain = speeds[f"ours_{kind}"]["median"], speeds[f"plain_{kind}"]["median"]
        msg.good(f"{kind}: ours {ours:.0f} w/s vs plain {plain:.0f} w/s (x{ours / plain:.2f})")


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
