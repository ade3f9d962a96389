"""Send prompts to any spacy-llm model concurrently, through the answer cache, with a progress bar.

Models that offer ``complete(prompt) -> Completion`` (``nerloop.OpenAICompatible.v1``) give
measured token usage and HTTP counters. Any other spacy-llm model (``spacy.GPT-4.v3``,
``spacy.Claude-2.v2``, a Hugging Face model, ...) is called as ``model([[prompt]])``, one prompt per
call, and its usage is estimated from the text; it retries by its own rules. Local
Hugging Face models are not thread-safe: run them with ``--concurrency 1``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from nerloop.errors import SettingsError
from nerloop.llm.cache import AnswerCache, CachedAnswer, cache_key
from nerloop.llm.usage import Usage, estimate_tokens
from nerloop.redact import redact

logger = logging.getLogger("nerloop.llm")


@dataclass
class Answer:
    """The outcome of one prompt: ``text`` or ``error``; ``key`` is its cache key and
    ``finish_reason`` why the model stopped (None when the model does not say)."""

    text: str | None
    error: str | None = None
    from_cache: bool = False
    key: str = ""
    finish_reason: str | None = None


@dataclass
class ExecutorReport:
    """What a run of the executor cost."""

    prompts: int = 0
    distinct_prompts: int = 0
    answered_from_cache: int = 0
    answered_now: int = 0
    failed: int = 0
    calls: int = 0
    usage_now: Usage = field(default_factory=Usage)
    usage_all: Usage = field(default_factory=Usage)
    http: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompts": self.prompts,
            "distinct_prompts": self.distinct_prompts,
            "answered_from_cache": self.answered_from_cache,
            "answered_now": self.answered_now,
            "failed": self.failed,
            "model_calls": self.calls,
            "http": dict(sorted(self.http.items())),
            "usage_this_run": self.usage_now.to_dict(),
            "usage_all_answers": self.usage_all.to_dict(),
            "wall_seconds": round(self.wall_seconds, 3),
        }


def model_identity(model: Any) -> dict[str, Any]:
    """What determines a model's answers, for cache keys (never credentials)."""
    identity = getattr(model, "identity", None)
    if isinstance(identity, dict):
        return identity
    config = getattr(model, "_config", None)
    return {
        "api": f"{type(model).__module__}.{type(model).__qualname__}",
        "name": str(getattr(model, "_name", "")),
        "endpoint": str(getattr(model, "_endpoint", "")),
        "config": dict(config) if isinstance(config, dict) else str(config),
    }


def model_name(model: Any) -> str:
    return str(model_identity(model).get("name") or type(model).__name__)


class PromptExecutor:
    """Answers prompts with a model, ``concurrency`` at a time, caching every answer.

    model (Any): a spacy-llm model (``Callable[[Iterable[Iterable[str]]], ...]``), optionally
        with ``complete(prompt)`` and ``request_counts()``.
    cache (AnswerCache | None): where answers are kept; None for no cache.
    concurrency (int): prompts in flight at once (threads).
    progress (bool): show a tqdm progress bar (rate and ETA) on stderr.
    """

    def __init__(
        self,
        model: Any,
        cache: AnswerCache | None,
        *,
        concurrency: int = 4,
        progress: bool = True,
        description: str = "LLM",
    ):
        if concurrency < 1:
            raise SettingsError(f"concurrency must be at least 1, got {concurrency}")
        self.model = model
        self.cache = cache
        self.concurrency = concurrency
        self.progress = progress
        self.description = description
        self.identity = model_identity(model)
        self.name = model_name(model)
        self._lock = threading.Lock()

    def _ask(self, prompt: str) -> CachedAnswer:
        complete = getattr(self.model, "complete", None)
        if callable(complete):
            completion = complete(prompt)
            return CachedAnswer(
                text=redact(completion.text),
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                usage_estimated=completion.usage_estimated,
                finish_reason=getattr(completion, "finish_reason", None),
            )
        responses = [list(doc_responses) for doc_responses in self.model([[prompt]])]
        text = str(responses[0][0])
        return CachedAnswer(
            text=redact(text),
            prompt_tokens=estimate_tokens(prompt),
            completion_tokens=estimate_tokens(text),
            usage_estimated=True,
        )

    def run(self, prompts: Sequence[str]) -> tuple[list[Answer], ExecutorReport]:
        """Answer every prompt (duplicates are asked once).

        prompts (Sequence[str]): the prompts.
        RETURNS (tuple[list[Answer], ExecutorReport]): one answer per prompt, in order, and the
            run's counts and usage.
        """
        start = time.perf_counter()
        counts_before = self._request_counts()
        report = ExecutorReport(prompts=len(prompts))
        keys = [cache_key(self.identity, prompt) for prompt in prompts]
        distinct: dict[str, str] = dict(zip(keys, prompts))
        report.distinct_prompts = len(distinct)
        outcomes: dict[str, Answer] = {}
        todo: list[str] = []
        for key in distinct:
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is None:
                todo.append(key)
                continue
            outcomes[key] = Answer(
                text=cached.text, from_cache=True, key=key, finish_reason=cached.finish_reason
            )
            report.answered_from_cache += 1
            report.usage_all.add(
                cached.prompt_tokens, cached.completion_tokens, cached.usage_estimated
            )
        bar = tqdm(
            total=len(distinct),
            initial=report.answered_from_cache,
            desc=self.description,
            unit="prompt",
            disable=not self.progress,
            dynamic_ncols=True,
            mininterval=0.5,
        )
        try:
            self._run_pending(todo, distinct, outcomes, report, bar)
        finally:
            bar.close()
        report.http = self._counts_since(counts_before)
        report.wall_seconds = time.perf_counter() - start
        return [outcomes[key] for key in keys], report

    def _run_pending(
        self,
        todo: list[str],
        distinct: dict[str, str],
        outcomes: dict[str, Answer],
        report: ExecutorReport,
        bar: tqdm,
    ) -> None:
        if not todo:
            return
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="llm")
        pending: dict[Future, str] = {}
        queue = iter(todo)
        try:
            # Keep at most 2 x concurrency prompts submitted, so an interrupt leaves little queued.
            for key in queue:
                pending[pool.submit(self._ask, distinct[key])] = key
                if len(pending) >= 2 * self.concurrency:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    key = pending.pop(future)
                    report.calls += 1
                    try:
                        answer = future.result()
                    except Exception as err:  # any model error ends as a recorded failure
                        message = redact(f"{type(err).__name__}: {err}")
                        logger.debug("prompt %s failed: %s", key[:12], message)
                        outcomes[key] = Answer(text=None, error=message, key=key)
                        report.failed += 1
                    else:
                        if self.cache is not None:
                            self.cache.put(key, answer, self.name)
                        outcomes[key] = Answer(
                            text=answer.text, key=key, finish_reason=answer.finish_reason
                        )
                        report.answered_now += 1
                        for usage in (report.usage_now, report.usage_all):
                            usage.add(
                                answer.prompt_tokens,
                                answer.completion_tokens,
                                answer.usage_estimated,
                            )
                    bar.update(1)
                    if report.failed:
                        bar.set_postfix(failed=report.failed, refresh=False)
                    next_key = next(queue, None)
                    if next_key is not None:
                        pending[pool.submit(self._ask, distinct[next_key])] = next_key
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _request_counts(self) -> dict[str, int]:
        counts = getattr(self.model, "request_counts", None)
        return dict(counts()) if callable(counts) else {}

    def _counts_since(self, before: dict[str, int]) -> dict[str, int]:
        after = self._request_counts()
        return {key: value - before.get(key, 0) for key, value in after.items()}
