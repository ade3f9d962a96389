"""Benchmark: sentences per second of ``annotate`` at several concurrencies, against a loopback
OpenAI-compatible server that takes a fixed time per request.

    python -m scripts.bench_annotate --latency 0.2 --concurrency 1 --concurrency 4 \
        --concurrency 16 --rounds 16 --output metrics/bench_annotate.json

Each level labels ``rounds x concurrency`` distinct synthetic sentences with the shipped
``configs/llm_token_ner_openai.cfg`` (pointed at the loopback server, with a fresh answer
cache), so the ideal time is ``rounds x latency`` at every level and the ideal speedup equals
the concurrency. Efficiency = measured speedup / ideal speedup; the target is at least 0.8 at
the highest level. The synthetic entities carry the label scheme's labels (``nerloop.labels``).
"""

from __future__ import annotations

import os
import platform
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import spacy
from spacy.tokens import Doc

from nerloop.corpus import meta
from nerloop.labels import LabelScheme, as_scheme
from nerloop.llm.annotator import annotate_live, load_llm_pipeline
from nerloop.llm.cache import AnswerCache

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "llm_token_ner_openai.cfg"
WORDS = ["the", "minister", "said", "on", "Monday", "that", "talks", "in", "were", "going", "well"]
# Entity words, given to the scheme's labels in turn.
NAME_WORDS = ["Peter", "Germany", "Reuters", "British"]


def synthetic_sentences(
    n: int, seed: int, labels: LabelScheme | Sequence[str] | None = None
) -> dict[tuple[str, ...], list[str]]:
    """``n`` distinct sentences of 8-20 tokens with an entity or two, and their IOB2 tags.

    n (int): The number of sentences.
    seed (int): The seed.
    labels (Union[LabelScheme, Sequence[str], None]): The label scheme of the entities (None:
        the default scheme).
    RETURNS (Dict[Tuple[str, ...], List[str]]): The tags per token sequence.
    """
    scheme = as_scheme(labels)
    names = [(NAME_WORDS[i % len(NAME_WORDS)], label) for i, label in enumerate(scheme.labels)]
    rng = random.Random(seed)
    sentences: dict[tuple[str, ...], list[str]] = {}
    while len(sentences) < n:
        tokens = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
        tags = ["O"] * len(tokens)
        for _ in range(rng.randint(1, 2)):
            name, label = rng.choice(names)
            position = rng.randrange(len(tokens))
            tokens[position], tags[position] = name, f"B-{label}"
        tokens += [f"#{len(sentences)}", "."]
        tags += ["O", "O"]
        sentences[tuple(tokens)] = tags
    return sentences


def bench(
    latency: float,
    levels: list[int],
    rounds: int,
    seed: int = 0,
    target: float = 0.8,
    labels: LabelScheme | str | Path | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Time ``annotate`` at each concurrency level against a loopback server.

    latency (float): seconds the server takes per request.
    levels (list[int]): concurrency levels (the first is the baseline for speedups).
    rounds (int): requests per worker at each level.
    seed (int): seed of the synthetic sentences.
    target (float): efficiency the highest level should reach.
    labels (Union[LabelScheme, Path, Sequence[str], None]): the label scheme (or its file) of the
        synthetic entities (None: the default scheme).
    RETURNS (dict): per level sentences, wall time, sentences per second, speedup, efficiency.
    """
    from nerloop.llm.loopback_server import FakeOpenAIServer, Oracle

    total = rounds * sum(levels)
    sentences = synthetic_sentences(total, seed, labels)
    oracle = Oracle(sentences)
    vocab = spacy.blank("en").vocab
    items = list(sentences)
    results = []
    with FakeOpenAIServer(oracle.responder, latency=latency) as server:
        overrides = {
            "components.llm.model.base_url": server.base_url,
            "components.llm.model.api_key_env": None,
            "components.llm.model.max_tries": 1,
        }
        nlp, _settings = load_llm_pipeline(CONFIG, overrides)
        start = 0
        for concurrency in levels:
            n = rounds * concurrency
            docs = []
            for i, tokens in enumerate(items[start : start + n]):
                doc = Doc(vocab, words=list(tokens))
                meta.set_meta(doc, sent_id=start + i, split="train")
                docs.append(doc)
            start += n
            with tempfile.TemporaryDirectory() as cache_dir, AnswerCache(cache_dir) as cache:
                run = annotate_live(
                    docs,
                    nlp,
                    cache=cache,
                    concurrency=concurrency,
                    annotator="bench",
                    source=str(CONFIG),
                    progress=False,
                )
            if run.failures:
                raise RuntimeError(f"benchmark run had failures: {run.failures[:3]}")
            wall = run.summary["wall_seconds"]
            results.append(
                {
                    "concurrency": concurrency,
                    "sentences": n,
                    "requests": run.summary["requests"]["http"].get("requests", 0),
                    "wall_seconds": wall,
                    "ideal_wall_seconds": round(rounds * latency, 3),
                    "sentences_per_second": round(n / wall, 2),
                }
            )
    baseline = results[0]["sentences_per_second"] / levels[0]
    for row in results:
        row["speedup"] = round(row["sentences_per_second"] / (baseline * levels[0]), 2)
        row["ideal_speedup"] = row["concurrency"] / levels[0]
        row["efficiency"] = round(row["speedup"] / row["ideal_speedup"], 3)
    return {
        "latency_seconds": latency,
        "rounds": rounds,
        "levels": results,
        "target_efficiency": target,
        "meets_target": results[-1]["efficiency"] >= target,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
