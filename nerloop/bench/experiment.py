"""Benchmark: one active learning iteration with the CNN and with the frozen-encoder tagger.

Each repetition runs, in a fresh process per model (so each has its own peak memory), what an
iteration of ``al`` does on the Llama setting: score the whole expert pool with the entropy
strategy and pick ``batch_to_add`` sentences (``nerloop.al.iteration.select``), then fine-tune
warm for ``epochs`` epochs on the cheap set plus the experts' sentences and score dev
(``nerloop.training.finetune``). The models alternate within each repetition so machine noise
hits both alike; the report gives medians and the ratio frozen / CNN.
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from nerloop.io_utils import read_docbin


def one_iteration(
    model: Path,
    cheap_path: Path,
    gold_path: Path,
    dev_path: Path,
    expert_ids_path: Path,
    *,
    batch_to_add: int = 10,
    epochs: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """Time one iteration (selection, fine-tuning with dev scoring) in this process."""
    from nerloop.al.iteration import select, training_set
    from nerloop.al.strategies import make_strategy
    from nerloop.corpus import meta
    from nerloop.eval.pipeline import load_pipeline
    from nerloop.mixing import expert_pool, read_expert_ids
    from nerloop.training import finetune

    started = time.perf_counter()
    nlp = load_pipeline(model)
    cheap = read_docbin(cheap_path)
    gold = meta.by_sent_id(read_docbin(gold_path))
    dev = read_docbin(dev_path)
    initial = read_expert_ids(expert_ids_path)
    pool_ids = sorted(set(expert_pool([meta.sent_id(d) for d in cheap], gold)) - set(initial))
    pool = [gold[i] for i in pool_ids]
    loaded = time.perf_counter()
    selection = select(
        nlp, pool, make_strategy("entropy"), batch_to_add, iteration=1, seed=seed, progress=False
    )
    selected = time.perf_counter()
    experts = [gold[i] for i in [*initial, *selection.sent_ids]]
    mixed = training_set(cheap, experts)
    result = finetune(nlp, mixed.docs, dev, epochs=epochs, seed=seed + 1, progress=False)
    trained = time.perf_counter()
    train_seconds = sum(row["seconds"] for row in result.history)
    words = sum(row["words"] for row in result.history)
    pool_words = sum(len(doc) for doc in pool)
    return {
        "model": str(model),
        "load_seconds": loaded - started,
        "score_seconds": selected - loaded,
        "finetune_seconds": trained - selected,
        "iteration_seconds": trained - loaded,
        "scoring_words_per_second": pool_words / (selected - loaded),
        "scoring_sentences_per_second": len(pool) / (selected - loaded),
        "training_words_per_second": words / train_seconds if train_seconds else 0.0,
        "dev_f1": result.last_scores["f1"],
        "pool_sentences": len(pool),
        "train_docs": len(mixed.docs),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_benchmark(
    models: dict[str, Path],
    cheap_path: Path,
    gold_path: Path,
    dev_path: Path,
    expert_ids_path: Path,
    *,
    repetitions: int = 3,
    batch_to_add: int = 10,
    epochs: int = 2,
    store_bytes: int | None = None,
) -> dict[str, Any]:
    """Alternate fresh processes of ``one_iteration`` per model; medians and ratios."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in models}
    for repetition in range(repetitions):
        order = list(models) if repetition % 2 == 0 else list(reversed(models))
        for name in order:
            command = [
                sys.executable,
                "-m",
                "scripts.bench_experiment",
                "one",
                str(models[name]),
                str(cheap_path),
                str(gold_path),
                str(dev_path),
                str(expert_ids_path),
                "--batch-to-add",
                str(batch_to_add),
                "--epochs",
                str(epochs),
            ]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    keys = [key for key in runs[next(iter(models))][0] if key != "model"]
    medians = {
        name: {key: statistics.median(run[key] for run in rows) for key in keys}
        for name, rows in runs.items()
    }
    names = list(models)
    ratios = {}
    if len(names) == 2:
        base, other = names
        ratios = {
            f"{other}_over_{base}_{key}": medians[other][key] / medians[base][key]
            for key in (
                "iteration_seconds",
                "score_seconds",
                "finetune_seconds",
                "scoring_words_per_second",
                "training_words_per_second",
                "peak_rss_mb",
            )
            if medians[base][key]
        }
    return {
        "repetitions": repetitions,
        "batch_to_add": batch_to_add,
        "epochs": epochs,
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "feature_store_bytes": store_bytes,
        "medians": medians,
        "ratios": ratios,
        "runs": runs,
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))
