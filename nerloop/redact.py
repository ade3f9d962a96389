"""Keep secrets out of everything a run writes (failures, logs, caches, metrics, manifests).

The one masking helper of nerloop. Code that reads a secret from the environment (an LLM model's
API key, the Hub token) registers it or passes it along; every message that may carry text from
a server (an error body or URL can echo a key) goes through :func:`redact`.
"""

from __future__ import annotations

import logging
import os
import threading

# Environment variables from which spacy-llm's own models read their keys.
KNOWN_KEY_ENVS = (
    "OPENAI_API_KEY",
    "OPENAI_API_ORG",
    "ANTHROPIC_API_KEY",
    "CO_API_KEY",
    "PALM_API_KEY",
    "AZURE_OPENAI_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
)

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`redact` masks it (short values are ignored)."""
    if value and len(value) >= 4:
        with _LOCK:
            _SECRETS.add(value)


def register_known_secrets() -> None:
    """Register the keys spacy-llm's own models read from the environment themselves."""
    for name in KNOWN_KEY_ENVS:
        register_secret(os.environ.get(name))


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every registered secret, and every one of ``secrets``, replaced by ``***``.

    text (str): what may hold a secret.
    secrets (Optional[str]): more values to mask here (empty or None ones are skipped; unlike
        registered secrets, short ones are masked too).
    RETURNS (str): the text with the secrets masked, longest first.
    """
    with _LOCK:
        registered = set(_SECRETS)
    for secret in sorted(registered | {value for value in secrets if value}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
