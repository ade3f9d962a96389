"""LLM answers cached on disk, so an interrupted run resumes without asking anything twice.

The cache is one append-only JSONL file per folder (``answers.jsonl``). Each answer is one line,
written and flushed as soon as it arrives: a run killed at any moment loses at most the answers
still in flight. A line cut short by the kill is skipped on load. Keys are the SHA-256 of the
model's identity and the prompt. For ``nerloop.OpenAICompatible.v1`` the identity is the
endpoint (``base_url``), the model name and the request settings (never a key), so a local
server and a hosted API that use one model name never share answers.

Only usable answers stay in the cache. Failed requests are never written; an answer that came
back but could not be used (cut off by ``max_tokens``, not parseable, other tokens) is written
when it arrives (a kill must not lose it) and then *rejected*: a ``{"key": ..., "rejected":
reason}`` line follows it, so a later run asks the model again, and a good answer written after
it is the one that counts. Lines are never rewritten, so the file is also a log of the run.

Since the endpoint joined the identity, keys made before it (identity without ``base_url``)
are no longer found: those answers stay in the file but are asked again once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerloop.fingerprint import fingerprint

logger = logging.getLogger("nerloop.llm")

CACHE_FILE = "answers.jsonl"


def cache_key(model_identity: dict[str, Any], prompt: str) -> str:
    """SHA-256 of the canonical JSON of the model identity and the prompt."""
    return fingerprint({"model": model_identity, "prompt": prompt})


@dataclass(frozen=True)
class CachedAnswer:
    """One answer as cached (``finish_reason``: why the model stopped, None when unknown)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool
    finish_reason: str | None = None


class AnswerCache:
    """Answers by key, loaded from and appended to ``<folder>/answers.jsonl``.

    folder (Path): where the cache lives (created if missing).
    """

    def __init__(self, folder: Path | str):
        self.path = Path(folder) / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._answers: dict[str, CachedAnswer] = {}
        self._lock = threading.Lock()
        self._n_skipped = 0
        self._n_rejected = 0
        if self.path.exists():
            self._load()
        self._file = self.path.open("a", encoding="utf8")
        if self.path.stat().st_size and not self._ends_with_newline():
            # The last line was cut short by a kill: start the next answer on a new line.
            self._file.write("\n")
            self._file.flush()

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as f:
            f.seek(-1, 2)
            return f.read(1) == b"\n"

    def _load(self) -> None:
        with self.path.open(encoding="utf8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if "rejected" in row:
                        self._answers.pop(row["key"], None)
                        self._n_rejected += 1
                        continue
                    self._answers[row["key"]] = CachedAnswer(
                        text=row["text"],
                        prompt_tokens=int(row["prompt_tokens"]),
                        completion_tokens=int(row["completion_tokens"]),
                        usage_estimated=bool(row["usage_estimated"]),
                        finish_reason=row.get("finish_reason"),
                    )
                except (ValueError, KeyError, TypeError):
                    self._n_skipped += 1
        if self._n_skipped:
            logger.warning("%s: skipped %d unreadable line(s)", self.path, self._n_skipped)

    def __len__(self) -> int:
        return len(self._answers)

    def __contains__(self, key: str) -> bool:
        return key in self._answers

    def get(self, key: str) -> CachedAnswer | None:
        return self._answers.get(key)

    def put(self, key: str, answer: CachedAnswer, model_name: str) -> None:
        """Store an answer and flush it to disk before returning."""
        row = {
            "key": key,
            "model": model_name,
            "text": answer.text,
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "usage_estimated": answer.usage_estimated,
            "finish_reason": answer.finish_reason,
            "time": round(time.time(), 3),
        }
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            self._answers[key] = answer
            self._file.write(line)
            self._file.flush()

    def reject(self, key: str, reason: str) -> bool:
        """Drop the answer under ``key`` for good: a later run (or lookup) asks the model again.

        key (str): the answer's key.
        reason (str): why it cannot be used (kept in the file, e.g. ``"parse_failed"``).
        RETURNS (bool): whether there was an answer to reject.
        """
        row = {"key": key, "rejected": reason, "time": round(time.time(), 3)}
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            if self._answers.pop(key, None) is None:
                return False
            self._file.write(line)
            self._file.flush()
            return True

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> AnswerCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
