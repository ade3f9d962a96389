"""``nerloop.GoldFewShot.v1``: few-shot examples for ``spacy.NER.v3`` drawn from gold Docs."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spacy.tokens import Doc
from spacy_llm.registry import registry

from nerloop.io_utils import read_docbin


def select_examples(docs: list[Doc], n_examples: int, seed: int, max_tokens: int) -> list[Doc]:
    """A seeded choice of ``n_examples`` Docs with entities that together cover every label.

    Docs are visited in a seeded random order; a Doc is taken first if it adds a label not yet
    covered, then further Docs with entities fill the quota. Docs longer than ``max_tokens``
    are skipped to keep the prompt short.
    """
    order = [i for i, doc in enumerate(docs) if doc.ents and len(doc) <= max_tokens]
    random.Random(seed).shuffle(order)
    chosen: list[int] = []
    covered: set = set()
    for i in order:
        if len(chosen) >= n_examples:
            break
        labels = {ent.label_ for ent in docs[i].ents}
        if labels - covered:
            chosen.append(i)
            covered |= labels
    for i in order:
        if len(chosen) >= n_examples:
            break
        if i not in chosen:
            chosen.append(i)
    return [docs[i] for i in chosen]


def doc_to_cot_example(doc: Doc) -> dict[str, Any]:
    """A ``spacy.NER.v3`` (chain-of-thought) example: the text and its entities with a reason."""
    return {
        "text": doc.text,
        "spans": [
            {
                "text": ent.text,
                "is_entity": True,
                "label": ent.label_,
                "reason": f"is a {ent.label_}",
            }
            for ent in doc.ents
        ],
    }


@registry.llm_misc("nerloop.GoldFewShot.v1")
def gold_few_shot_reader(
    path: Path, n_examples: int = 4, seed: int = 0, max_tokens: int = 40
) -> Callable[[], list[dict[str, Any]]]:
    """Few-shot examples for ``spacy.NER.v3`` from a gold DocBin (e.g. ``corpus/train.spacy``).

    path (Path): the DocBin of gold sentences.
    n_examples (int): how many examples to put in every prompt.
    seed (int): seed of the choice (same seed, same examples).
    max_tokens (int): longest sentence to use as an example.
    RETURNS (Callable[[], List[Dict[str, Any]]]): the reader spacy-llm calls for ``examples``.
    """

    def read() -> list[dict[str, Any]]:
        docs = read_docbin(path)
        return [
            doc_to_cot_example(doc) for doc in select_examples(docs, n_examples, seed, max_tokens)
        ]

    return read
