"""Convert CoNLL-2003 and the recorded LLM sets to DocBins in ``corpus/``.

Everything is read, converted and checked in memory first; files are written only when every
input converted cleanly, each one atomically, so a bad input leaves nothing new in ``corpus/``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import spacy
from spacy.tokens import Doc
from spacy.tokens import Span as SpacySpan
from spacy.vocab import Vocab
from wasabi import msg

from nerloop.corpus import meta
from nerloop.corpus.conll import (
    ConllFormatError,
    RepairCounts,
    Sentence,
    Span,
    normalise_digits,
    read_conll2003,
    spans_from_iob1,
    spans_from_iob2,
)
from nerloop.corpus.recorded_sets import RECORDED_SETS, RecordedSet, UnknownRecordedSetError
from nerloop.io_utils import MissingInputError, atomic_write_json, write_docbin
from nerloop.labels import LabelScheme, as_scheme

SPLITS = {"train": "conll2003/train.txt", "dev": "conll2003/dev.txt", "test": "conll2003/test.txt"}


def make_doc(vocab: Vocab, tokens: Sequence[str], spans: Sequence[Span], **metadata) -> Doc:
    """A Doc with the original tokens, single spaces and the given entities (others O)."""
    spaces = [True] * len(tokens)
    if spaces:
        spaces[-1] = False
    doc = Doc(vocab, words=list(tokens), spaces=spaces)
    doc.set_ents([SpacySpan(doc, s.start, s.end, label=s.label) for s in spans], default="outside")
    meta.set_meta(doc, **metadata)
    return doc


def convert_split(
    path: Path, split: str, vocab: Vocab, labels: LabelScheme | None = None
) -> tuple[list[Doc], dict]:
    """Gold Docs for one CoNLL-2003 file (IOB1) and their counts.

    path (Path): The CoNLL-2003 file.
    split (str): ``train``, ``dev`` or ``test`` (recorded in each Doc's metadata).
    vocab (Vocab): The vocab of the Docs.
    labels (Optional[LabelScheme]): The label scheme the tags must use (None: the default).
    RETURNS (Tuple[List[Doc], dict]): The Docs and their counts.
    """
    sentences = read_conll2003(path, labels)
    docs = []
    entity_counts: Counter = Counter()
    for sentence in sentences:
        spans = spans_from_iob1(sentence.tags)
        entity_counts.update(span.label for span in spans)
        doc = make_doc(
            vocab,
            sentence.tokens,
            spans,
            sent_id=sentence.sent_id,
            doc_id=sentence.doc_id,
            split=split,
            annotator=meta.GOLD_ANNOTATOR,
            source="gold",
            weight=1.0,
            chunk_tags=sentence.chunks,
        )
        for token, pos in zip(doc, sentence.pos):
            token.tag_ = pos
        docs.append(doc)
    stats = {
        "file": str(path),
        "sentences": len(docs),
        "documents": len({s.doc_id for s in sentences}),
        "tokens": sum(len(s.tokens) for s in sentences),
        "entities": sum(entity_counts.values()),
        "entities_per_type": dict(sorted(entity_counts.items())),
    }
    return docs, stats


def _first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"token {i}: {x!r} vs train {y!r}"
    return f"{len(a)} tokens vs train {len(b)}"


def align_to_train(
    recorded: RecordedSet, sentences: list[Sentence], train: list[Sentence], path: Path
) -> list[tuple[Sentence, Sentence]]:
    """Pair each recorded sentence with its train sentence, checking tokens.

    RETURNS (List[Tuple[Sentence, Sentence]]): (recorded sentence, train sentence) pairs.
    Raises ConllFormatError naming the recorded file and line on any mismatch.
    """
    train_path = "conll2003/train.txt"
    pairs = []
    if recorded.alignment in ("position", "position_digits"):
        if len(sentences) != len(train):
            last = sentences[-1].line if sentences else 1
            raise ConllFormatError(
                path,
                last,
                f"{len(sentences)} sentences, but train has {len(train)}",
                "a position-aligned set must hold every train sentence in order",
            )
        for sentence, gold in zip(sentences, train):
            gold_tokens = gold.tokens
            if recorded.alignment == "position_digits":
                gold_tokens = [normalise_digits(t) for t in gold.tokens]
            if sentence.tokens != gold_tokens:
                raise ConllFormatError(
                    path,
                    sentence.line,
                    f"sentence {sentence.sent_id} does not match train sentence {gold.sent_id} "
                    f"({train_path}:{gold.line}): "
                    + _first_difference(sentence.tokens, gold_tokens),
                )
            pairs.append((sentence, gold))
    elif recorded.alignment == "tokens":
        candidates: dict[tuple[str, ...], list[Sentence]] = {}
        for gold in train:
            candidates.setdefault(tuple(gold.tokens), []).append(gold)
        used: set[int] = set()
        for sentence in sentences:
            matches = [
                g for g in candidates.get(tuple(sentence.tokens), []) if g.sent_id not in used
            ]
            if not matches:
                raise ConllFormatError(
                    path,
                    sentence.line,
                    f"no train sentence has the tokens {' '.join(sentence.tokens)[:80]!r}"
                    + (
                        " (every identical one is already taken)"
                        if tuple(sentence.tokens) in candidates
                        else ""
                    ),
                    "the set must label unchanged train sentences",
                )
            used.add(matches[0].sent_id)
            pairs.append((sentence, matches[0]))
    elif recorded.alignment == "index":
        seen: set[int] = set()
        for sentence in sentences:
            idx = sentence.sent_id
            if not 0 <= idx < len(train):
                raise ConllFormatError(
                    path, sentence.line, f"train sentence index {idx} out of range"
                )
            if idx in seen:
                raise ConllFormatError(path, sentence.line, f"train sentence {idx} labelled twice")
            seen.add(idx)
            gold = train[idx]
            if sentence.tokens != gold.tokens:
                raise ConllFormatError(
                    path,
                    sentence.line,
                    f"tokens differ from train sentence {idx} ({train_path}:{gold.line}): "
                    f"{_first_difference(sentence.tokens, gold.tokens)}",
                )
            pairs.append((sentence, gold))
    else:
        raise ValueError(f"unknown alignment {recorded.alignment!r}")
    return pairs


def convert_recorded(
    recorded: RecordedSet,
    assets_dir: Path,
    train: list[Sentence],
    vocab: Vocab,
    labels: LabelScheme | None = None,
) -> tuple[list[Doc], dict]:
    """Cheap Docs for one recorded set: the LLM's entities over the original train tokens.

    recorded (RecordedSet): The set.
    assets_dir (Path): The assets folder.
    train (List[Sentence]): The gold train sentences the set is aligned to.
    vocab (Vocab): The vocab of the Docs.
    labels (Optional[LabelScheme]): The label scheme every entity must use (None: the
        default); an entity outside it is an error naming the file and line.
    RETURNS (Tuple[List[Doc], dict]): The Docs (in train order) and their counts.
    """
    scheme = as_scheme(labels)
    path = assets_dir / recorded.path
    sentences = recorded.read(assets_dir)
    pairs = align_to_train(recorded, sentences, train, path)
    repairs = RepairCounts()
    entity_counts: Counter = Counter()
    docs = []
    for sentence, gold in sorted(pairs, key=lambda pair: pair[1].sent_id):
        spans, counts = spans_from_iob2(sentence.tags)
        for span in spans:
            line = sentence.lines[span.start] if sentence.lines else sentence.line
            scheme.check(span.label, f"{path}:{line}")
        repairs += counts
        entity_counts.update(span.label for span in spans)
        docs.append(
            make_doc(
                vocab,
                gold.tokens,
                spans,
                sent_id=gold.sent_id,
                doc_id=gold.doc_id,
                split="train",
                annotator=recorded.name,
                source="cheap",
                weight=1.0,
            )
        )
    stats = {
        "file": str(path),
        "llm": recorded.llm,
        "alignment": recorded.alignment,
        "sentences": len(docs),
        "tokens": sum(len(d) for d in docs),
        "entities": sum(entity_counts.values()),
        "entities_per_type": dict(sorted(entity_counts.items())),
        "repaired_invalid_continuations": repairs.invalid_continuations,
        "dropped_garbage_tags": repairs.garbage_tags,
    }
    return docs, stats


def preprocess(
    assets_dir: Path,
    output_dir: Path,
    recorded_names: Sequence[str],
    skip_missing: bool = True,
    labels: LabelScheme | str | Path | None = None,
) -> dict:
    """Convert all splits and recorded sets; write DocBins and a report only if all succeed.

    assets_dir (Path): The folder with ``conll2003/`` and ``llm_annotations/``.
    output_dir (Path): Where the DocBins and ``preprocess_report.json`` go.
    recorded_names (Sequence[str]): The recorded sets to convert.
    skip_missing (bool): Skip (and report) a recorded set whose file is missing.
    labels (Union[LabelScheme, Path, None]): The label scheme (or its file) every tag must use
        (None: the default scheme).
    RETURNS (dict): The report.
    """
    scheme = as_scheme(labels)
    vocab = spacy.blank("en").vocab
    outputs: dict[Path, list[Doc]] = {}
    report: dict = {"splits": {}, "cheap": {}, "skipped": {}}
    for split, relative in SPLITS.items():
        path = assets_dir / relative
        if not path.exists():
            raise MissingInputError(
                f"{path} does not exist: run `python -m spacy project run assets`"
            )
        msg.text(f"Converting {path}")
        docs, stats = convert_split(path, split, vocab, scheme)
        outputs[output_dir / f"{split}.spacy"] = docs
        report["splits"][split] = stats
    train = read_conll2003(assets_dir / SPLITS["train"], scheme)
    for name in recorded_names:
        if name not in RECORDED_SETS:
            raise UnknownRecordedSetError(
                f"unknown recorded set {name!r}; known: {', '.join(RECORDED_SETS)}"
            )
        recorded = RECORDED_SETS[name]
        if skip_missing and not (assets_dir / recorded.path).exists():
            report["skipped"][name] = f"{assets_dir / recorded.path} is missing"
            msg.warn(f"Skipping recorded set {name}: {assets_dir / recorded.path} is missing")
            continue
        msg.text(f"Aligning recorded set {name} ({recorded.path})")
        docs, stats = convert_recorded(recorded, assets_dir, train, vocab, scheme)
        outputs[output_dir / "cheap" / f"{name}.spacy"] = docs
        report["cheap"][name] = stats
    for path, docs in outputs.items():
        write_docbin(path, docs)
    atomic_write_json(output_dir / "preprocess_report.json", report)
    return report
