"""Registered OpenAI-compatible model (what configs call)."""

from __future__ import annotations

from typing import Any

from confection import SimpleFrozenDict
from spacy_llm.registry import registry

from nerloop.llm.models.openai_compatible.model import OpenAICompatible


@registry.llm_models("nerloop.OpenAICompatible.v1")
def openai_compatible_v1(
    name: str,
    base_url: str = "https://api.openai.com/v1",
    api_key_env: str | None = "OPENAI_API_KEY",
    config: dict[str, Any] = SimpleFrozenDict(temperature=0.0),
    system_prompt: str | None = None,
    max_tries: int = 6,
    request_timeout: float = 60.0,
    backoff_base: float = 1.0,
    backoff_max: float = 60.0,
    retry_after_max: float = 300.0,
    context_length: int | None = None,
) -> OpenAICompatible:
    """Any endpoint that speaks OpenAI's chat-completions protocol.

    OpenAI (``https://api.openai.com/v1``), Ollama (``http://localhost:11434/v1``), vLLM
    (``http://localhost:8000/v1``), llama.cpp's server (``http://localhost:8080/v1``) and hosted
    open-model APIs (Together, Groq, OpenRouter, ...) differ only in these settings.

    name (str): model name as the endpoint knows it.
    base_url (str): API root; requests go to ``{base_url}/chat/completions``.
    api_key_env (Optional[str]): name of the environment variable with the key (never the
        key itself); null for a server without authentication.
    config (Dict[str, Any]): extra request fields, e.g. ``{"temperature": 0.0, "max_tokens":
        512, "response_format": {"type": "json_object"}}``.
    system_prompt (Optional[str]): optional system message.
    max_tries (int): attempts per prompt (retries on 408/409/425/429/5xx, timeouts,
        connection errors and malformed bodies).
    request_timeout (float): seconds to wait for the server.
    backoff_base (float): first backoff in seconds, doubled per retry, with jitter.
    backoff_max (float): longest backoff in seconds.
    retry_after_max (float): longest ``Retry-After`` honoured before giving up.
    context_length (Optional[int]): context size in tokens, only needed for sharding.
    RETURNS (OpenAICompatible): the model.
    """
    return OpenAICompatible(
        name=name,
        base_url=base_url,
        api_key_env=api_key_env,
        config=dict(config),
        system_prompt=system_prompt,
        max_tries=max_tries,
        request_timeout=request_timeout,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        retry_after_max=retry_after_max,
        context_length=context_length,
    )
