"""annotate-eval: several sources on one seeded gold sample, scored beside their cost."""

from __future__ import annotations

import json
import secrets

import pytest
import spacy
from spacy.util import load_config
from typer.testing import CliRunner

from nerloop.io_utils import write_docbin
from nerloop.llm.evaluation import sample_gold
from nerloop.llm.loopback_server import FakeOpenAIServer, FakeReply, Oracle, prompt_tokens
from scripts.annotate_eval import app
from tests.annotate_support import (
    KEY_ENV,
    PROJECT_ROOT,
    SENTENCES,
    TOKEN_NER_CONFIG,
    live_overrides,
    make_doc,
    make_docs,
    oracle_sentences,
)

# A recorded set covering train sentences 0-3: 4 true positives, 3 false positives and
# 2 false negatives against the gold of those sentences.
RECORDED = {
    0: ["B-LOC", "O", "B-MISC", "O", "O", "O", "B-LOC", "O", "O"],
    1: ["B-PER", "I-PER"],
    2: ["B-LOC", "O"],
    3: ["O", "B-ORG", "I-ORG", "O", "O", "B-MISC", "O", "O", "O"],
}


def test_sample_is_seeded_and_leaves_out_few_shot_sentences():
    docs = make_docs()
    first = sample_gold(docs, 4, seed=3, exclude_texts={docs[1].text})
    again = sample_gold(docs, 4, seed=3, exclude_texts={docs[1].text})
    assert [d.text for d in first] == [d.text for d in again]
    assert docs[1].text not in {d.text for d in first}
    assert len(sample_gold(docs, 100, seed=0, exclude_texts=set())) == len(docs)


def test_annotate_eval_scores_each_source_beside_its_cost(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, secrets.token_hex(16))
    gold = make_docs()
    write_docbin(tmp_path / "train.spacy", gold)
    vocab = spacy.blank("en").vocab
    write_docbin(
        tmp_path / "cheap" / "mini.spacy",
        [
            make_doc(vocab, list(SENTENCES[i][0]), tags, sent_id=i, split="train")
            for i, tags in RECORDED.items()
        ],
    )
    oracle = Oracle(oracle_sentences())

    def responder(prompt: str, attempt: int) -> FakeReply:
        tokens = prompt_tokens(prompt)
        if tokens == SENTENCES[0][0]:  # misses the 3 entities of sentence 0
            return FakeReply(content=json.dumps({"tokens": tokens, "ner_tags": [0] * len(tokens)}))
        return oracle.responder(prompt, attempt)

    with FakeOpenAIServer(responder) as server:
        overrides = live_overrides(server.base_url)
        # annotate-eval takes configs as they are: write one pointing at the loopback server.
        config = load_config(TOKEN_NER_CONFIG, overrides=overrides, interpolate=False)
        config.to_disk(tmp_path / "llm_token_ner_loopback.cfg")
        result = CliRunner().invoke(
            app,
            [
                str(tmp_path / "train.spacy"),
                "--source",
                str(tmp_path / "llm_token_ner_loopback.cfg"),
                "--source",
                "recorded:mini",
                "--n-sentences",
                "8",
                "--seed",
                "0",
                "--output",
                str(tmp_path / "metrics" / "annotate_eval.json"),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--recorded-dir",
                str(tmp_path / "cheap"),
                "--prices",
                str(PROJECT_ROOT / "configs" / "llm_prices.json"),
                "--no-progress",
            ],
        )
        assert result.exit_code == 0, result.output
        assert server.n_received == len(gold)

    report = json.loads((tmp_path / "metrics" / "annotate_eval.json").read_text())
    assert report["n_sentences"] == 8
    assert report["sample_sent_ids"] == list(range(8))
    live, recorded = report["sources"]

    assert live["annotator"] == "token_ner_loopback"
    assert live["coverage"] == 1.0
    assert live["scores"]["precision"] == 1.0
    assert live["scores"]["recall"] == pytest.approx(9 / 12)
    assert live["scores"]["f1"] == pytest.approx(2 * 9 / (9 + 12))
    assert live["cost"]["price_entry"] == "gpt-4o-mini"
    assert live["cost"]["llm_usd_per_1000_sentences"] > 0

    assert recorded["annotator"] == "mini"
    assert recorded["coverage"] == 0.5
    assert recorded["scores"]["precision"] == pytest.approx(4 / 7)
    assert recorded["scores"]["recall"] == pytest.approx(4 / 6)
    assert recorded["scores_failures_as_empty"]["recall"] == pytest.approx(4 / 12)

    table = (tmp_path / "metrics" / "annotate_eval.md").read_text()
    assert "| token_ner_loopback | 100.0% | 1.000 | 0.750 | 0.857 | 0.857 |" in table
    assert "| mini | 50.0% | 0.571 | 0.667 | 0.615 | 0.421 |" in table
