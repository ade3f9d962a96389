"""Label a DocBin of sentences with an LLM (a spacy-llm config) or a recorded LLM set.

    python -m scripts.annotate corpus/train.spacy corpus/llm/token_ner_openai.spacy \
        --source configs/llm_token_ner_openai.cfg
    python -m scripts.annotate corpus/train.spacy corpus/llm/chatgpt.spacy --source recorded:chatgpt

Extra ``--section.key value`` arguments override the config, as in ``spacy train``.
Writes the annotated sentences (failures left out), a JSONL of failures with their reasons,
and a JSON summary with counts, requests, tokens, time and cost; all atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nerloop.llm.redact import RedactingFilter


def setup_log_file(path: Path | None) -> logging.Handler | None:
    """Send the ``nerloop`` loggers' DEBUG records to ``path``, with secrets masked."""
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf8")
    handler.setLevel(logging.DEBUG)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("nerloop")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return handler


def sibling(path: Path, suffix: str) -> Path:
    """``corpus/llm/x.spacy`` -> ``corpus/llm/x<suffix>``."""
    return path.with_name(path.stem + suffix)




