"""Tiny gold and cheap DocBins built in memory for the mixing and k-fold tests."""

from __future__ import annotations

from pathlib import Path

from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from nerloop.corpus import meta
from nerloop.io_utils import write_docbin

# (words, entities as (start, end, label)): gold labels
TEMPLATES = [
    (["Peter", "Blackburn", "visited", "Paris", "."], [(0, 2, "PER"), (3, 4, "LOC")]),
    (["The", "EU", "rejects", "German", "beef", "."], [(1, 2, "ORG"), (3, 4, "MISC")]),
    (
        ["Anna", "works", "for", "Reuters", "in", "London", "."],
        [(0, 1, "PER"), (3, 4, "ORG"), (5, 6, "LOC")],
    ),  # noqa: E501
    (["Results", "of", "the", "match", "."], []),
]


def _doc(vocab: Vocab, words: list[str], ents: list[tuple[int, int, str]], **values) -> Doc:
    doc = Doc(vocab, words=words, spaces=[True] * (len(words) - 1) + [False])
    doc.set_ents([Span(doc, s, e, label=label) for s, e, label in ents], default="outside")
    meta.set_meta(doc, **values)
    return doc


def cheap_version(ents: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The 'LLM' labels: every LOC is called ORG and MISC is missed."""
    return [(s, e, "ORG" if label == "LOC" else label) for s, e, label in ents if label != "MISC"]


def gold_docs(n: int, vocab: Vocab | None = None, split: str = "train") -> list[Doc]:
    vocab = vocab or Vocab()
    docs = []
    for i in range(n):
        words, ents = TEMPLATES[i % len(TEMPLATES)]
        docs.append(
            _doc(
                vocab,
                words,
                ents,
                sent_id=i,
                doc_id=i // 4,
                split=split,
                annotator="gold",
                source="gold",
                weight=1.0,
            )
        )
    return docs


def cheap_docs(ids: list[int], vocab: Vocab | None = None) -> list[Doc]:
    vocab = vocab or Vocab()
    docs = []
    for i in ids:
        words, ents = TEMPLATES[i % len(TEMPLATES)]
        docs.append(
            _doc(
                vocab,
                words,
                cheap_version(ents),
                sent_id=i,
                doc_id=i // 4,
                split="train",
                annotator="fakellm",
                source="cheap",
                weight=1.0,
            )
        )
    return docs


def write_tiny_corpus(
    folder: Path, n_gold: int = 40, cheap_ids: list[int] | None = None, n_dev: int = 8
) -> dict[str, Path]:
    """train.spacy (n_gold sentences), cheap.spacy (cheap_ids, default the first 10) and
    dev.spacy under ``folder``."""
    cheap_ids = list(range(10)) if cheap_ids is None else cheap_ids
    paths = {
        "gold": folder / "train.spacy",
        "cheap": folder / "cheap.spacy",
        "dev": folder / "dev.spacy",
    }
    write_docbin(paths["gold"], gold_docs(n_gold))
    write_docbin(paths["cheap"], cheap_docs(cheap_ids))
    write_docbin(paths["dev"], gold_docs(n_dev, split="dev"))
    return paths
