"""Run a trained pipeline over pool sentences and score them with a query strategy.

``predict_pool`` gives the strategy its input (tag probabilities, the constrained-Viterbi path,
Monte Carlo dropout samples when the strategy needs them, and the LLM's tags when the pool
sentences are cheap, LLM-labelled ones); ``score_pool`` times it and keeps what a person needs to
check a selection: the words, the predicted tags and the most uncertain tokens.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy
from spacy import util
from spacy.language import Language
from spacy.tokens import Doc
from tqdm import tqdm

from components.bio_ner import allowed_transitions, constrained_viterbi
from nerloop.al.strategies import PoolPredictions, QueryStrategy, entropy, no_llm_labels
from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.eval.metrics import doc_to_iob2
from nerloop.eval.pipeline import tagger_of, upstream_batches


class LlmLabelsError(NerloopError, ValueError):
    """The LLM-labelled Docs do not match the pool or the tagger's tags."""


def llm_tag_ids(
    docs: Sequence[Doc], llm_docs: Sequence[Doc], tag_names: Sequence[str]
) -> list[numpy.ndarray]:
    """The LLM's IOB2 tags of each pool sentence as ids of the tagger's tag columns.

    docs (Sequence[Doc]): The pool Docs.
    llm_docs (Sequence[Doc]): The same sentences (same order, same words) with the LLM's
        entities, e.g. the cheap Docs.
    tag_names (Sequence[str]): The tagger's tags (the columns of its probabilities).
    RETURNS (List[numpy.ndarray]): Per sentence, (n_tokens,) int64 tag ids.
    """
    if len(llm_docs) != len(docs):
        raise LlmLabelsError(f"{len(docs)} pool sentences but {len(llm_docs)} LLM-labelled ones")
    index = {name: i for i, name in enumerate(tag_names)}
    tag_ids = []
    for doc, llm_doc in zip(docs, llm_docs, strict=True):
        if [t.text for t in doc] != [t.text for t in llm_doc]:
            raise LlmLabelsError(
                f"sentence {meta.sent_id(doc)}: the LLM-labelled Doc has other words "
                f"({llm_doc.text!r}, not {doc.text!r})"
            )
        tags = doc_to_iob2(llm_doc)
        unknown = sorted({tag for tag in tags if tag not in index})
        if unknown:
            raise LlmLabelsError(
                f"sentence {meta.sent_id(doc)}: LLM tags {unknown} are not tags of the tagger "
                f"({', '.join(tag_names)}): were the cheap labels made with another label scheme?"
            )
        tag_ids.append(numpy.asarray([index[tag] for tag in tags], dtype=numpy.int64))
    return tag_ids


def predict_pool(
    nlp: Language,
    docs: Sequence[Doc],
    *,
    mc_samples: int = 0,
    mc_dropout: float = 0.1,
    round: int = 0,
    batch_size: int = 64,
    seed: int | None = None,
    progress: bool = True,
    llm_docs: Sequence[Doc] | None = None,
) -> PoolPredictions:
    """The tagger's predictions for pool Docs (only their words are used).

    nlp (Language): A pipeline with a ``bio_ner`` component.
    docs (Sequence[Doc]): Pool Docs with a ``sent_id`` in ``user_data``.
    mc_samples (int): Monte Carlo dropout samples per sentence (0: one deterministic pass). With
        samples, ``probs`` is their mean.
    mc_dropout (float): The dropout rate kept active for the samples.
    round (int): The active learning iteration (passed on to the strategies).
    batch_size (int): Sentences per forward pass.
    seed (Optional[int]): Seeds random, numpy and torch first, so MC samples are reproducible.
    progress (bool): Show a progress bar.
    llm_docs (Optional[Sequence[Doc]]): The pool sentences with the LLM's labels (the cheap Docs
        of ``docs``, in their order), which fill ``llm_tags``; None when the pool has none.
    RETURNS (PoolPredictions): The predictions, in the order of ``docs``.
    """
    if seed is not None:
        util.fix_random_seed(seed)
    tagger = tagger_of(nlp)
    llm_tags = None if llm_docs is None else llm_tag_ids(docs, llm_docs, tagger.tag_names)
    allowed, allowed_start = allowed_transitions(tagger.tag_names)
    probs: list[numpy.ndarray] = []
    samples: list[numpy.ndarray] | None = [] if mc_samples else None
    bar = tqdm(total=len(docs), desc="score pool", unit="sent", disable=not progress, leave=False)
    for batch in upstream_batches(nlp, docs, batch_size):
        if samples is not None:
            batch_samples = tagger.sample_proba(batch, n_samples=mc_samples, dropout=mc_dropout)
            samples.extend(batch_samples)
            probs.extend(sample.mean(axis=0) for sample in batch_samples)
        else:
            probs.extend(tagger.predict_proba(batch))
        bar.update(len(batch))
    bar.close()
    paths = constrained_viterbi(probs, allowed, allowed_start)
    return PoolPredictions(
        sent_ids=[meta.sent_id(doc) for doc in docs],
        probs=probs,
        paths=paths,
        samples=samples,
        round=round,
        llm_tags=llm_tags,
    )


@dataclass
class ScoredPool:
    """Strategy scores of a pool with what is needed to read them."""

    strategy: str
    sent_ids: list[int]
    scores: numpy.ndarray
    tokens: list[list[str]]
    tags: list[list[str]]
    token_entropies: list[numpy.ndarray]
    seconds: float

    @property
    def n_words(self) -> int:
        return sum(len(words) for words in self.tokens)

    @property
    def sentences_per_second(self) -> float:
        return len(self.sent_ids) / self.seconds if self.seconds > 0 else 0.0

    def stats(self) -> dict[str, Any]:
        """Throughput of the scoring (prediction, MC samples, decoding and the strategy)."""
        return {
            "strategy": self.strategy,
            "n_sentences": len(self.sent_ids),
            "n_words": self.n_words,
            "seconds": self.seconds,
            "sentences_per_second": self.sentences_per_second,
            "words_per_second": self.n_words / self.seconds if self.seconds > 0 else 0.0,
        }

    def rows(self, top_tokens: int = 3) -> list[dict[str, Any]]:
        """One JSON-able row per sentence, most uncertain first (ties by sentence id):
        ``sent_id``, ``rank``, ``score``, ``tokens``, ``tags`` and ``uncertain_tokens`` (the
        ``top_tokens`` tokens of highest entropy, with their index, text, tag and entropy)."""
        from nerloop.al.selection import rank

        rows = []
        for place, position in enumerate(rank(self.sent_ids, self.scores), start=1):
            entropies = self.token_entropies[position]
            words, tags = self.tokens[position], self.tags[position]
            order = numpy.argsort(-entropies, kind="stable")[:top_tokens]
            rows.append(
                {
                    "sent_id": self.sent_ids[position],
                    "rank": place,
                    "score": float(self.scores[position]),
                    "tokens": words,
                    "tags": tags,
                    "uncertain_tokens": [
                        {
                            "index": int(i),
                            "token": words[i],
                            "tag": tags[i],
                            "entropy": round(float(entropies[i]), 6),
                        }
                        for i in order
                    ],
                }
            )
        return rows


def score_pool(
    nlp: Language,
    docs: Sequence[Doc],
    strategy: QueryStrategy,
    *,
    round: int = 0,
    batch_size: int = 64,
    seed: int | None = None,
    progress: bool = True,
    llm_docs: Sequence[Doc] | None = None,
) -> ScoredPool:
    """Predict the pool and score each sentence with ``strategy`` (timed end to end).

    llm_docs (Optional[Sequence[Doc]]): The pool sentences with the LLM's labels, as in
        ``predict_pool`` (needed by strategies with ``needs_llm_tags``).
    """
    if strategy.needs_llm_tags and llm_docs is None:
        raise no_llm_labels(strategy)
    start = time.perf_counter()
    predictions = predict_pool(
        nlp,
        docs,
        mc_samples=strategy.mc_samples,
        mc_dropout=strategy.mc_dropout,
        round=round,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        llm_docs=llm_docs,
    )
    scores = strategy.score(predictions)
    seconds = time.perf_counter() - start
    tag_names = tagger_of(nlp).tag_names
    return ScoredPool(
        strategy=str(strategy),
        sent_ids=predictions.sent_ids,
        scores=scores,
        tokens=[[token.text for token in doc] for doc in docs],
        tags=[[tag_names[i] for i in path] for path in predictions.paths],
        token_entropies=[entropy(p) for p in predictions.probs],
        seconds=seconds,
    )
