"""Readers for CoNLL-2003 and the recorded LLM annotation files, and BIO tag handling.

Every reader is strict: a malformed line, a wrong column count or a tag outside the label scheme
(``labels``: a :class:`~nerloop.labels.LabelScheme`, a scheme file, a list of labels or None for
the default scheme) raises :class:`ConllFormatError`, which names the file, the 1-based line
number, the reason and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seqeval.metrics.sequence_labeling import get_entities

from nerloop.errors import NerloopError
from nerloop.labels import LabelScheme, as_scheme

DOCSTART = "-DOCSTART-"
# Tags that LLM annotators emit as garbage (BERT special tokens): dropped (mapped to O) and counted.
GARBAGE_TAGS = frozenset({"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"})


class ConllFormatError(NerloopError, ValueError):
    """A line of an input file that cannot be read; the message names ``file:line``."""

    def __init__(self, path: Path | str, line: int, reason: str, fix: str = "") -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        self.fix = fix
        message = f"{self.path}:{line}: {reason}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


@dataclass
class Sentence:
    """One sentence of a column file, with where it came from."""

    tokens: list[str]
    tags: list[str]
    line: int  # 1-based line number of the sentence's first token
    lines: list[int] = field(default_factory=list)  # line number of every token
    pos: list[str] = field(default_factory=list)
    chunks: list[str] = field(default_factory=list)
    sent_id: int = -1
    doc_id: int = -1


@dataclass(frozen=True)
class Span:
    start: int
    end: int  # exclusive
    label: str


@dataclass
class RepairCounts:
    """What was repaired while turning a tag sequence into spans."""

    invalid_continuations: int = 0  # I-X after O or after another type, repaired to a start
    garbage_tags: int = 0  # [CLS]-like tags dropped

    def __iadd__(self, other: RepairCounts) -> RepairCounts:
        self.invalid_continuations += other.invalid_continuations
        self.garbage_tags += other.garbage_tags
        return self


Labels = LabelScheme | str | Path | Sequence[str] | None


def _check_tag(
    tag: str, path: Path | str, line: int, allow_garbage: bool, scheme: LabelScheme
) -> None:
    if tag == "O" or (allow_garbage and tag in GARBAGE_TAGS):
        return
    prefix, _, label = tag.partition("-")
    if prefix in ("B", "I") and label in scheme:
        return
    allowed = "O, B-X, I-X with X in " + "/".join(scheme.labels)
    source = f" (label scheme {scheme.path})" if scheme.path else ""
    raise ConllFormatError(
        path, line, f"unknown NER tag {tag!r}", f"allowed tags: {allowed}{source}"
    )


def read_conll2003(path: Path | str, labels: Labels = None) -> list[Sentence]:
    """Read a CoNLL-2003 file: ``token POS chunk NER`` per line, blank line between sentences.

    ``-DOCSTART-`` lines start a new document and are not sentences. ``sent_id`` counts
    sentences from 0 and ``doc_id`` counts documents from 0 (sentences before the first
    ``-DOCSTART-`` belong to document 0).

    path (Path): The file.
    labels (Union[LabelScheme, Path, Sequence[str], None]): The label scheme the NER tags must
        use (None: the default scheme).
    RETURNS (List[Sentence]): The sentences in file order.
    """
    path = Path(path)
    scheme = as_scheme(labels)
    sentences: list[Sentence] = []
    doc_id = -1
    current: Sentence | None = None

    def close() -> None:
        nonlocal current
        if current is not None:
            current.sent_id = len(sentences)
            current.doc_id = max(doc_id, 0)
            sentences.append(current)
            current = None

    with path.open(encoding="utf8") as file_:
        for line_no, raw in enumerate(file_, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                close()
                continue
            columns = line.split(" ")
            if len(columns) != 4 or any(not c for c in columns):
                raise ConllFormatError(
                    path,
                    line_no,
                    f"expected 4 space-separated columns (token POS chunk NER), got {line!r}",
                    "each token line must read e.g. 'EU NNP I-NP I-ORG'",
                )
            token, pos, chunk, ner = columns
            if token == DOCSTART:
                if current is not None:
                    raise ConllFormatError(
                        path, line_no, f"{DOCSTART} inside a sentence", "put a blank line before it"
                    )
                doc_id += 1
                continue
            _check_tag(ner, path, line_no, allow_garbage=False, scheme=scheme)
            if current is None:
                current = Sentence(tokens=[], tags=[], line=line_no)
            current.tokens.append(token)
            current.pos.append(pos)
            current.chunks.append(chunk)
            current.tags.append(ner)
            current.lines.append(line_no)
    close()
    return sentences


def read_tagged_columns(
    path: Path | str,
    *,
    n_columns: int,
    tag_column: int,
    separator: str | None = "\t",
    labels: Labels = None,
) -> list[Sentence]:
    """Read a ``token<sep>tag[<sep>...]`` file with blank lines between sentences.

    path (Path): the file.
    n_columns (int): the exact number of columns every token line must have.
    tag_column (int): 0-based column holding the tag to read.
    separator (str or None): the column separator (None: any whitespace).
    labels (Union[LabelScheme, Path, Sequence[str], None]): the label scheme the tags must use
        (None: the default scheme).
    RETURNS (List[Sentence]): sentences numbered from 0 in file order; ``[CLS]``-like tags are
        kept verbatim (``spans_from_iob2`` drops and counts them).
    """
    path = Path(path)
    scheme = as_scheme(labels)
    sentences: list[Sentence] = []
    current: Sentence | None = None
    with path.open(encoding="utf8") as file_:
        for line_no, raw in enumerate(file_, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                if current is not None:
                    current.sent_id = len(sentences)
                    sentences.append(current)
                    current = None
                continue
            columns = line.split(separator)
            if len(columns) != n_columns or any(not c for c in columns):
                sep_name = "tab" if separator == "\t" else repr(separator or "whitespace")
                raise ConllFormatError(
                    path,
                    line_no,
                    f"expected {n_columns} {sep_name}-separated columns, got {line!r}",
                )
            tag = columns[tag_column]
            _check_tag(tag, path, line_no, allow_garbage=True, scheme=scheme)
            if current is None:
                current = Sentence(tokens=[], tags=[], line=line_no)
            current.tokens.append(columns[0])
            current.tags.append(tag)
            current.lines.append(line_no)
    if current is not None:
        current.sent_id = len(sentences)
        sentences.append(current)
    return sentences


def read_aligned_jsonl(path: Path | str, labels: Labels = None) -> list[Sentence]:
    """Read a derived ``*.conll03_train_aligned.jsonl`` file (one sentence per line).

    Each object has ``conll03_train_sent_idx``, ``tokens`` and ``llm_tags``; ``sent_id`` is
    the train sentence index it is aligned to. The tags must use the label scheme ``labels``
    (None: the default scheme).
    """
    path = Path(path)
    scheme = as_scheme(labels)
    sentences = []
    with path.open(encoding="utf8") as file_:
        for line_no, raw in enumerate(file_, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
                tokens, tags = row["tokens"], row["llm_tags"]
                sent_idx = int(row["conll03_train_sent_idx"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise ConllFormatError(
                    path,
                    line_no,
                    f"not a valid aligned-sentence object ({err})",
                    "expected {'conll03_train_sent_idx': int, 'tokens': [...], 'llm_tags': [...]}",
                ) from None
            if len(tokens) != len(tags):
                raise ConllFormatError(path, line_no, f"{len(tokens)} tokens but {len(tags)} tags")
            for tag in tags:
                _check_tag(tag, path, line_no, allow_garbage=True, scheme=scheme)
            sentences.append(
                Sentence(tokens=list(tokens), tags=list(tags), line=line_no, sent_id=sent_idx)
            )
    return sentences


def spans_from_iob1(tags: Sequence[str]) -> list[Span]:
    """Entity spans from IOB1 tags (CoNLL-2003): ``I-X`` continues an ``X`` entity or starts
    one; ``B-X`` starts a new ``X`` entity right after another ``X`` entity.

    That is exactly how ``spans_from_iob2`` reads (and repairs) IOB2, so it decodes both; the
    "repairs" it counts are ordinary IOB1 entity starts.
    """
    return spans_from_iob2(tags)[0]


def spans_from_iob2(tags: Sequence[str]) -> tuple[list[Span], RepairCounts]:
    """Entity spans from IOB2 tags, repairing what LLMs get wrong.

    The spans are seqeval's reading (``get_entities``, the reader behind every score): ``I-X``
    after ``O`` or after another type starts an entity. ``[CLS]``-like garbage tags are read as
    ``O``. This wrapper only adds the counts, which seqeval does not report: every garbage tag,
    and every entity that starts with ``I-`` (an ``I-`` that continues nothing).

    tags (Sequence[str]): IOB1 or IOB2 tags, one per token, possibly with garbage tags.
    RETURNS (Tuple[List[Span], RepairCounts]): the spans in order and what was repaired.
    """
    counts = RepairCounts()
    clean = []
    for tag in tags:
        if tag in GARBAGE_TAGS:
            counts.garbage_tags += 1
            tag = "O"
        clean.append(tag)
    spans = []
    for label, start, last in get_entities(clean):
        if clean[start].startswith("I-"):
            counts.invalid_continuations += 1
        spans.append(Span(start, last + 1, label))
    return spans, counts


def spans_to_iob2(spans: Sequence[Span], n_tokens: int) -> list[str]:
    """IOB2 tags of non-overlapping token spans.

    spaCy's encoders (``offsets_to_biluo_tags``) need a Doc and character offsets; these are
    token offsets of a sentence that has no Doc yet, so the few lines are kept here.

    spans (Sequence[Span]): entity spans (``end`` exclusive).
    n_tokens (int): the sentence length.
    RETURNS (List[str]): one tag per token.
    """
    tags = ["O"] * n_tokens
    for span in spans:
        tags[span.start] = f"B-{span.label}"
        for i in range(span.start + 1, span.end):
            tags[i] = f"I-{span.label}"
    return tags


_DIGIT = re.compile(r"\d")


def normalise_digits(token: str) -> str:
    """Replace every digit by ``0`` (how the UniNER set was written)."""
    return _DIGIT.sub("0", token)
