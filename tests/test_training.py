"""``finetune`` goes through spaCy's training loop: the ``[training]`` settings
(accumulate_gradient, patience, max_steps, eval_frequency, before_update, score_weights, frozen
components) act as in ``spacy train``, per-example loss weights hold, and a seed gives the same
weights, on the six sentences of tests/tiny_tagger.py with configs/tagger_tiny.cfg."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy
import pytest
from spacy import util
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training.batchers import minibatch_by_words

from nerloop.errors import SettingsError
from nerloop.training import FinetuneResult, TrainingDataError, finetune, init_pipeline
from tests.tiny_tagger import TINY_CONFIG, sentence_docs

N_WORDS = 33  # the six sentences
STEP_CALLS: list[dict[str, Any]] = []


@util.registry.callbacks("nerloop_test.record_steps.v1")
def record_steps() -> Callable[[Language, dict[str, Any]], None]:
    """A ``before_update`` callback that records the step info it is called with."""

    def before_update(nlp: Language, info: dict[str, Any]) -> None:
        assert "bio_ner" in nlp.pipe_names
        STEP_CALLS.append(dict(info))

    return before_update


def weights(nlp: Language) -> list[numpy.ndarray]:
    model = nlp.get_pipe("bio_ner").model
    return [
        node.get_param(name).copy()
        for node in model.walk()
        for name in node.param_names
        if node.has_param(name)
    ]


def same(first: list[numpy.ndarray], second: list[numpy.ndarray]) -> bool:
    return all(numpy.array_equal(a, b) for a, b in zip(first, second, strict=True))


def train(docs: list[Doc] | None = None, **kwargs: Any) -> tuple[FinetuneResult, list]:
    """Fine-tune a fresh tiny pipeline (dev = train); the result and the initial weights."""
    docs = sentence_docs() if docs is None else docs
    nlp = init_pipeline(TINY_CONFIG, docs, seed=0)
    initial = weights(nlp)
    return finetune(nlp, docs, docs, progress=False, **kwargs), initial


def batches_per_epoch(epochs: int, seed: int, batch_words: int) -> list[int]:
    """The batches of each epoch as finetune's seeded shuffle and the by-words batcher make them."""
    order, shuffler, counts = sentence_docs(), random.Random(seed), []
    for _ in range(epochs):
        shuffler.shuffle(order)
        counts.append(len(list(minibatch_by_words(order, size=batch_words, tolerance=0.2))))
    return counts


def test_accumulate_gradient_splits_each_batch_and_adds_the_gradients(monkeypatch) -> None:
    runs = {}
    for accumulate in (1, 2):
        docs = sentence_docs()
        nlp = init_pipeline(TINY_CONFIG, docs, seed=0)
        tagger = nlp.get_pipe("bio_ner")
        updates: list[int] = []
        finish_updates: list[int] = []
        original_update, original_finish = tagger.update, tagger.finish_update

        def update(examples, *args, _calls=updates, _update=original_update, **kwargs):
            examples = list(examples)
            _calls.append(len(examples))
            return _update(examples, *args, **kwargs)

        def finish_update(sgd, _calls=finish_updates, _finish=original_finish):
            _calls.append(1)
            return _finish(sgd)

        monkeypatch.setattr(tagger, "update", update)
        monkeypatch.setattr(tagger, "finish_update", finish_update)
        initial = weights(nlp)
        result = finetune(
            nlp,
            docs,
            docs,
            epochs=3,
            progress=False,
            training={"accumulate_gradient": accumulate},
        )
        runs[accumulate] = weights(nlp)
        assert result.steps == 3 and len(finish_updates) == 3  # one optimizer step per batch
        assert result.settings["accumulate_gradient"] == accumulate
        assert not same(initial, runs[accumulate])
        # one batch of 6 sentences per epoch: one update, or two of 3 sentences each
        assert updates == ([6] * 3 if accumulate == 1 else [3, 3] * 3)
    # the loss is a sum over tokens: two accumulated halves give the full batch's gradient
    for full, halves in zip(runs[1], runs[2], strict=True):
        numpy.testing.assert_allclose(full, halves, rtol=0, atol=1e-5)


def test_patience_counts_steps_since_the_best_evaluation() -> None:
    # frozen bio_ner: nothing changes, the score ties, and the earliest step (0) stays the best
    frozen, initial = train(epochs=40, training={"patience": 3, "frozen_components": ["bio_ner"]})
    assert same(initial, weights(frozen.nlp))
    assert frozen.steps == 4 and [c["step"] for c in frozen.checkpoints] == [0, 1, 2, 3]
    assert [h["epoch"] for h in frozen.history] == [1, 2, 3, 4] and frozen.best_epoch == 1
    assert all(h["train_loss"] == 0.0 and h["words"] == N_WORDS for h in frozen.history)
    # stopped between evaluations (3 batches per epoch): the partial last epoch is evaluated
    early, _ = train(
        epochs=5, batch_words=12, training={"patience": 1, "frozen_components": ["bio_ner"]}
    )
    assert early.steps == 2 and [c["step"] for c in early.checkpoints] == [0]
    assert [h["epoch"] for h in early.history] == [1] and early.history[0]["words"] < N_WORDS
    assert early.last_scores == frozen.last_scores
    # training: it stops `patience` steps after the (earliest) best evaluation, long before 40
    result, _ = train(epochs=40, training={"patience": 3})
    scores = [c["score"] for c in result.checkpoints]
    best_step = scores.index(max(scores))
    assert result.steps == best_step + 3 + 1 < 40
    assert len(result.history) == result.steps and result.best_epoch == best_step + 1
    assert all("dev" in entry for entry in result.history)


def test_max_steps_caps_the_steps_and_the_last_step_is_evaluated() -> None:
    result, _ = train(epochs=10, batch_words=12, training={"max_steps": 4})
    first = batches_per_epoch(1, seed=0, batch_words=12)[0]
    assert first == 3
    assert result.steps == 5  # steps 0..4: spaCy's loop stops after step max_steps
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[0]["words"] == N_WORDS and result.history[1]["words"] < N_WORDS
    # evaluated at the end of epoch 1 (step 2) and after the last step; step 0 only when
    # patience could stop the run (tagger_tiny.cfg: patience 0), see the next test
    assert [c["step"] for c in result.checkpoints] == [2, 4]
    patient, _ = train(epochs=10, batch_words=12, training={"max_steps": 4, "patience": 4})
    assert [c["step"] for c in patient.checkpoints][:2] == [0, 2]
    # a patience the run cannot reach does not need step 0 either
    unreachable, _ = train(epochs=10, batch_words=12, training={"max_steps": 4, "patience": 5})
    assert [c["step"] for c in unreachable.checkpoints] == [2, 4]
    assert result.history[1]["dev"] == result.checkpoints[-1]["dev"]
    assert result.last_epoch == 2 and set(result.last_scores) >= {"f1", "accuracy", "loss"}


def test_eval_frequency_set_through_training_adds_step_evaluations() -> None:
    counts = batches_per_epoch(3, seed=0, batch_words=12)
    ends = [sum(counts[: i + 1]) - 1 for i in range(3)]
    result, _ = train(epochs=3, batch_words=12, training={"eval_frequency": 2})
    assert result.steps == sum(counts)
    expected = sorted({0, *range(0, sum(counts), 2), *ends})
    assert [c["step"] for c in result.checkpoints] == expected
    for entry, end in zip(result.history, ends, strict=True):
        assert entry["dev"] == next(c["dev"] for c in result.checkpoints if c["step"] == end)
    # without the override, the config's eval_frequency (20) is not used: the epoch ends only
    plain, _ = train(epochs=3, batch_words=12)
    assert [c["step"] for c in plain.checkpoints] == ends


def test_before_update_is_called_with_the_step_info_each_step() -> None:
    STEP_CALLS.clear()
    callback = {"@callbacks": "nerloop_test.record_steps.v1"}
    result, _ = train(epochs=2, seed=3, batch_words=12, training={"before_update": callback})
    counts = batches_per_epoch(2, seed=3, batch_words=12)
    epochs = [epoch for epoch, count in enumerate(counts) for _ in range(count)]
    assert STEP_CALLS == [{"step": step, "epoch": epoch} for step, epoch in enumerate(epochs)]
    assert result.steps == len(STEP_CALLS)
    STEP_CALLS.clear()
    train(epochs=1, training={"before_update.@callbacks": "nerloop_test.record_steps.v1"})
    assert STEP_CALLS == [{"step": 0, "epoch": 0}]


def test_score_weights_choose_the_best_epoch() -> None:
    weights_by_accuracy = {"score_weights.ents_f": 0.0, "score_weights.accuracy": 1.0}
    result, _ = train(epochs=4, training=weights_by_accuracy)
    expected_weights = {"f1": 0.0, "precision": 0.0, "recall": 0.0, "accuracy": 1.0}
    assert result.settings["score_weights"] == expected_weights
    accuracies = [entry["dev"]["accuracy"] for entry in result.history]
    assert [entry["score"] for entry in result.history] == accuracies
    assert result.best_epoch == accuracies.index(max(accuracies)) + 1


def test_unknown_or_unused_training_keys_raise_settings_error() -> None:
    with pytest.raises(SettingsError, match="unknown \\[training\\] setting 'patiense'"):
        train(epochs=1, training={"patiense": 3})
    with pytest.raises(SettingsError, match="\\[training\\] seed is not used by finetune"):
        train(epochs=1, training={"training.seed": 3})
    with pytest.raises(SettingsError, match="lern_rate"):
        train(epochs=1, training={"optimizer.lern_rate": 0.1})
    with pytest.raises(SettingsError, match="score_weights\\] tag_acc"):
        train(epochs=1, training={"score_weights.tag_acc": 1.0})
    with pytest.raises(SettingsError, match="accumulate_gradient must be at least 1"):
        train(epochs=1, training={"accumulate_gradient": 0})
    with pytest.raises(SettingsError, match="neither is set"):
        train(training={"max_epochs": 0})


def test_explicit_arguments_take_precedence_over_training_overrides() -> None:
    result, _ = train(epochs=2, dropout=0.1, training={"max_epochs": 5, "dropout": 0.3})
    assert result.steps == 2 and result.settings["dropout"] == 0.1
    from_overrides, _ = train(training={"max_epochs": 2})
    assert from_overrides.steps == 2 and from_overrides.settings["epochs"] == 2


def test_weight_zero_docs_are_left_out_of_training() -> None:
    silent = sentence_docs()
    for doc in silent:
        doc.user_data["weight"] = 0.0
    # nothing to learn is an error, not a silent run that changes nothing
    with pytest.raises(TrainingDataError, match="all 6 training Docs have loss weight 0"):
        train(silent, epochs=3)
    # weight-0 Docs are left out of the batches: the same steps and weights as without them
    plain, initial = train(sentence_docs()[:3], epochs=3, batch_words=12)
    mixed, _ = train(sentence_docs()[:3] + silent[3:], epochs=3, batch_words=12)
    assert mixed.steps == plain.steps
    assert same(weights(plain.nlp), weights(mixed.nlp))
    assert not same(initial, weights(plain.nlp))


def test_the_same_seed_gives_the_same_weights() -> None:
    first, _ = train(epochs=3, seed=7, batch_words=12, dropout=0.2)
    second, _ = train(epochs=3, seed=7, batch_words=12, dropout=0.2)
    other, _ = train(epochs=3, seed=8, batch_words=12, dropout=0.2)
    assert same(weights(first.nlp), weights(second.nlp))
    assert [(h["train_loss"], h["dev"]) for h in first.history] == [
        (h["train_loss"], h["dev"]) for h in second.history
    ]
    assert not same(weights(first.nlp), weights(other.nlp))
