"""nerloop.OpenAICompatible.v1: settings, keys from the environment only, backoff."""

from __future__ import annotations

import email.utils
import time

import pytest

from nerloop.llm.models.openai_compatible import OpenAICompatible
from nerloop.llm.models.openai_compatible.model import parse_retry_after
from nerloop.redact import redact


def make_model(**settings) -> OpenAICompatible:
    defaults = dict(
        name="m",
        base_url="http://127.0.0.1:9/v1/",
        api_key_env=None,
        config={"temperature": 0.0},
        system_prompt=None,
        max_tries=3,
        request_timeout=1.0,
        backoff_base=1.0,
        backoff_max=8.0,
        retry_after_max=60.0,
        context_length=None,
    )
    return OpenAICompatible(**{**defaults, **settings})


def test_a_key_in_the_config_is_refused():
    with pytest.raises(ValueError, match="must not be written in a config"):
        make_model(config={"temperature": 0.0, "api_key": "sk-oops"})


def test_a_missing_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("NERLOOP_NO_SUCH_KEY", raising=False)
    with pytest.raises(ValueError, match="NERLOOP_NO_SUCH_KEY is not set"):
        make_model(api_key_env="NERLOOP_NO_SUCH_KEY")


def test_the_key_is_registered_for_redaction_and_not_in_the_identity(monkeypatch):
    monkeypatch.setenv("NERLOOP_MODEL_TEST_KEY", "sk-abcdef123456")
    model = make_model(api_key_env="NERLOOP_MODEL_TEST_KEY")
    assert redact("rejected key sk-abcdef123456!") == "rejected key ***!"
    assert "sk-abcdef123456" not in repr(model) + str(model.identity)
    # The endpoint is part of the identity (and so of every cache key): changed deliberately,
    # so that two servers serving one model name never share cached answers.
    assert model.identity == {
        "api": "openai-chat",
        "base_url": "http://127.0.0.1:9/v1",
        "name": "m",
        "config": {"temperature": 0.0},
        "system_prompt": None,
    }


def test_parse_retry_after_seconds_and_http_dates():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8.0 <= parse_retry_after(in_ten) <= 10.0


def test_backoff_doubles_with_jitter_up_to_the_cap():
    model = make_model()
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)]:
        delays = [model._backoff(attempt) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert max(delays) - min(delays) > full / 10  # jittered, not constant
