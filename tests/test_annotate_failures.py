"""No sentence is lost silently: unusable replies fail, are not cached as final, and a run
that fails everywhere (or too often) exits non-zero without writing a corpus."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nerloop.io_utils import read_docbin, write_docbin
from nerloop.llm.annotator import annotate_docs
from nerloop.llm.cache import CACHE_FILE, AnswerCache, cache_key
from nerloop.llm.loopback_server import (
    FakeOpenAIServer,
    FakeReply,
    Oracle,
    prompt_paragraph,
    prompt_tokens,
)
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

ORACLE = Oracle(oracle_sentences())
TEXTS = [" ".join(tokens) for tokens, _ in SENTENCES]
GERMANY = 4  # "Germany 's representative Werner Zwingmann said on Wednesday ."


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"sk-nerloop-test-{secrets.token_hex(12)}"
    monkeypatch.setenv(KEY_ENV, value)
    return value


def sentence_of(prompt: str) -> int:
    tokens = prompt_tokens(prompt)
    if tokens is not None:
        return TEXTS.index(" ".join(tokens))
    return TEXTS.index(prompt_paragraph(prompt))


def ner_v3(tmp_path: Path, base_url: str) -> dict:
    """Overrides for the spacy.NER.v3 config: the loopback server, few-shot from 4 sentences."""
    write_docbin(tmp_path / "train.spacy", make_docs(SENTENCES[:4]))
    return {**live_overrides(base_url), "paths.train": str(tmp_path / "train.spacy")}


def run_source(config: Path, server: FakeOpenAIServer, tmp_path: Path, docs=None):
    overrides = (
        ner_v3(tmp_path, server.base_url)
        if config == SPACY_NER_CONFIG
        else live_overrides(server.base_url)
    )
    return annotate_docs(
        docs or make_docs(),
        str(config),
        cache_dir=tmp_path / "cache",
        overrides=overrides,
        concurrency=2,
        progress=False,
    )


def accounted_for(run, n: int) -> bool:
    """Every sentence is either annotated or a failure, none twice."""
    ids = [doc.user_data["sent_id"] for doc in run.docs] + [r["sent_id"] for r in run.failures]
    return sorted(ids) == list(range(n))


GOOD_GERMANY = "1. Germany | True | LOC | is a country\n2. Werner Zwingmann | True | PER | a person"


@pytest.mark.parametrize(
    "reply, reason, detail",
    [
        (
            FakeReply(content=GOOD_GERMANY, finish_reason="length"),
            "truncated",
            "finish_reason 'length'",
        ),
        (
            FakeReply(content="1. Germany | True | LOC | is a country\n2. Werner Zwing"),
            "parse_failed",
            "the last line is not a complete entry (cut off?): '2. Werner Zwing'",
        ),
        (
            FakeReply(content="1. Germany | True | LOC | is a country\n2. Werner Zwingmann | Tr"),
            "parse_failed",
            "the last line is not a complete entry",
        ),
        (
            FakeReply(content="1. Germany | True | LOC |"),
            "parse_failed",
            "no line of the form 'N. text | True/False | LABEL | reason'",
        ),
        (
            FakeReply(content="1. Germany | True | LOC | a country\n2. Werner Zwingmann\n3. x"),
            "parse_failed",
            "line 2 is not a complete entry (cut off?): '2. Werner Zwingmann'",
        ),
        (
            FakeReply(content="Germany is a location and Werner Zwingmann a person."),
            "parse_failed",
            "no line of the form",
        ),
        (FakeReply(content="  \n"), "parse_failed", "the reply is empty"),
    ],
    ids=[
        "finish-length",
        "cut-mid-text",
        "cut-mid-field",
        "cut-after-label",
        "malformed-middle-line",
        "prose",
        "empty",
    ],
)
def test_an_unparseable_ner_v3_reply_is_a_failure_not_a_sentence_with_fewer_entities(
    tmp_path, api_key, reply, reason, detail
):
    def responder(prompt: str, attempt: int) -> FakeReply:
        return reply if sentence_of(prompt) == GERMANY else ORACLE.responder(prompt, attempt)

    with FakeOpenAIServer(responder) as server:
        run = run_source(SPACY_NER_CONFIG, server, tmp_path)
    assert accounted_for(run, len(SENTENCES))
    assert [(row["sent_id"], row["reason"]) for row in run.failures] == [(GERMANY, reason)]
    assert detail in run.failures[0]["detail"]
    assert len(run.docs) == len(SENTENCES) - 1
    assert tags_of(run.docs) == tags_of([d for d in make_docs() if d.user_data["sent_id"] != 4])
    assert run.summary["failure_reasons"] == {reason: 1}


def test_complete_ner_v3_replies_with_a_closing_remark_are_kept(tmp_path, api_key):
    def responder(prompt: str, attempt: int) -> FakeReply:
        if sentence_of(prompt) == GERMANY:
            return FakeReply(content=GOOD_GERMANY + "\n\nThese are all the entities.")
        return ORACLE.responder(prompt, attempt)

    with FakeOpenAIServer(responder) as server:
        run = run_source(SPACY_NER_CONFIG, server, tmp_path)
    assert run.failures == []
    assert tags_of(run.docs) == tags_of(make_docs())


def test_ner_v3_entries_spacy_llm_drops_are_recorded_as_repairs(tmp_path, api_key):
    def responder(prompt: str, attempt: int) -> FakeReply:
        if sentence_of(prompt) == GERMANY:
            return FakeReply(
                content="1. Germany | True | LOC | a country\n"
                "2. Werner Zwingmann | True | PER | a person\n"
                "3. Wednesday | True | DATE | a day\n"
                "4. Bonn | True | LOC | not in the text"
            )
        return ORACLE.responder(prompt, attempt)

    with FakeOpenAIServer(responder) as server:
        run = run_source(SPACY_NER_CONFIG, server, tmp_path)
    assert run.failures == []
    germany = next(doc for doc in run.docs if doc.user_data["sent_id"] == GERMANY)
    assert germany.user_data["llm_repairs"] == [
        {"kind": "unknown_label", "text": "Wednesday", "label": "DATE"},
        {"kind": "not_found", "text": "Bonn", "label": "LOC"},
    ]
    assert [(r["sent_id"], r["kind"]) for r in run.repairs] == [
        (GERMANY, "unknown_label"),
        (GERMANY, "not_found"),
    ]
    assert run.summary["repairs"] == {"not_found": 1, "unknown_label": 1}
    assert run.summary["repaired_sentences"] == 1


@pytest.mark.parametrize(
    "reply, reason, detail",
    [
        (
            FakeReply(
                content=ORACLE.token_ner_reply(SENTENCES[GERMANY][0]), finish_reason="length"
            ),
            "truncated",
            "raise max_tokens",
        ),
        (
            FakeReply(content='{"ner_tags": [5, 0, 0, 1, 2, 0, 0'),
            "parse_failed",
            "no complete JSON object",
        ),
    ],
    ids=["finish-length", "cut-mid-json"],
)
def test_an_unusable_token_reply_is_a_failure(tmp_path, api_key, reply, reason, detail):
    def responder(prompt: str, attempt: int) -> FakeReply:
        return reply if sentence_of(prompt) == GERMANY else ORACLE.responder(prompt, attempt)

    with FakeOpenAIServer(responder) as server:
        run = run_source(TOKEN_NER_CONFIG, server, tmp_path)
    assert accounted_for(run, len(SENTENCES))
    assert [(row["sent_id"], row["reason"]) for row in run.failures] == [(GERMANY, reason)]
    assert detail in run.failures[0]["detail"]


@pytest.mark.parametrize("config", [TOKEN_NER_CONFIG, SPACY_NER_CONFIG], ids=["token", "ner-v3"])
def test_an_unparseable_reply_is_not_cached_as_final(tmp_path, api_key, config):
    garbage = {TOKEN_NER_CONFIG: "Sorry, no JSON today.", SPACY_NER_CONFIG: "1. Germany | Tr"}
    state = {"garbage": True}

    def responder(prompt: str, attempt: int) -> FakeReply:
        if state["garbage"] and sentence_of(prompt) == GERMANY:
            return FakeReply(content=garbage[config])
        return ORACLE.responder(prompt, attempt)

    with FakeOpenAIServer(responder) as server:
        first = run_source(config, server, tmp_path)
        assert [row["sent_id"] for row in first.failures] == [GERMANY]
        germany_prompt = next(p for p in server.received if sentence_of(p) == GERMANY)

        state["garbage"] = False
        second = run_source(config, server, tmp_path)
        assert second.failures == []
        assert tags_of(second.docs) == tags_of(make_docs())
        # Only the rejected answer was asked again.
        assert server.received[germany_prompt] == 2
        assert server.n_received == len(SENTENCES) + 1
        identity = second.summary["model"]

    key = cache_key(identity, germany_prompt)
    with AnswerCache(tmp_path / "cache") as cache:
        assert cache.get(key).text == ORACLE.answer(germany_prompt)
        assert len(cache) == len(SENTENCES)
    rows = [json.loads(line) for line in (tmp_path / "cache" / CACHE_FILE).open()]
    germany_rows = [row for row in rows if row["key"] == key]
    assert [("rejected" in row, row.get("text")) for row in germany_rows] == [
        (False, garbage[config]),
        (True, None),
        (False, ORACLE.answer(germany_prompt)),
    ]
    assert germany_rows[1]["rejected"] == "parse_failed"


def test_the_cache_key_holds_the_endpoint(tmp_path, api_key):
    docs = make_docs()
    with FakeOpenAIServer(ORACLE.responder) as first, FakeOpenAIServer(ORACLE.responder) as second:
        run_source(TOKEN_NER_CONFIG, first, tmp_path, docs)
        # The same model name and prompts at another server: asked again, not replayed.
        other = run_source(TOKEN_NER_CONFIG, second, tmp_path, docs)
        assert second.n_received == len(docs)
        assert other.summary["requests"]["answered_from_cache"] == 0
        assert other.summary["model"]["base_url"] == second.base_url
        # Back at the first server: everything from the cache.
        again = run_source(TOKEN_NER_CONFIG, first, tmp_path, docs)
        assert first.n_received == len(docs)
        assert again.summary["requests"]["answered_from_cache"] == len(docs)
    assert len(AnswerCache(tmp_path / "cache")) == 2 * len(docs)


def cli_args(tmp_path: Path, base_url: str, *extra: str) -> list[str]:
    overrides = live_overrides(base_url)
    return [
        str(tmp_path / "in.spacy"),
        str(tmp_path / "out.spacy"),
        "--source",
        str(TOKEN_NER_CONFIG),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--prices",
        str(PROJECT_ROOT / "configs" / "llm_prices.json"),
        "--no-progress",
        *extra,
        *[arg for key, value in overrides.items() for arg in (f"--{key}", str(value))],
    ]


def test_a_bad_key_fails_the_run_with_the_status_and_the_endpoint(tmp_path, api_key):
    write_docbin(tmp_path / "in.spacy", make_docs())
    write_docbin(tmp_path / "out.spacy", make_docs()[:2])  # left by an earlier run

    def unauthorised(prompt: str, attempt: int) -> FakeReply:
        body = json.dumps({"error": {"message": "Incorrect API key provided"}})
        return FakeReply(status=401, body=body)

    with FakeOpenAIServer(unauthorised) as server:
        result = CliRunner().invoke(app, cli_args(tmp_path, server.base_url))
        assert server.n_received == len(SENTENCES)  # a 401 is not retried
    assert result.exit_code == 1
    message = str(result.exception)
    assert (
        f"all 8 sentences failed: every request to the LLM at {server.base_url} failed: "
        "request_failed: LLMRequestError: HTTP 401: Incorrect API key provided (8 of 8)"
    ) in message
    assert "no annotated corpus was written" in message
    assert not (tmp_path / "out.spacy").exists()
    failures = [json.loads(line) for line in (tmp_path / "out.failures.jsonl").open()]
    assert [row["reason"] for row in failures] == ["request_failed"] * 8
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert (summary["status"], summary["sentences"], summary["annotated"]) == ("failed", 8, 0)
    assert summary["failure_rate"] == 1.0


def test_nothing_listening_exits_non_zero_with_the_reason(tmp_path, api_key):
    write_docbin(tmp_path / "in.spacy", make_docs()[:2])
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    process = subprocess.run(
        [sys.executable, "-m", "scripts.annotate", *cli_args(tmp_path, base_url)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 1
    output = " ".join((process.stdout + process.stderr).split())  # wasabi wraps lines
    assert f"every request to the LLM at {base_url} failed" in output
    assert "gave up after 3 attempts: connection error: [Errno 111] Connection refused" in output
    assert not (tmp_path / "out.spacy").exists()
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert (summary["status"], summary["failed"]) == ("failed", 2)


@pytest.mark.parametrize("max_rate, exit_code", [(None, 1), ("0.7", 0)])
def test_partial_failures_above_the_max_failure_rate_fail_the_run(
    tmp_path, api_key, max_rate, exit_code
):
    write_docbin(tmp_path / "in.spacy", make_docs())

    def mostly_failing(prompt: str, attempt: int) -> FakeReply:
        if sentence_of(prompt) < 5:
            return FakeReply(status=400)
        return ORACLE.responder(prompt, attempt)

    extra = ["--max-failure-rate", max_rate] if max_rate else []
    with FakeOpenAIServer(mostly_failing) as server:
        result = CliRunner().invoke(app, cli_args(tmp_path, server.base_url, *extra))
    assert result.exit_code == exit_code, result.output
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert (summary["sentences"], summary["annotated"], summary["failed"]) == (8, 3, 5)
    assert summary["failure_rate"] == 0.625
    failures = [json.loads(line) for line in (tmp_path / "out.failures.jsonl").open()]
    assert [row["sent_id"] for row in failures] == [0, 1, 2, 3, 4]
    if exit_code:
        assert "5 of 8 sentences failed (62.5%, more than --max-failure-rate 50.0%" in str(
            result.exception
        )
        assert summary["status"] == "failed"
        assert not (tmp_path / "out.spacy").exists()
    else:
        assert summary["status"] == "complete"
        assert "5 failed (request_failed: 5)" in result.output
        assert [d.user_data["sent_id"] for d in read_docbin(tmp_path / "out.spacy")] == [5, 6, 7]
