"""annotate with live LLM configs against a real OpenAI-protocol server on 127.0.0.1."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Iterable  # noqa: UP035  (spacy-llm validates typing generics)

import pytest
from spacy_llm.registry import registry
from typer.testing import CliRunner

from nerloop.io_utils import read_docbin, write_docbin
from nerloop.llm.annotator import annotate_docs
from nerloop.llm.cost import load_prices
from nerloop.llm.loopback_server import FakeOpenAIServer, FakeReply, Oracle, prompt_tokens
from scripts.annotate import app
from tests.annotate_support import (
    KEY_ENV,
    PROJECT_ROOT,
    SENTENCES,
    SPACY_NER_CONFIG,
    TOKEN_NER_CONFIG,
    live_overrides,
    make_docs,
    oracle_sentences,
    tags_of,
)

PRICES = load_prices(PROJECT_ROOT / "configs" / "llm_prices.json")
ORACLE = Oracle(oracle_sentences())
TOKENS = [tuple(tokens) for tokens, _ in SENTENCES]


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"sk-nerloop-test-{secrets.token_hex(12)}"
    monkeypatch.setenv(KEY_ENV, value)
    return value


def sentence_index(prompt: str) -> int:
    return TOKENS.index(tuple(prompt_tokens(prompt)))


def prompts_by_sentence(server: FakeOpenAIServer) -> dict[int, str]:
    return {sentence_index(prompt): prompt for prompt in server.received}


def run_live(docs, server, tmp_path: Path, config: Path = TOKEN_NER_CONFIG, **model_settings):
    return annotate_docs(
        docs,
        str(config),
        cache_dir=tmp_path / "cache",
        overrides=live_overrides(server.base_url, **model_settings),
        concurrency=4,
        progress=False,
        prices=PRICES,
    )


def test_good_answers_give_exact_entities_and_keep_the_sentences(tmp_path, api_key):
    docs = make_docs()
    with FakeOpenAIServer(ORACLE.responder) as server:
        run = run_live(docs, server, tmp_path)
        assert run.failures == []
        assert tags_of(run.docs) == tags_of(docs)
        for before, after in zip(docs, run.docs):
            assert [t.text for t in after] == [t.text for t in before]
            expected = {**before.user_data, "annotator": "token_ner_openai", "source": "cheap"}
            assert after.user_data == expected
        assert sorted(server.received.values()) == [1] * len(docs)
        assert dict(server.authorizations) == {f"Bearer {api_key}": len(docs)}

        summary = run.summary
        assert (summary["sentences"], summary["annotated"], summary["failed"]) == (8, 8, 0)
        usage = summary["requests"]["usage_this_run"]
        # The fake server counts whitespace-separated words as tokens.
        assert usage["prompt_tokens"] == sum(len(p.split()) for p in server.received)
        assert usage["estimated"] == 0
        assert summary["cost"]["price_entry"] == "gpt-4o-mini"
        assert summary["cost"]["llm_usd"] > 0

        # A second run answers everything from the cache: not one request.
        again = run_live(make_docs(), server, tmp_path)
        assert server.n_received == len(docs)
        assert again.summary["requests"]["answered_from_cache"] == len(docs)
        assert (
            again.summary["requests"]["usage_all_answers"]["prompt_tokens"]
            == usage["prompt_tokens"]
        )
        assert tags_of(again.docs) == tags_of(docs)


MESSY_REPLY = (
    "Here you go:\n```json\n{'tokens': ['He', 'said', 'that', 'a', 'ban', 'was', 'not', "
    "'justified', '!', '.'], 'ner_tags': ['O', 'O', 'O', 'O', 'O', 'O', 'O', 'O', 'O', 'O',],}\n```"
)


def scripted(prompt: str, attempt: int) -> FakeReply:
    """Sentence 0: 429 + Retry-After once; 1: a 500 once; 2: too slow once; 3: a malformed
    body once; 4: always 500; 5: prose instead of JSON; 6: invented tokens in a messy reply."""
    i = sentence_index(prompt)
    good = ORACLE.responder(prompt, attempt)
    if attempt == 1 and i == 0:
        return FakeReply(status=429, headers={"Retry-After": "1"})
    if attempt == 1 and i == 1:
        return FakeReply(status=500)
    if attempt == 1 and i == 2:
        return FakeReply(content=good.content, delay=1.5)
    if attempt == 1 and i == 3:
        return FakeReply(body='{"choices": [{"message": ')
    if i == 4:
        return FakeReply(status=500)
    if i == 5:
        return FakeReply(content="I'm sorry, I can only answer questions about cooking.")
    if i == 6:
        return FakeReply(content=MESSY_REPLY)
    return good


def test_retries_and_failures(tmp_path, api_key):
    docs = make_docs()
    with FakeOpenAIServer(scripted) as server:
        run = run_live(docs, server, tmp_path, request_timeout=0.5)
        by_sentence = prompts_by_sentence(server)
        received = {i: server.received[p] for i, p in by_sentence.items()}
        assert received == {0: 2, 1: 2, 2: 2, 3: 2, 4: 3, 5: 1, 6: 1, 7: 1}

        # Retry-After: 1 was honoured before asking sentence 0 again.
        times = [t for t, p in server.arrivals if p == by_sentence[0]]
        assert times[1] - times[0] >= 1.0

        annotated_ids = [doc.user_data["sent_id"] for doc in run.docs]
        assert annotated_ids == [0, 1, 2, 3, 6, 7]
        assert tags_of(run.docs) == tags_of([docs[i] for i in annotated_ids])
        failures = {row["sent_id"]: row for row in run.failures}
        assert sorted(failures) == [4, 5]
        assert failures[4]["reason"] == "request_failed"
        assert "gave up after 3 attempts: HTTP 500" in failures[4]["detail"]
        assert failures[5]["reason"] == "parse_failed"
        assert "no complete JSON" in failures[5]["detail"]

        summary = run.summary
        assert summary["failure_reasons"] == {"parse_failed": 1, "request_failed": 1}
        http = summary["requests"]["http"]
        assert http["requests"] == 14
        assert http["retries"] == 6
        assert (http["status_429"], http["status_500"], http["timeouts"]) == (1, 4, 1)
        assert http["malformed_bodies"] == 1
        assert summary["parse_repairs"].get("dropped", 0) == 0
        assert summary["parse_repairs"]["invented"] == 2  # "that" and "!"

        # A later run asks again for what failed to come back and for what came back but could
        # not be parsed (such answers are rejected in the cache, not kept as final): sentences
        # 4 and 5 are asked once more, the six usable answers come from the cache.
        server.responder = ORACLE.responder
        rerun = run_live(make_docs(), server, tmp_path)
        assert server.received[by_sentence[4]] == 4
        assert server.received[by_sentence[5]] == 2
        assert server.n_received == 16
        assert rerun.summary["requests"]["answered_from_cache"] == 6
        assert rerun.failures == []
        assert tags_of(rerun.docs) == tags_of(docs)


def test_spacy_ner_v3_with_gold_few_shot_examples(tmp_path, api_key):
    train = make_docs(SENTENCES[:4])
    write_docbin(tmp_path / "train.spacy", train)
    docs = make_docs(SENTENCES[4:], first_sent_id=4)
    with FakeOpenAIServer(ORACLE.responder) as server:
        overrides = live_overrides(server.base_url)
        overrides["paths.train"] = str(tmp_path / "train.spacy")
        run = annotate_docs(
            docs,
            str(SPACY_NER_CONFIG),
            cache_dir=tmp_path / "cache",
            overrides=overrides,
            progress=False,
        )
        assert run.failures == []
        assert tags_of(run.docs) == tags_of(docs)
        prompts = list(server.received)
        assert len(prompts) == 4
        # Label definitions and the gold examples from train are in every prompt.
        assert all("MISC: Other proper names" in p for p in prompts)
        assert all(
            "Paragraph: Peter Blackburn\nAnswer:\n1. Peter Blackburn | True | PER" in p
            for p in prompts
        )


@registry.llm_models("nerloop_test.OracleModel.v1")
def oracle_model():
    """A plain spacy-llm model (a callable, no ``complete``): the generic path of the executor."""

    def answer(prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
        return [[ORACLE.answer(prompt) for prompt in doc_prompts] for doc_prompts in prompts]

    return answer


@pytest.mark.parametrize("model", ["nerloop_test.OracleModel.v1", "spacy.NoOp.v1"])
def test_any_registered_spacy_llm_model_by_config(tmp_path, model):
    docs = make_docs()
    run = annotate_docs(
        docs,
        str(TOKEN_NER_CONFIG),
        cache_dir=tmp_path / "cache",
        overrides={"components.llm.model": {"@llm_models": model}},
        progress=False,
    )
    usage = run.summary["requests"]["usage_this_run"]
    assert usage["estimated"] == usage["answers"] == len(docs)
    if model == "spacy.NoOp.v1":
        # spacy-llm's own no-op model answers "": every sentence is a recorded parse failure.
        assert run.docs == []
        assert [row["reason"] for row in run.failures] == ["parse_failed"] * len(docs)
    else:
        assert run.failures == []
        assert tags_of(run.docs) == tags_of(docs)


def test_the_api_key_is_in_no_file_the_run_writes(tmp_path, api_key):
    docs = make_docs()
    write_docbin(tmp_path / "in.spacy", docs)

    def leaky(prompt: str, attempt: int) -> FakeReply:
        if sentence_index(prompt) == 2:
            # Some APIs quote the key they rejected.
            body = json.dumps({"error": {"message": f"Incorrect API key provided: {api_key}"}})
            return FakeReply(status=401, body=body)
        return ORACLE.responder(prompt, attempt)

    with FakeOpenAIServer(leaky) as server:
        overrides = live_overrides(server.base_url)
        extra = [arg for key, value in overrides.items() for arg in (f"--{key}", str(value))]
        result = CliRunner().invoke(
            app,
            [
                str(tmp_path / "in.spacy"),
                str(tmp_path / "out" / "llm.spacy"),
                "--source",
                str(TOKEN_NER_CONFIG),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--log-file",
                str(tmp_path / "logs" / "annotate.log"),
                "--prices",
                str(PROJECT_ROOT / "configs" / "llm_prices.json"),
                "--no-progress",
                *extra,
            ],
        )
        assert result.exit_code == 0, result.output
        assert dict(server.authorizations) == {f"Bearer {api_key}": len(docs)}
    assert api_key not in result.output

    written = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.name != "in.spacy")
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert names == {
        "cache/answers.jsonl",
        "logs/annotate.log",
        "out/llm.spacy",
        "out/llm.failures.jsonl",
        "out/llm.repairs.jsonl",
        "out/llm.summary.json",
    }
    for path in written:
        assert api_key.encode() not in path.read_bytes(), path
    failures = [json.loads(line) for line in (tmp_path / "out" / "llm.failures.jsonl").open()]
    assert [(row["sent_id"], row["reason"]) for row in failures] == [(2, "request_failed")]
    assert "HTTP 401: Incorrect API key provided: ***" in failures[0]["detail"]
    assert "HTTP 401" in (tmp_path / "logs" / "annotate.log").read_text()
    assert len(read_docbin(tmp_path / "out" / "llm.spacy")) == len(docs) - 1
