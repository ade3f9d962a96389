"""Token usage of LLM answers: measured from the API's ``usage`` or estimated from the text."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

_PIECES = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def estimate_tokens(text: str) -> int:
    """A rough BPE token count for when an API reports no usage.

    Counts words and punctuation marks (each usually one token for English BPE vocabularies)
    and adds one token per 8 characters of word text beyond the first 8 of a word, for the
    long or rare words that BPE splits. It is an estimate: prices derived from it are marked
    ``estimated``.
    """
    pieces = _PIECES.findall(text)
    extra = sum(math.ceil((len(piece) - 8) / 8) for piece in pieces if len(piece) > 8)
    return len(pieces) + extra


@dataclass
class Usage:
    """Token counts of one or more answers; ``estimated`` counts answers without API usage."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    answers: int = 0
    estimated: int = 0

    def add(self, prompt_tokens: int, completion_tokens: int, estimated: bool) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.answers += 1
        self.estimated += int(estimated)

    def to_dict(self) -> dict:
        return asdict(self)
