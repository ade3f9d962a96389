"""LLM answers cached on disk, so an interrupted run resumes without asking anything twice.

The cache is one append-only JSONL file per folder (``answers.jsonl``). Each answer is one line,
written and flushed as soon as it arrives: a run killed at any moment loses at most the answers
still in flight. A line cut short by the kill is skipped on load. Keys are the SHA-256 of the
model's identity (name and request settings, never a key) and the prompt.

Only answers are cached, not failures: a later run asks again for what failed before.
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
    text: str
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool


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
                    self._answers[row["key"]] = CachedAnswer(
                        text=row["text"],
                        prompt_tokens=int(row["prompt_tokens"]),
                        completion_tokens=int(row["completion_tokens"]),
                        usage_estimated=bool(row["usage_estimated"]),
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
            "time": round(time.time(), 3),
        }
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            self._answers[key] = answer
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> AnswerCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
