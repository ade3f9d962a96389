"""Tag ids, IOB2 repair and span conversion for the token-level NER task."""

from __future__ import annotations

from collections.abc import Sequence

from spacy.tokens import Doc, Span

from nerloop.corpus.conll import spans_from_iob2

# The study's tag ids, in the order its prompt lists them.
DEFAULT_TAG_IDS: dict[str, int] = {
    "O": 0,
    "B-PER": 1,
    "I-PER": 2,
    "B-ORG": 3,
    "I-ORG": 4,
    "B-LOC": 5,
    "I-LOC": 6,
    "B-MISC": 7,
    "I-MISC": 8,
}

# Spelled-out entity types some LLMs answer with instead of the CoNLL names.
TYPE_SYNONYMS: dict[str, str] = {
    "PERSON": "PER",
    "PERS": "PER",
    "ORGANIZATION": "ORG",
    "ORGANISATION": "ORG",
    "LOCATION": "LOC",
    "GPE": "LOC",
    "MISCELLANEOUS": "MISC",
}


def repair_iob2(tags: Sequence[str]) -> tuple[list[str], int]:
    """Turn every ``I-X`` that does not continue an ``X`` entity into ``B-X``.

    tags (Sequence[str]): IOB2 tags, possibly invalid (``I-`` after ``O`` or after another type).
    RETURNS (tuple[list[str], int]): the repaired tags and how many were changed.
    """
    repaired: list[str] = []
    n_changed = 0
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
            n_changed += 1
        repaired.append(tag)
        previous = tag
    return repaired, n_changed


def iob2_to_spans(doc: Doc, tags: Sequence[str]) -> list[Span]:
    """Entity spans of ``doc`` from valid IOB2 tags (one per token), decoded by the corpus's
    own reader (``scripts.conll.spans_from_iob2``)."""
    if len(tags) != len(doc):
        raise ValueError(f"{len(tags)} tags for {len(doc)} tokens")
    spans, _ = spans_from_iob2(tags)
    return [Span(doc, span.start, span.end, label=span.label) for span in spans]
