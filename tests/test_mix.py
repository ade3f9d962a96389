"""Mixing expert labels into a cheap corpus: invariants, both pool settings, seeds and errors."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from spacy.tokens import Doc
from spacy.vocab import Vocab

from nerloop.cli import run_app
from nerloop.corpus import meta
from nerloop.errors import SettingsError
from nerloop.io_utils import read_docbin
from nerloop.mixing import (
    ExpertPoolError,
    SentenceMismatchError,
    budget_from_percent,
    draw_expert_ids,
    expert_pool,
    mix_corpus,
    mix_files,
    read_expert_ids,
)
from scripts.mix import app as mix_app
from tests.tiny_corpus import cheap_docs, gold_docs, write_tiny_corpus


def labels(doc) -> list[tuple[str, str]]:
    return [(ent.text, ent.label_) for ent in doc.ents]


@pytest.fixture
def rest_setting() -> tuple[list, list]:
    """The Llama setting: 10 cheap sentences out of 40; the pool is the other 30."""
    vocab = Vocab()
    return cheap_docs(list(range(10)), vocab), gold_docs(40, vocab)


@pytest.fixture
def relabel_setting() -> tuple[list, list]:
    """The ChatGPT setting: the cheap set covers all 20 gold sentences."""
    vocab = Vocab()
    return cheap_docs(list(range(20)), vocab), gold_docs(20, vocab)


def test_rest_pool_adds_expert_sentences(rest_setting) -> None:
    cheap, gold = rest_setting
    mixed = mix_corpus(cheap, gold, [12, 30, 15], cheap_weight=0.5, expert_weight=2.0)
    ids = [meta.sent_id(doc) for doc in mixed.docs]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 13
    assert ids == list(range(10)) + [12, 15, 30]
    sources = {meta.sent_id(d): d.user_data[meta.SOURCE] for d in mixed.docs}
    assert Counter(sources.values()) == {"cheap": 10, "expert": 3}
    assert {i for i, s in sources.items() if s == "expert"} == {12, 15, 30}
    weights = {d.user_data[meta.SOURCE]: meta.weight(d) for d in mixed.docs}
    assert weights == {"cheap": 0.5, "expert": 2.0}
    # expert Docs carry gold labels, cheap Docs their LLM labels
    by_id = meta.by_sent_id(mixed.docs)
    assert labels(by_id[12]) == [("Peter Blackburn", "PER"), ("Paris", "LOC")]
    assert labels(by_id[0]) == [("Peter Blackburn", "PER"), ("Paris", "ORG")]
    summary = mixed.summary
    assert summary["pool"] == "rest" and summary["pool_size"] == 30
    assert summary["counts"] == {"cheap": 10, "expert": 3}
    assert summary["n_replaced"] == 0 and summary["expert_ids"] == [12, 15, 30]
    json.dumps(summary)


def test_cheap_pool_replaces_the_cheap_version(relabel_setting) -> None:
    cheap, gold = relabel_setting
    mixed = mix_corpus(cheap, gold, [4, 0], expert_weight=5.0)
    ids = [meta.sent_id(doc) for doc in mixed.docs]
    assert ids == list(range(20))  # never both versions of a sentence
    by_id = meta.by_sent_id(mixed.docs)
    assert by_id[0].user_data[meta.SOURCE] == "expert" and meta.weight(by_id[0]) == 5.0
    assert labels(by_id[0]) == [("Peter Blackburn", "PER"), ("Paris", "LOC")]
    assert by_id[8].user_data[meta.SOURCE] == "cheap" and meta.weight(by_id[8]) == 1.0
    assert labels(by_id[8]) == [("Peter Blackburn", "PER"), ("Paris", "ORG")]
    assert mixed.summary["pool"] == "cheap" and mixed.summary["pool_size"] == 20
    assert mixed.summary["counts"] == {"cheap": 18, "expert": 2}
    assert mixed.summary["replaced_ids"] == [0, 4]


def test_inputs_are_not_changed(relabel_setting) -> None:
    cheap, gold = relabel_setting
    mix_corpus(cheap, gold, [1], cheap_weight=0.25, expert_weight=3.0)
    assert {d.user_data[meta.SOURCE] for d in cheap} == {"cheap"}
    assert {meta.weight(d) for d in cheap + gold} == {1.0}
    assert {d.user_data[meta.SOURCE] for d in gold} == {"gold"}


def test_pool_settings() -> None:
    assert expert_pool(range(3), range(6), "auto") == [3, 4, 5]
    assert expert_pool(range(6), range(6), "auto") == list(range(6))
    assert expert_pool(range(3), range(6), "cheap") == [0, 1, 2]
    with pytest.raises(ExpertPoolError, match="no gold version"):
        expert_pool([7], range(6))
    with pytest.raises(SettingsError, match="pool must be one of"):
        expert_pool(range(3), range(6), "everything")


def test_domain_errors(rest_setting) -> None:
    cheap, gold = rest_setting
    with pytest.raises(ExpertPoolError, match="outside the expert pool"):
        mix_corpus(cheap, gold, [3])  # a cheap sentence is not in the 'rest' pool
    with pytest.raises(ExpertPoolError, match="outside the expert pool"):
        mix_corpus(cheap, gold, [99])
    with pytest.raises(ExpertPoolError, match="more than once"):
        mix_corpus(cheap, gold, [12, 12])
    with pytest.raises(ExpertPoolError, match="larger than the pool"):
        draw_expert_ids(range(10, 40), 31, seed=0)
    with pytest.raises(ExpertPoolError, match="negative"):
        draw_expert_ids(range(10, 40), -1, seed=0)
    with pytest.raises(SettingsError, match="expert_weight must be positive"):
        mix_corpus(cheap, gold, [12], expert_weight=0.0)
    with pytest.raises(SettingsError, match="cheap_weight must be 0 or more, not -0.5"):
        mix_corpus(cheap, gold, [12], cheap_weight=-0.5)


def test_cheap_weight_zero_keeps_every_cheap_sentence_with_no_weight(rest_setting) -> None:
    """Learning from the experts alone: every cheap sentence stays, weighted 0."""
    cheap, gold = rest_setting
    mixed = mix_corpus(cheap, gold, [12], cheap_weight=0.0, expert_weight=2.0)
    weights = {meta.sent_id(d): meta.weight(d) for d in mixed.docs}
    assert len(mixed.docs) == len(cheap) + 1
    assert weights.pop(12) == 2.0
    assert set(weights.values()) == {0.0}


def test_an_expert_doc_with_other_words_is_refused(relabel_setting) -> None:
    cheap, gold = relabel_setting
    gold[3] = Doc(gold[3].vocab, words=["Other", "words"], user_data=dict(gold[3].user_data))
    with pytest.raises(SentenceMismatchError, match="sentence 3: the cheap and the expert Doc"):
        mix_corpus(cheap, gold, [3], pool="cheap")
    assert isinstance(SentenceMismatchError("x"), ValueError)


def test_draws_are_seeded_and_independent_of_pool_order() -> None:
    pool = list(range(100, 200))
    first = draw_expert_ids(pool, 10, seed=3)
    assert first == draw_expert_ids(list(reversed(pool)), 10, seed=3)
    assert first != draw_expert_ids(pool, 10, seed=4)
    assert len(set(first)) == 10 and set(first) <= set(pool) and first == sorted(first)
    assert draw_expert_ids(pool, 0, seed=3) == []
    assert budget_from_percent(12, 2037) == 244 and budget_from_percent(2.5, 10) == 0
    assert budget_from_percent(5, 10) == 1  # rounded half up


def test_same_seed_gives_a_byte_identical_docbin(tmp_path: Path) -> None:
    paths = write_tiny_corpus(tmp_path / "corpus")
    outputs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        summary = mix_files(
            paths["cheap"],
            paths["gold"],
            tmp_path / f"{name}.spacy",
            tmp_path / f"{name}.json",
            budget_pct=50,
            seed=seed,
            expert_weight=2.0,
        )
        outputs.append(((tmp_path / f"{name}.spacy").read_bytes(), summary["expert_ids"]))
    assert outputs[0] == outputs[1]
    assert outputs[0][1] != outputs[2][1]
    summary = json.loads((tmp_path / "a.json").read_text())
    # no noisy-label method by default: no judge, no report beside the corpus
    assert "noisy" not in summary and not (tmp_path / "a.noisy.json").exists()
    assert summary["selection"] == {"method": "random", "budget": 5, "budget_pct": 50, "seed": 7}
    assert summary["counts"] == {"cheap": 10, "expert": 5}
    docs = read_docbin(tmp_path / "a.spacy")
    assert [meta.sent_id(d) for d in docs] == sorted(range(10)) + summary["expert_ids"]
    assert {(d.user_data[meta.SOURCE], meta.weight(d)) for d in docs} == {
        ("cheap", 1.0),
        ("expert", 2.0),
    }


def test_expert_id_files(tmp_path: Path) -> None:
    text = tmp_path / "ids.txt"
    text.write_text("# chosen by the experts\n12, 15\n30\n")
    assert read_expert_ids(text) == [12, 15, 30]
    listing = tmp_path / "ids.json"
    listing.write_text("[12, 15]")
    assert read_expert_ids(listing) == [12, 15]
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"expert_ids": [30]}))
    assert read_expert_ids(summary) == [30]
    bad = tmp_path / "bad.txt"
    bad.write_text("12 x")
    with pytest.raises(ExpertPoolError, match="not a sentence id"):
        read_expert_ids(bad)


def run_mix_cli(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run ``python -m scripts.mix`` in this process: its exit code and its output."""
    monkeypatch.setattr(sys, "argv", ["scripts.mix", *args])
    code = 0
    try:
        run_app(mix_app)
    except SystemExit as exit:
        code = exit.code
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    return code, " ".join(out.split())  # wasabi wraps long messages


def test_cli_writes_the_corpus_and_refuses_a_bad_pool_choice(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    paths = write_tiny_corpus(tmp_path / "corpus")
    ids = tmp_path / "ids.txt"
    ids.write_text("12 30")
    args = [str(paths["cheap"]), str(paths["gold"]), str(tmp_path / "mixed.spacy")]
    code, out = run_mix_cli(
        [*args, "--summary", str(tmp_path / "s.json"), "--expert-ids", str(ids)],
        monkeypatch,
        capsys,
    )
    assert code == 0, out
    assert json.loads((tmp_path / "s.json").read_text())["counts"] == {"cheap": 10, "expert": 2}
    ids.write_text("3")
    code, out = run_mix_cli(
        [*args, "--summary", str(tmp_path / "t.json"), "--expert-ids", str(ids)],
        monkeypatch,
        capsys,
    )
    assert code == 1 and "outside the expert pool" in out
    assert not (tmp_path / "t.json").exists()
    code, out = run_mix_cli(
        [*args, "--summary", str(tmp_path / "t.json"), "--budget", "2", "--budget-pct", "5"],
        monkeypatch,
        capsys,
    )
    assert code == 1 and "exactly one" in out
