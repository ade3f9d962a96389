"""One masking helper for every secret: LLM API keys and the Hub token."""

from __future__ import annotations

import logging

import pytest

import nerloop.redact
from nerloop.hub import _hub_error
from nerloop.llm import redact as llm_redact
from nerloop.redact import MASK, RedactingFilter, redact, register_secret


@pytest.fixture(autouse=True)
def no_registered_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nerloop.redact, "_SECRETS", set())


def test_registered_secrets_are_masked_longest_first() -> None:
    register_secret("sk-abcdef")
    register_secret("sk-abcdef123456")
    register_secret("abc")  # too short to register: it would mask ordinary words
    register_secret(None)
    assert redact("keys sk-abcdef123456 and sk-abcdef, abc") == "keys *** and ***, abc"


def test_secrets_passed_along_are_masked_even_when_short() -> None:
    register_secret("sk-abcdef")
    assert redact("token hf_x in sk-abcdef", "hf_x", None, "") == "token *** in ***"
    assert redact("nothing to hide", None) == "nothing to hide"


def test_the_logging_filter_masks_formatted_records() -> None:
    register_secret("sk-abcdef123456")
    record = logging.LogRecord(
        "nerloop", logging.INFO, __file__, 1, "key %s", ("sk-abcdef123456",), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "key ***"


def test_the_old_llm_path_is_the_same_helper() -> None:
    assert llm_redact.redact is redact and llm_redact.MASK == MASK == "***"


def test_hub_errors_mask_the_token() -> None:
    err = RuntimeError("401 for https://hub.example/api?token=hf_secret_1 (token hf_secret_1)")
    message = str(
        _hub_error(err, "push to", "ns/repo", "main", "https://hub.example", "hf_secret_1")
    )
    assert "hf_secret_1" not in message
    assert message.endswith("401 for https://hub.example/api?token=*** (token ***)")
