"""Tag ids, IOB2 repair and span conversion for the token-level NER task."""

from __future__ import annotations

from collections.abc import Sequence

from spacy.tokens import Doc, Span
from spacy.training import biluo_tags_to_spans, biluo_to_iob, iob_to_biluo

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

    spaCy's ``iob_to_biluo`` reads such an ``I-X`` as an entity start, so the round trip
    through BILUO is the repair; only the count of changed tags is added here.

    tags (Sequence[str]): IOB2 tags, possibly invalid (``I-`` after ``O`` or after another type).
    RETURNS (tuple[list[str], int]): the repaired tags and how many were changed.
    """
    repaired = biluo_to_iob(iob_to_biluo(tags))
    return repaired, sum(old != new for old, new in zip(tags, repaired, strict=True))


def iob2_to_spans(doc: Doc, tags: Sequence[str]) -> list[Span]:
    """Entity spans of ``doc`` from valid IOB2 tags (one per token).

    doc (Doc): the Doc the tags belong to.
    tags (Sequence[str]): IOB2 tags, one per token.
    RETURNS (List[Span]): the entities, in order.
    """
    if len(tags) != len(doc):
        # A caller's bug (the parser aligns every reply to the Doc's tokens), not a user error.
        raise ValueError(f"{len(tags)} tags for {len(doc)} tokens")
    return biluo_tags_to_spans(doc, iob_to_biluo(tags))
