"""A few hand-made sentence Docs and a tiny ``bio_ner`` model trained on them in seconds."""

from __future__ import annotations

from pathlib import Path

from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from nerloop.corpus import meta
from nerloop.io_utils import write_docbin

ROOT = Path(__file__).resolve().parent.parent
TINY_CONFIG = ROOT / "configs" / "tagger_tiny.cfg"

# (words, entities as (start token, end token, label))
SENTENCES = [
    (["Peter", "Blackburn", "visited", "Paris", "."], [(0, 2, "PER"), (3, 4, "LOC")]),
    (["The", "EU", "rejects", "German", "beef", "."], [(1, 2, "ORG"), (3, 4, "MISC")]),
    (
        ["Anna", "works", "for", "Reuters", "in", "Zürich", "."],
        [(0, 1, "PER"), (3, 4, "ORG"), (5, 6, "LOC")],
    ),
    (["Results", "of", "the", "match", "."], []),
    (["Japan", "beat", "Syria", "2-1", "."], [(0, 1, "LOC"), (2, 3, "LOC")]),
    (["Nadim", "Ladki", "joined", "Reuters", "."], [(0, 2, "PER"), (3, 4, "ORG")]),
]
FIRST_SENT_ID = 100  # sentence ids that are not positions, as in a real selected batch


def sentence_docs(vocab: Vocab | None = None, split: str = "train") -> list[Doc]:
    """The sentences as corpus Docs: original tokens, gold ``doc.ents``, metadata."""
    vocab = vocab or Vocab()
    docs = []
    for i, (words, ents) in enumerate(SENTENCES):
        doc = Doc(vocab, words=words, spaces=[True] * (len(words) - 1) + [False])
        doc.set_ents([Span(doc, s, e, label=label) for s, e, label in ents], default="outside")
        meta.set_meta(
            doc,
            sent_id=FIRST_SENT_ID + i,
            doc_id=i // 3,
            split=split,
            annotator=meta.GOLD_ANNOTATOR,
            source="gold",
        )
        docs.append(doc)
    return docs


def train_tiny_tagger(folder: Path, max_epochs: int = 30) -> Path:
    """Train the tiny config on the sentences (dev = train) and return ``model-best``."""
    from spacy.cli.train import train

    import components.bio_ner  # noqa: F401  (registers the bio_ner factory)

    corpus = folder / "corpus.spacy"
    write_docbin(corpus, sentence_docs())
    train(
        TINY_CONFIG,
        folder / "training",
        overrides={
            "paths.train": str(corpus),
            "paths.dev": str(corpus),
            "training.max_epochs": max_epochs,
        },
    )
    return folder / "training" / "model-best"
