"""Small sentences, Docs and config overrides shared by the annotate tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import spacy
from spacy.tokens import Doc
from spacy.vocab import Vocab

from nerloop.corpus import meta
from nerloop.eval.metrics import doc_to_iob2
from nerloop.llm.tasks.token_ner import iob2_to_spans

PROJECT_ROOT = Path(__file__).parent.parent
TOKEN_NER_CONFIG = PROJECT_ROOT / "configs" / "llm_token_ner_openai.cfg"
SPACY_NER_CONFIG = PROJECT_ROOT / "configs" / "llm_spacy_ner_openai.cfg"
KEY_ENV = "NERLOOP_TEST_LLM_KEY"

# CoNLL-2003-like sentences with their IOB2 gold tags.
SENTENCES: list[tuple[list[str], list[str]]] = [
    (
        ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
        ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"],
    ),
    (["Peter", "Blackburn"], ["B-PER", "I-PER"]),
    (["BRUSSELS", "1996-08-22"], ["B-LOC", "O"]),
    (
        ["The", "European", "Commission", "said", "on", "Thursday", "it", "disagreed", "."],
        ["O", "B-ORG", "I-ORG", "O", "O", "O", "O", "O", "O"],
    ),
    (
        ["Germany", "'s", "representative", "Werner", "Zwingmann", "said", "on", "Wednesday", "."],
        ["B-LOC", "O", "O", "B-PER", "I-PER", "O", "O", "O", "O"],
    ),
    (
        ["Fischler", "proposed", "EU-wide", "measures", "after", "reports", "from", "Britain", "."],
        ["B-PER", "O", "B-MISC", "O", "O", "O", "O", "B-LOC", "O"],
    ),
    (
        ["He", "said", "a", "ban", "was", "not", "justified", "."],
        ["O", "O", "O", "O", "O", "O", "O", "O"],
    ),
    (
        ["New", "York", "Stock", "Exchange", "shares", "rose", "5,060", "points", "."],
        ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "O", "O", "O", "O"],
    ),
]


def oracle_sentences(
    sentences: Sequence[tuple[list[str], list[str]]] = SENTENCES,
) -> dict[tuple[str, ...], list[str]]:
    return {tuple(tokens): list(tags) for tokens, tags in sentences}


def make_doc(vocab: Vocab, tokens: list[str], tags: list[str], **metadata: Any) -> Doc:
    spaces = [True] * len(tokens)
    spaces[-1] = False
    doc = Doc(vocab, words=tokens, spaces=spaces)
    doc.set_ents(iob2_to_spans(doc, tags), default="outside")
    meta.set_meta(doc, **metadata)
    return doc


def make_docs(
    sentences: Sequence[tuple[list[str], list[str]]] = SENTENCES,
    *,
    split: str = "train",
    first_sent_id: int = 0,
    vocab: Vocab | None = None,
) -> list[Doc]:
    """Gold Docs with the corpus metadata (sent_id, doc_id, split, annotator, ...)."""
    vocab = vocab or spacy.blank("en").vocab
    return [
        make_doc(
            vocab,
            list(tokens),
            list(tags),
            sent_id=first_sent_id + i,
            doc_id=0,
            split=split,
            annotator=meta.GOLD_ANNOTATOR,
            source="gold",
            weight=1.0,
        )
        for i, (tokens, tags) in enumerate(sentences)
    ]


def tags_of(docs: Sequence[Doc]) -> list[list[str]]:
    return [doc_to_iob2(doc) for doc in docs]


def live_overrides(base_url: str, **model_settings: Any) -> dict[str, Any]:
    """Point a shipped config at the loopback server, with fast retries for tests."""
    settings = {
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "max_tries": 3,
        "request_timeout": 2.0,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        **model_settings,
    }
    return {f"components.llm.model.{key}": value for key, value in settings.items()}
