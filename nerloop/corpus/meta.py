"""Per-Doc metadata kept in ``doc.user_data`` (see CONTRIBUTING.md).

DocBins are written with ``store_user_data=True`` so these keys survive a round trip.
Plain string keys are used instead of ``Doc._`` extensions so that any reader (a packaged
model, a test, a notebook) sees them without registering anything first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from spacy.tokens import Doc

from nerloop.errors import NerloopError

SENT_ID = "sent_id"
DOC_ID = "doc_id"
SPLIT = "split"
ANNOTATOR = "annotator"
SOURCE = "source"
WEIGHT = "weight"
CHUNK_TAGS = "chunk_tags"

# The entity labels are not a constant: they come from the label scheme (nerloop.labels).
GOLD_ANNOTATOR = "gold"


class MissingMetaError(NerloopError, KeyError):
    """A Doc lacks metadata that ``preprocess`` sets (it was made some other way)."""

    def __str__(self) -> str:  # KeyError's own str() would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateSentenceError(NerloopError, ValueError):
    """Two Docs of one set have the same sentence id."""


def set_meta(doc: Doc, **values: Any) -> Doc:
    """Set metadata keys on a Doc (unknown keys are refused to catch typos)."""
    known = {SENT_ID, DOC_ID, SPLIT, ANNOTATOR, SOURCE, WEIGHT, CHUNK_TAGS}
    for key, value in values.items():
        if key not in known:
            raise KeyError(f"unknown metadata key {key!r}; known keys: {sorted(known)}")
        doc.user_data[key] = value
    return doc


def sent_id(doc: Doc) -> int:
    """The sentence id of a Doc; a clear error when the Doc was not made by preprocess."""
    try:
        return int(doc.user_data[SENT_ID])
    except KeyError:
        raise MissingMetaError(
            f"Doc {doc.text[:40]!r} has no '{SENT_ID}' in doc.user_data: "
            "was it made by `spacy project run preprocess`?"
        ) from None


def weight(doc: Doc) -> float:
    return float(doc.user_data.get(WEIGHT, 1.0))


def by_sent_id(docs: Iterable[Doc]) -> dict[int, Doc]:
    """Index Docs by sentence id, refusing duplicates."""
    index: dict[int, Doc] = {}
    for doc in docs:
        key = sent_id(doc)
        if key in index:
            raise DuplicateSentenceError(f"sentence id {key} occurs twice")
        index[key] = doc
    return index
