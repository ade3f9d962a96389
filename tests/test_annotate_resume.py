"""A killed annotate run, restarted, asks the LLM nothing it had already been answered."""

from __future__ import annotations

import multiprocessing
import secrets
import time
from pathlib import Path

import pytest

from nerloop.io_utils import read_docbin, write_docbin
from nerloop.llm.loopback_server import FakeOpenAIServer, FakeReply, Oracle
from tests.annotate_support import (
    KEY_ENV,
    TOKEN_NER_CONFIG,
    live_overrides,
    make_docs,
    oracle_sentences,
    tags_of,
)

ANSWERED_BEFORE_KILL = 3
CONCURRENCY = 2


def _annotate_cli(args: list[str]) -> None:
    """The annotate step, as run by ``python -m scripts.annotate`` (in a forked process)."""
    from scripts.annotate import app

    app(args)


def _cache_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf8").splitlines()) if path.exists() else 0


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the annotate process did not get where the test expected")
        time.sleep(0.02)


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs fork to start fast"
)
def test_killed_run_resumes_without_sending_a_request_twice(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, secrets.token_hex(16))
    docs = make_docs()
    write_docbin(tmp_path / "in.spacy", docs)
    oracle = Oracle(oracle_sentences())
    cache_file = tmp_path / "cache" / "answers.jsonl"
    output = tmp_path / "out.spacy"
    state = {"hang": True}

    def responder(prompt: str, attempt: int) -> FakeReply:
        # The first answers come back; then the server stops answering (requests in flight
        # when the process is killed).
        if state["hang"] and server.n_answered >= ANSWERED_BEFORE_KILL:
            return FakeReply(hang=True)
        return oracle.responder(prompt, attempt)

    with FakeOpenAIServer(responder) as server:
        overrides = live_overrides(server.base_url)
        args = [
            str(tmp_path / "in.spacy"),
            str(output),
            "--source",
            str(TOKEN_NER_CONFIG),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--concurrency",
            str(CONCURRENCY),
            "--no-progress",
            *[arg for key, value in overrides.items() for arg in (f"--{key}", str(value))],
        ]
        context = multiprocessing.get_context("fork")
        first = context.Process(target=_annotate_cli, args=(args,))
        first.start()
        try:
            # Wait until every worker hangs and every answer received is in the cache.
            _wait_for(
                lambda: (
                    server.hanging >= CONCURRENCY and _cache_lines(cache_file) == server.n_answered
                )
            )
        finally:
            first.kill()
            first.join()
        assert first.exitcode == -9
        answered_before = set(server.answered)
        assert len(answered_before) >= ANSWERED_BEFORE_KILL
        assert _cache_lines(cache_file) == len(answered_before)
        assert not output.exists()

        state["hang"] = False
        server.release()
        second = context.Process(target=_annotate_cli, args=(args,))
        second.start()
        second.join(timeout=60)
        assert second.exitcode == 0

    # Each sentence's prompt was answered exactly once over both runs, and nothing answered
    # before the kill was asked again; only the requests in flight at the kill were resent.
    assert len(server.answered) == len(docs)
    assert set(server.answered.values()) == {1}
    assert all(server.received[prompt] == 1 for prompt in answered_before)
    resent = [prompt for prompt, n in server.received.items() if n > 1]
    assert len(resent) == CONCURRENCY
    assert tags_of(read_docbin(output)) == tags_of(docs)
