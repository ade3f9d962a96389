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
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy
import torch
from spacy.tokens import Doc
from spacy.training import Example
from wasabi import msg

from nerloop.eval.metrics import doc_to_iob2
from nerloop.io_utils import read_docbin
from nerloop.labels import load_scheme

# the plain model's tag columns: the default label scheme's IOB2 tags
TAGS = load_scheme(None).tag_names


class PlainTagger(torch.nn.Module):
    """The study's model: BERT -> BiLSTM -> linear over the first sub-token of each word."""

    def __init__(self, model_path: str, n_tags: int, lstm_width: int) -> None:
        super().__init__()
        from transformers import AutoModel

        self.bert = AutoModel.from_pretrained(model_path)
        self.lstm = torch.nn.LSTM(
            self.bert.config.hidden_size, lstm_width, batch_first=True, bidirectional=True
        )
        self.output = torch.nn.Linear(2 * lstm_width, n_tags)

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden, _ = self.lstm(hidden)
        return self.output(hidden)


def plain_batches(tokenizer, docs: Sequence[Doc], batch_size: int) -> list[dict]:
    """Tokenised batches with labels on first sub-tokens (-100 elsewhere), as the study does."""
    index = {tag: i for i, tag in enumerate(TAGS)}
    batches = []
    for start in range(0, len(docs), batch_size):
        batch = docs[start : start + batch_size]
        words = [[t.text for t in doc] for doc in batch]
        encoded = tokenizer(
            words,
            is_split_into_words=True,
            truncation=True,
            max_length=256,
            padding=True,
            return_tensors="pt",
        )
        labels = torch.full(encoded["input_ids"].shape, -100, dtype=torch.long)
        for row, doc in enumerate(batch):
            tags = doc_to_iob2(doc)
            previous = None
            for position, word_id in enumerate(encoded.word_ids(row)):
                if word_id is not None and word_id != previous:
                    labels[row, position] = index[tags[word_id]]
                previous = word_id
        batches.append({"encoded": encoded, "labels": labels, "n_words": sum(map(len, words))})
    return batches


def make_plain(model_path: str, docs: Sequence[Doc], batch_size: int, lstm_width: int):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = PlainTagger(model_path, len(TAGS), lstm_width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)

    def train_epoch() -> int:
        model.train()
        n_words = 0
        # tokenisation is part of the work, as it is for the spaCy pipeline
        for batch in plain_batches(tokenizer, docs, batch_size):
            optimizer.zero_grad()
            logits = model(batch["encoded"]["input_ids"], batch["encoded"]["attention_mask"])
            loss = loss_fn(logits.reshape(-1, len(TAGS)), batch["labels"].reshape(-1))
            loss.backward()
            optimizer.step()
            n_words += batch["n_words"]
        return n_words

    def infer() -> int:
        model.eval()
        n_words = 0
        with torch.no_grad():
            for batch in plain_batches(tokenizer, docs, batch_size):
                logits = model(batch["encoded"]["input_ids"], batch["encoded"]["attention_mask"])
                logits.argmax(-1).numpy()
                n_words += batch["n_words"]
        return n_words

    return train_epoch, infer


def make_ours(
    config_path: Path,
    model_path: str,
    docs: Sequence[Doc],
    batch_size: int,
    lstm_width: int,
    word_features: bool,
):
    from spacy.util import load_config, load_model_from_config

    import components.bio_ner  # noqa: F401

    config = load_config(config_path)
    config["components"]["transformer"]["model"]["name"] = model_path
    config["components"]["bio_ner"]["model"]["width"] = lstm_width
    tok2vec = config["components"]["bio_ner"]["model"]["tok2vec"]
    if not word_features and tok2vec.get("@layers") == "concatenate.v1":
        config["components"]["bio_ner"]["model"]["tok2vec"] = tok2vec["*"]["transformer"]
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    examples = [
        Example(
            Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]), d
        )
        for d in docs
    ]
    optimizer = nlp.initialize(lambda: examples)
    texts = [ex.predicted.copy() for ex in examples]

    def train_epoch() -> int:
        n_words = 0
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            nlp.update(batch, sgd=optimizer, drop=0.1)
            n_words += sum(len(ex.predicted) for ex in batch)
        return n_words

    def infer() -> int:
        n_words = 0
        for doc in nlp.pipe([d.copy() for d in texts], batch_size=batch_size):
            n_words += len(doc)
        return n_words

    def infer_unbucketed() -> int:
        """The same pipeline with batches in input order (no length-sorted read-ahead): what
        the bucketing of the nerloop_transformer component gains."""
        transformer = nlp.get_pipe("transformer")
        buffer_size = transformer.cfg.get("buffer_size")
        transformer.cfg["buffer_size"] = batch_size
        try:
            return infer()
        finally:
            if buffer_size is None:
                transformer.cfg.pop("buffer_size")
            else:
                transformer.cfg["buffer_size"] = buffer_size

    return train_epoch, infer, infer_unbucketed


def timed(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    n_words = fn()
    return n_words / (time.perf_counter() - start)


def run_benchmark(
    corpus_path: Path,
    config_path: Path = Path("configs/tagger_trf_cpu.cfg"),
    model_path: str = "",
    n_sentences: int = 256,
    batch_size: int = 32,
    repetitions: int = 3,
    lstm_width: int = 256,
    with_word_features: bool = False,
    threads: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """Training and inference words/second of our tagger and the plain PyTorch one, on the
    same seeded sample of sentences, alternating repetitions; medians and ratios.

    corpus_path (Path): gold DocBin to draw sentences from.
    config_path (Path): our tagger's config; model_path (str): the transformer folder
        (default: the offline MiniLM).
    with_word_features (bool): keep our config's case-aware features.
    threads (int): torch threads; seed (int): the sample's and the weights' seed.
    RETURNS (dict): the setting, words per second per run and their medians, the ratios ours /
        plain, the targets and whether they are met.
    """
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
    return result
