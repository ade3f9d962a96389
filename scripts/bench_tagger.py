"""Benchmark: our spaCy BiLSTM tagger against the study's plain PyTorch implementation.

Both run the same backbone (all-MiniLM-L6-v2 by default), the same sentences and the same batch
size, in one process, alternating repetitions so machine noise hits both alike. The plain
implementation is the study's: ``transformers.BertModel`` -> BiLSTM -> linear, first-subword
pooling, a hand-written AdamW training loop. Our side is the ``bio_ner`` pipeline built from
``configs/tagger_trf_cpu.cfg`` with only the transformer as tok2vec (same inputs as the plain
model; ``--with-word-features`` keeps the case-aware features of the shipped config).
Our inference is measured as shipped: the ``nerloop_transformer`` component reads 256 Docs ahead
and runs batches of ``--batch-size`` Docs of similar length; ``ours_infer_unbucketed`` is the same
pipeline with batches in input order, like the plain loop's, to show what the bucketing gains.
Reports words per second (medians over repetitions) and the ratios ours / plain.
"""

from __future__ import annotations

import platform
import random
import statistics
from pathlib import Path

import numpy
import torch
import typer
from wasabi import msg

from nerloop.bench.tagger import make_ours, make_plain, timed
from nerloop.io_utils import atomic_write_json, read_docbin


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
    import components.bio_ner as bio_ner

    torch.set_num_threads(threads)
    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)
    model_path = model_path or bio_ner.gt_minilm_path()
    docs = [d for d in read_docbin(corpus_path) if len(d)]
    random.Random(seed).shuffle(docs)
    docs = docs[:n_sentences]
    n_words = sum(len(d) for d in docs)
    msg.info(f"{len(docs)} sentences, {n_words} words, batch {batch_size}, backbone {model_path}")
    plain_train, plain_infer = make_plain(model_path, docs, batch_size, lstm_width)
    ours_train, ours_infer, ours_infer_unbucketed = make_ours(
        config_path, model_path, docs, batch_size, lstm_width, with_word_features
    )
    # warm-up: one pass each, not measured
    for fn in (plain_infer, ours_infer, ours_infer_unbucketed):
        fn()
    speeds: dict[str, list[float]] = {
        k: []
        for k in ("plain_train", "ours_train", "plain_infer", "ours_infer", "ours_infer_unbucketed")
    }
    for rep in range(repetitions):
        order = [("plain", plain_train, plain_infer), ("ours", ours_train, ours_infer)]
        if rep % 2:
            order.reverse()
        for name, train_fn, infer_fn in order:
            speeds[f"{name}_infer"].append(timed(infer_fn))
            if name == "ours":
                speeds["ours_infer_unbucketed"].append(timed(ours_infer_unbucketed))
            speeds[f"{name}_train"].append(timed(train_fn))
        msg.text(
            f"repetition {rep + 1}: " + ", ".join(f"{k} {v[-1]:.0f} w/s" for k, v in speeds.items())
        )
    medians = {k: statistics.median(v) for k, v in speeds.items()}
    result = {
        "backbone": str(model_path),
        "config": str(config_path),
        "word_features": with_word_features,
        "sentences": len(docs),
        "words": n_words,
        "batch_size": batch_size,
        "repetitions": repetitions,
        "torch_threads": threads,
        "machine": f"{platform.machine()} {platform.processor()} {torch.get_num_threads()} threads",
        "words_per_second": {k: {"median": medians[k], "runs": v} for k, v in speeds.items()},
        "ratio_inference": medians["ours_infer"] / medians["plain_infer"],
        # the pipeline as shipped (length-bucketed batches of the same size) and, to show where
        # the gain comes from, with batches in input order like the plain loop
        "ratio_inference_unbucketed": medians["ours_infer_unbucketed"] / medians["plain_infer"],
        "ratio_training": medians["ours_train"] / medians["plain_train"],
        "targets": {"inference": 1.0, "training": 0.9},
    }
    result["targets_met"] = {
        "inference": result["ratio_inference"] >= 1.0,
        "training": result["ratio_training"] >= 0.9,
    }
    atomic_write_json(output, result)
    for kind in ("infer", "train"):
        msg.good(
            f"{kind}: ours {medians[f'ours_{kind}']:.0f} w/s vs plain "
            f"{medians[f'plain_{kind}']:.0f} w/s "
            f"(x{medians[f'ours_{kind}'] / medians[f'plain_{kind}']:.2f})"
        )


if __name__ == "__main__":
    typer.run(main)
