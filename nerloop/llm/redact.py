"""Keep secrets out of everything a run writes (failures, logs, caches, metrics).

Models register the secret values they read from the environment; every message that may
carry text from a server (an error body can echo a key) goes through :func:`redact`.
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


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
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
