"""One iteration of active learning, shared by the simulated loop (``al``, ``al-compare``) and the
loop with real experts (``al_human select|update``).

``select`` scores the candidate sentences with the current model and picks the batch the experts
label next. ``update`` builds the training set (the cheap set, with the experts' labels for every
expert sentence so far), fine-tunes the model (warm, or a fresh one in ``from_scratch`` mode),
scores it on dev and commits the checkpoint ``active_iter_{i}_added_{n}`` with its manifest to a
``CheckpointStore``. The simulated loop's experts are the gold labels; the human loop's are the
imported answers: nothing else differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc

from nerloop.al.checkpoints import CheckpointStore, manifest
from nerloop.al.scoring import ScoredPool, score_pool
from nerloop.al.selection import select_batch
from nerloop.al.settings import MANIFEST_VERSION, IterationSettings
from nerloop.al.strategies import QueryStrategy
from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.eval.pipeline import evaluate_pipeline
from nerloop.mixing import CHEAP_SOURCE, EXPERT_SOURCE, MixedCorpus, merge_labels
from nerloop.training import DEV_KEYS, finetune


class TrainingSetError(NerloopError, ValueError):
    """The expert sentences cannot be mixed into the cheap set (different words)."""


@dataclass
class Selection:
    """The batch chosen in one iteration.

    sent_ids (List[int]): The chosen sentences, best first.
    scored (ScoredPool): The scores of every candidate.
    """

    iteration: int
    sent_ids: list[int]
    scored: ScoredPool

    def selected(self) -> list[dict[str, Any]]:
        """``sent_id``, ``score``, ``text`` and ``n_tokens`` (the words an expert labels) of each
        chosen sentence (a manifest's ``selected``)."""
        position = {sent_id: i for i, sent_id in enumerate(self.scored.sent_ids)}
        return [
            {
                "sent_id": sent_id,
                "score": float(self.scored.scores[position[sent_id]]),
                "text": " ".join(self.scored.tokens[position[sent_id]]),
                "n_tokens": len(self.scored.tokens[position[sent_id]]),
            }
            for sent_id in self.sent_ids
        ]


def select(
    nlp: Language,
    pool_docs: Sequence[Doc],
    strategy: QueryStrategy,
    batch_to_add: int,
    *,
    iteration: int,
    seed: int,
    max_jaccard: float | None = None,
    batch_size: int = 64,
    progress: bool = True,
    budget_unit: str = "sentences",
    llm_docs: Sequence[Doc] | None = None,
) -> Selection:
    """Score the candidates with ``strategy`` and choose the next batch.

    nlp (Language): The model of iteration ``iteration - 1``.
    pool_docs (Sequence[Doc]): The candidates (not labelled yet; only their words are used).
    strategy (QueryStrategy): The query strategy.
    batch_to_add (int): The batch's budget: sentences, or tokens with ``budget_unit="tokens"``.
    iteration (int): The iteration the batch is for (seeds MC dropout with ``seed + iteration``).
    seed (int): The run's seed.
    max_jaccard (Optional[float]): The diversity rule of ``select_batch``.
    batch_size (int): Sentences per scoring pass.
    budget_unit (str): What ``batch_to_add`` counts: ``sentences`` or ``tokens``.
    llm_docs (Optional[Sequence[Doc]]): The candidates with the LLM's labels (their cheap Docs,
        in the order of ``pool_docs``) when the pool is the cheap set (llm-disagreement).
    RETURNS (Selection): The chosen sentence ids with every candidate's score.
    """
    scored = score_pool(
        nlp,
        pool_docs,
        strategy,
        round=iteration,
        batch_size=batch_size,
        seed=seed + iteration,
        progress=progress,
        llm_docs=llm_docs,
    )
    chosen = select_batch(
        scored.sent_ids,
        scored.scores,
        scored.tokens,
        batch_to_add,
        max_jaccard=max_jaccard,
        budget_unit=budget_unit,
    )
    return Selection(iteration=iteration, sent_ids=chosen, scored=scored)


def training_set(
    cheap_docs: Sequence[Doc],
    expert_docs: Sequence[Doc],
    *,
    cheap_weight: float = 1.0,
    expert_weight: float = 1.0,
) -> MixedCorpus:
    """The cheap Docs without an expert version plus every expert Doc, sorted by sentence id.

    An expert sentence may or may not be in the cheap set (it replaces its cheap version if it
    is); with the gold Docs of the sentences as experts this is ``nerloop.mixing.mix_corpus``.
    """
    cheap = meta.by_sent_id(cheap_docs)
    experts = meta.by_sent_id(expert_docs)
    try:
        docs = merge_labels(cheap, experts, cheap_weight, expert_weight)
    except ValueError as err:
        raise TrainingSetError(str(err)) from None
    summary = {
        "n_docs": len(docs),
        "counts": {CHEAP_SOURCE: len(docs) - len(experts), EXPERT_SOURCE: len(experts)},
        "n_replaced": len(set(experts) & set(cheap)),
        "cheap_weight": float(cheap_weight),
        "expert_weight": float(expert_weight),
    }
    return MixedCorpus(docs=docs, summary=summary)


def dev_scores(scores: dict[str, Any]) -> dict[str, float]:
    """The dev scores a manifest records (``DEV_KEYS``)."""
    return {key: float(scores[key]) for key in DEV_KEYS}


ModelOrFactory = Language | Callable[[list[Doc]], Language]


def update(
    store: CheckpointStore,
    model: ModelOrFactory,
    expert_docs: Sequence[Doc],
    cheap_docs: Sequence[Doc],
    dev_docs: Sequence[Doc],
    settings: IterationSettings,
    *,
    iteration: int,
    added_ids: Sequence[int],
    all_added_ids: Sequence[int],
    n_initial_expert: int,
    previous_f1: float | None,
    epochs: int | None = None,
    score_seconds: float = 0.0,
    started: float | None = None,
    progress: bool = False,
    record: dict[str, Any] | None = None,
) -> tuple[Language, dict[str, Any]]:
    """Train on the cheap set with the experts' labels, score on dev, commit the checkpoint.

    store (CheckpointStore): Where the checkpoint and its manifest go.
    model (Language | Callable[[List[Doc]], Language]): The model to fine-tune warm, or a
        function making a fresh one from the training Docs (iteration 0, ``from_scratch``).
    expert_docs (Sequence[Doc]): Every expert-labelled sentence so far, the initial ones
        included, with the experts' labels (gold in the simulated loop).
    cheap_docs (Sequence[Doc]): The cheap set.
    dev_docs (Sequence[Doc]): Gold dev (F1, accuracy, loss).
    settings (IterationSettings): Epochs, optimiser settings, loss weights, the seed.
    iteration (int): This iteration (fine-tuning seeded with ``settings.seed + iteration``).
    added_ids (Sequence[int]): The sentences this iteration added.
    all_added_ids (Sequence[int]): Every sentence active learning added so far.
    n_initial_expert (int): Expert sentences of the starting model (not counted in ``n_added``).
    previous_f1 (Optional[float]): Dev F1 of the previous iteration (None: no gain).
    epochs (Optional[int]): Training epochs (default ``settings.finetune_epochs``; 0: only score).
    score_seconds (float): Time the selection took (the manifest's ``seconds.score``).
    started (Optional[float]): ``time.perf_counter()`` at the start of the iteration.
    record (Optional[dict]): The other manifest keys (``strategy``, ``selected``, ``scoring``,
        ``mode``, ``settings``, ...).
    RETURNS (Tuple[Language, dict]): The trained model and the checkpoint's manifest.
    """
    epochs = settings.finetune_epochs if epochs is None else epochs
    start = time.perf_counter()
    mixed = training_set(
        cheap_docs,
        expert_docs,
        cheap_weight=settings.cheap_weight,
        expert_weight=settings.expert_weight,
    )
    nlp = model if isinstance(model, Language) else model(mixed.docs)
    if epochs:
        result = finetune(
            nlp,
            mixed.docs,
            dev_docs,
            epochs=epochs,
            seed=settings.seed + iteration,
            learn_rate=settings.learn_rate,
            dropout=settings.dropout,
            batch_words=settings.batch_words,
            eval_every=epochs,
            keep_best=False,
            progress=progress,
            description=f"finetune iteration {iteration}",
            training=dict(settings.training_overrides) or None,
        )
        nlp, dev = result.nlp, dev_scores(result.last_scores)
    else:
        dev = dev_scores(evaluate_pipeline(nlp, dev_docs, progress=False))
    seconds = {"score": score_seconds, "finetune": time.perf_counter() - start}
    entry = manifest(
        version=MANIFEST_VERSION,
        iteration=iteration,
        n_initial_expert=n_initial_expert,
        added_ids=list(added_ids),
        all_added_ids=list(all_added_ids),
        dev=dev,
        gain=None if previous_f1 is None else dev["f1"] - previous_f1,
        n_train_docs=len(mixed.docs),
        training_set=mixed.summary,
        epochs=epochs,
        seconds=seconds,
        **(record or {}),
    )
    store.commit(nlp, entry, started)
    return nlp, entry
