"""The simulated LLM: seeded corruption of gold labels."""

from __future__ import annotations

import pytest

from nerloop.corpus import meta
from nerloop.corpus.simulate import corrupt_labels
from nerloop.errors import SettingsError
from tests.tiny_tagger import sentence_docs


def ents(doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


def test_rates_zero_and_one_are_exact() -> None:
    gold = sentence_docs()
    same, report = corrupt_labels(gold, miss_rate=0.0, wrong_label_rate=0.0)
    assert [ents(d) for d in same] == [ents(d) for d in gold]
    assert report["gold_entities"] == 11 and report["entities"] == 11
    none, report = corrupt_labels(gold, miss_rate=1.0, wrong_label_rate=0.0)
    assert all(not d.ents for d in none) and report["missed"] == 11
    assert [len(d) for d in none] == [len(d) for d in gold]  # no sentence emptied of tokens
    wrong, report = corrupt_labels(gold, miss_rate=0.0, wrong_label_rate=1.0)
    for g, w in zip(gold, wrong, strict=True):
        assert [(s, e) for s, e, _ in ents(g)] == [(s, e) for s, e, _ in ents(w)]
        assert all(a[2] != b[2] for a, b in zip(ents(g), ents(w), strict=True))
    assert {meta.sent_id(d) for d in wrong} == {meta.sent_id(d) for d in gold}
    assert {d.user_data["annotator"] for d in wrong} == {"simulated_llm"}


def test_same_seed_same_corruption_and_per_sentence_draws() -> None:
    gold = sentence_docs()
    a, _ = corrupt_labels(gold, miss_rate=0.5, wrong_label_rate=0.5, seed=3)
    b, _ = corrupt_labels(gold, miss_rate=0.5, wrong_label_rate=0.5, seed=3)
    c, _ = corrupt_labels(gold[2:], miss_rate=0.5, wrong_label_rate=0.5, seed=3)
    assert [ents(d) for d in a] == [ents(d) for d in b]
    assert [ents(d) for d in a[2:]] == [ents(d) for d in c]
    with pytest.raises(SettingsError, match="miss_rate must be between 0 and 1"):
        corrupt_labels(gold, miss_rate=1.5, wrong_label_rate=0.0)
