"""A client for OpenAI-compatible chat-completions endpoints (OpenAI, Ollama, vLLM, llama.cpp).

Robust by itself: timeouts, retries with exponential backoff and jitter on 408/409/425/429/5xx,
timeouts, connection errors and malformed bodies, ``Retry-After`` honoured (and shared by all
threads of the model, so a rate limit pauses every worker, not only the one that hit it).
Thread-safe: one ``requests.Session`` per thread, counters under a lock. The API key is read
from the environment variable named in the config, registered for redaction and never
written anywhere.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable  # noqa: UP035  (spacy-llm inspects typing generics)

import requests

from nerloop.errors import NerloopError, SettingsError
from nerloop.llm.usage import estimate_tokens
from nerloop.redact import redact, register_secret

logger = logging.getLogger("nerloop.llm")

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class LLMRequestError(NerloopError, RuntimeError):
    """A prompt could not be answered (after retries, or a status that is not retried)."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0):
        super().__init__(redact(message))
        self.status = status
        self.attempts = attempts


@dataclass
class Completion:
    """One answered prompt: its text, token usage (``usage_estimated``: the API gave none) and
    why the model stopped (``finish_reason``: ``"stop"``, ``"length"`` when ``max_tokens`` cut
    the reply short, ...; None when the API does not say)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool
    attempts: int
    finish_reason: str | None = None


class _PauseGate:
    """A time before which no thread of the model sends a request (set by ``Retry-After``).

    Threads released by the gate wake at slightly different times (up to a tenth of their
    wait, at most a second later), so that they do not all hit the server at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._not_before = 0.0
        self._random = random.Random()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)

    def wait(self) -> None:
        while True:
            with self._lock:
                remaining = self._not_before - time.monotonic()
                jitter = self._random.uniform(0, min(1.0, remaining / 10)) if remaining > 0 else 0
            if remaining <= 0:
                return
            time.sleep(remaining + jitter)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class OpenAICompatible:
    def __init__(
        self,
        name: str,
        base_url: str,
        api_key_env: str | None,
        config: dict[str, Any],
        system_prompt: str | None,
        max_tries: int,
        request_timeout: float,
        backoff_base: float,
        backoff_max: float,
        retry_after_max: float,
        context_length: int | None,
    ):
        """A chat-completions client usable as a spacy-llm model.

        name (str): the model name the endpoint knows (``gpt-4o-mini``, ``llama3.1:8b``, ...).
        base_url (str): the API root, e.g. ``https://api.openai.com/v1``; requests go to
            ``{base_url}/chat/completions``.
        api_key_env (Optional[str]): name of the environment variable holding the key; None for
            servers without authentication (Ollama, a local vLLM or llama.cpp server).
        config (Dict[str, Any]): extra request fields (``temperature``, ``max_tokens``,
            ``response_format``, ...).
        system_prompt (Optional[str]): a system message sent before the prompt, if any.
        max_tries (int): attempts per prompt, the first included.
        request_timeout (float): seconds to wait for the server (connect and each read).
        backoff_base (float): first backoff in seconds; doubled on each retry, with jitter.
        backoff_max (float): longest backoff in seconds.
        retry_after_max (float): longest ``Retry-After`` honoured; a longer one is a failure.
        context_length (Optional[int]): the model's context in tokens, for spacy-llm sharding.
        """
        secret_fields = {"api_key", "apikey", "authorization", "key", "token"}
        if secret_fields & {str(field).lower() for field in config}:
            raise SettingsError(
                "API keys must not be written in a config: name the environment variable "
                "that holds the key in api_key_env"
            )
        if max_tries < 1:
            raise SettingsError(f"max_tries must be at least 1, got {max_tries}")
        if request_timeout <= 0 or backoff_base < 0 or backoff_max < 0:
            raise SettingsError("request_timeout must be positive, backoff_base/max non-negative")
        self._name = name
        self._base_url = base_url.rstrip("/")
        self._url = f"{self._base_url}/chat/completions"
        self._api_key_env = api_key_env
        self._config = dict(config)
        self._system_prompt = system_prompt
        self._max_tries = max_tries
        self._request_timeout = request_timeout
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._retry_after_max = retry_after_max
        self._context_length = context_length
        self._api_key: str | None = None
        if api_key_env:
            self._api_key = os.environ.get(api_key_env)
            if not self._api_key:
                raise SettingsError(
                    f"the environment variable {api_key_env} is not set: API keys are read "
                    "from the environment only (set api_key_env = null for a server "
                    "without authentication)"
                )
            register_secret(self._api_key)
        self._gate = _PauseGate()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._random = random.Random()
        self._counts: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"OpenAICompatible(name={self._name!r}, base_url={self._base_url!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def identity(self) -> dict[str, Any]:
        """What decides the answer to a prompt (the cache key): the endpoint, the model name
        and the request fields. Two servers that serve a model under the same name (OpenAI and
        a local vLLM, say) do not share answers."""
        return {
            "api": "openai-chat",
            "base_url": self._base_url,
            "name": self._name,
            "config": self._config,
            "system_prompt": self._system_prompt,
        }

    @property
    def context_length(self) -> int | None:
        return self._context_length

    def request_counts(self) -> dict[str, int]:
        """Counters since construction: ``requests`` (HTTP attempts), ``retries``, ``status_<n>``,
        ``timeouts``, ``connection_errors``, ``malformed_bodies``."""
        with self._lock:
            return dict(self._counts)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: half fixed, half uniformly random."""
        delay = min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1))
        return delay / 2 + self._random.uniform(0, delay / 2)

    def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
        """Answer prompts one after the other (spacy-llm's model contract).

        ``scripts.annotate`` calls :meth:`complete` from many threads instead, with a cache.
        Raises :class:`LLMRequestError` when a prompt cannot be answered.
        """
        return [[self.complete(prompt).text for prompt in doc_prompts] for doc_prompts in prompts]

    def complete(self, prompt: str) -> Completion:
        """Answer one prompt, retrying what is worth retrying.

        prompt (str): the user message.
        RETURNS (Completion): the answer and its token usage.
        """
        messages = [{"role": "user", "content": prompt}]
        if self._system_prompt:
            messages.insert(0, {"role": "system", "content": self._system_prompt})
        payload = {**self._config, "model": self._name, "messages": messages}
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        last_error = "no attempt made"
        last_status: int | None = None
        for attempt in range(1, self._max_tries + 1):
            self._gate.wait()
            self._count("requests")
            if attempt > 1:
                self._count("retries")
            retry_after: float | None = None
            try:
                response = self._session().post(
                    self._url, json=payload, headers=headers, timeout=self._request_timeout
                )
            except requests.Timeout:
                self._count("timeouts")
                last_error, last_status = f"timeout after {self._request_timeout:g} s", None
            except requests.ConnectionError as err:
                self._count("connection_errors")
                last_error, last_status = f"connection error: {_connection_error(err)}", None
            else:
                status = response.status_code
                last_status = status
                self._count(f"status_{status}")
                if status == 200:
                    try:
                        return self._completion(prompt, response.json(), attempt)
                    except (ValueError, KeyError, IndexError, TypeError) as err:
                        self._count("malformed_bodies")
                        last_error = f"malformed API response ({type(err).__name__})"
                elif status in RETRY_STATUSES:
                    last_error = f"HTTP {status}: {_error_message(response)}"
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                else:
                    raise LLMRequestError(
                        f"HTTP {status}: {_error_message(response)}",
                        status=status,
                        attempts=attempt,
                    )
            logger.debug("attempt %d/%d failed: %s", attempt, self._max_tries, redact(last_error))
            if attempt == self._max_tries:
                break
            if retry_after is not None:
                if retry_after > self._retry_after_max:
                    raise LLMRequestError(
                        f"{last_error}; Retry-After {retry_after:g} s exceeds "
                        f"retry_after_max {self._retry_after_max:g} s",
                        status=last_status,
                        attempts=attempt,
                    )
                # Honour Retry-After for every thread of this model (the gate adds jitter).
                self._gate.pause(retry_after)
            else:
                time.sleep(self._backoff(attempt))
        raise LLMRequestError(
            f"gave up after {self._max_tries} attempts: {last_error}",
            status=last_status,
            attempts=self._max_tries,
        )

    def _completion(self, prompt: str, body: dict[str, Any], attempt: int) -> Completion:
        choice = body["choices"][0]
        message = choice["message"]
        text = message.get("content") or ""
        finish_reason = choice.get("finish_reason")
        if not isinstance(text, str):
            raise TypeError("message content is not a string")
        usage = body.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens")
        completion_tokens = usage.get("completion_tokens")
        estimated = not isinstance(prompt_tokens, int) or not isinstance(completion_tokens, int)
        if estimated:
            prompt_tokens = estimate_tokens(prompt)
            completion_tokens = estimate_tokens(text)
        return Completion(
            text=text,
            prompt_tokens=int(prompt_tokens),
            completion_tokens=int(completion_tokens),
            usage_estimated=estimated,
            attempts=attempt,
            finish_reason=str(finish_reason) if finish_reason is not None else None,
        )


def _connection_error(err: requests.ConnectionError) -> str:
    """The OS's words for a connection error (``[Errno 111] Connection refused``), else its type."""
    match = re.search(r"\[Errno -?\d+\][^'\")\]]*", str(err))
    return match.group(0).strip() if match else type(err).__name__


def _error_message(response: requests.Response) -> str:
    """The API's error message (OpenAI's ``{"error": {"message": ...}}``) or the body's start."""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return redact(str(message))[:300]
    except ValueError:
        pass
    return redact(response.text.strip().replace("\n", " "))[:300] or response.reason or ""
