"""Read a user's own corpus (text, JSONL, CoNLL columns, Label Studio, DocBins) into sentence Docs.

``ingest`` writes one DocBin of the same shape as ``preprocess`` writes for CoNLL-2003: one
``Doc`` per sentence, ``doc.user_data`` set by ``nerloop.corpus.meta.set_meta`` (``sent_id``
0..n-1 in input order, ``doc_id``, ``split``, ``annotator``, ``source``, ``weight``), saved with
``store_user_data=True``. Several inputs are concatenated in order; sentence and document ids
continue from one file to the next.

Formats (``format="auto"`` picks one from the extension where that is unambiguous; ``.txt`` is
both plain text and CoNLL-2003's extension, so it needs an explicit format):

- ``text``: one document per file (``text_mode="doc-per-file"``, a folder reads its files in name
  order) or one per line (``"doc-per-line"``; blank lines are counted as skipped). Unlabelled
  (annotator ``"none"``).
- ``jsonl``: ``{"text", "spans": [{"start", "end", "label"}]}`` as spaCy and Prodigy write it
  (character offsets; Prodigy's ``tokens`` with ``ws`` are used as the tokenisation when present,
  lines answered ``reject``/``ignore`` are skipped and counted), or
  ``{"tokens": [...], "ner_tags": [...]}`` with string tags or int ids (``tag_names``). A line
  with ``tokens`` is one sentence; a line with only ``text`` is split like plain text.
- ``conll``: token first, tag last, tab- or space-separated columns, a blank line between
  sentences, ``-DOCSTART-`` lines start a document. Tags in IOB1, IOB2 or BILUO (``tag_scheme``).
- ``labelstudio``: a Label Studio JSON export; each task's latest non-cancelled annotation.
- ``spacy``: DocBins; Docs that have sentence boundaries are split by them, a Doc with a
  ``sent_id`` is one sentence already, any other Doc is split by the sentencizer.

Tag schemes (``tag_scheme="auto"`` decides per file): BILUO when any ``L-``/``U-`` tag occurs;
otherwise IOB1 when more entities start with ``I-`` than with ``B-`` (CoNLL-2003 has 23,427 ``I-``
starts and 2 ``B-`` starts after ``O`` in train), else IOB2. IOB1 and IOB2 decode the same way
(spaCy's ``iob_to_biluo``: an ``I-X`` that continues nothing starts an entity). In IOB2 such an
``I-X`` is an error of the annotator: it is repaired that way and counted
(``IngestSummary.repaired_i_starts``, with a warning), or refused with ``strict=True``. An
invalid BILUO sequence is always an error.

Bad input raises ``IngestError`` (or ``UnknownLabelError`` for a label outside the scheme)
naming the file and line (or task id, or Doc index) and the fix, and nothing is written: every
input is read and checked in memory before the output is written atomically. A UTF-8 byte-order
mark at the start of a file is dropped; other non-UTF-8 bytes are an error naming the byte
offset. Nothing is dropped silently: blank lines, whitespace-only sentences, skipped answers and
empty documents are counted in ``IngestSummary.skipped``.
"""

from __future__ import annotations

import codecs
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import biluo_tags_to_spans, iob_to_biluo
from wasabi import msg

from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.io_utils import write_docbin
from nerloop.labels import OUTSIDE, LabelScheme, as_scheme

FORMATS = ("auto", "text", "jsonl", "conll", "labelstudio", "spacy")
TEXT_MODES = ("doc-per-file", "doc-per-line")
TAG_SCHEMES = ("auto", "iob1", "iob2", "biluo")
EXTENSIONS = {
    ".jsonl": "jsonl",
    ".json": "labelstudio",
    ".conll": "conll",
    ".iob": "conll",
    ".bio": "conll",
    ".tsv": "conll",
    ".spacy": "spacy",
}
DEFAULT_SENTENCIZER = "sentencizer"
DOCSTART = "-DOCSTART-"
UNLABELLED = "none"  # the annotator (and source) of sentences without labels
GOLD_SOURCE = "gold"
PREFIXES = {"iob1": "BI", "iob2": "BI", "biluo": "BILU"}
PRODIGY_SKIPPED_ANSWERS = ("reject", "ignore")


class IngestError(NerloopError, ValueError):
    """An input that cannot be ingested; the message names the file and line (or task) and the
    fix."""

    def __init__(self, where: str, reason: str, fix: str = "") -> None:
        self.where = where
        self.reason = reason
        self.fix = fix
        super().__init__(f"{where}: {reason}" + (f". {fix}" if fix else ""))


@dataclass
class IngestSummary:
    """What ``ingest`` wrote.

    output (Path): The DocBin written.
    files (int): Input files read.
    documents (int): Documents (distinct ``doc_id`` values).
    sentences (int): Sentence Docs written.
    tokens (int): Tokens over all sentences.
    entities (Counter): Entities per label.
    labelled_sentences (int): Sentences with labels (annotator not ``"none"``).
    formats (Dict[str, str]): The format of each input file (``conll/iob1`` etc.).
    repaired_i_starts (int): IOB2 ``I-X`` tags that continued nothing, read as entity starts.
    skipped (Counter): What was read but is not a sentence, by reason.
    """

    output: Path
    files: int = 0
    documents: int = 0
    sentences: int = 0
    tokens: int = 0
    entities: Counter = field(default_factory=Counter)
    labelled_sentences: int = 0
    formats: dict[str, str] = field(default_factory=dict)
    repaired_i_starts: int = 0
    skipped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values."""
        return {
            "output": str(self.output),
            "files": self.files,
            "documents": self.documents,
            "sentences": self.sentences,
            "tokens": self.tokens,
            "entities": sum(self.entities.values()),
            "entities_per_label": dict(sorted(self.entities.items())),
            "labelled_sentences": self.labelled_sentences,
            "formats": dict(self.formats),
            "repaired_i_starts": self.repaired_i_starts,
            "skipped": dict(sorted(self.skipped.items())),
        }


@dataclass
class _Record:
    """A tokenised document (or sentence) read from an input, before it is split.

    doc: the tokens, with ``doc.ents`` set when labelled (per-token ``O``/missing kept).
    where: ``file:line``, ``file task N`` or ``file doc N``, for errors.
    new_document: whether it starts a new document (else it continues the previous one).
    one_sentence: the tokens are one sentence already (CoNLL, token JSONL, ingested Docs).
    annotator: ``"gold"``, ``"none"`` or the annotator a DocBin recorded.
    source: the ``source`` a DocBin recorded (None: ``"gold"`` when labelled, else ``"none"``).
    """

    doc: Doc
    where: str
    new_document: bool = True
    one_sentence: bool = False
    annotator: str = meta.GOLD_ANNOTATOR
    source: str | None = None


@dataclass
class _Options:
    scheme: LabelScheme
    nlp: Language
    text_mode: str
    tag_scheme: str
    tag_names: list[str] | None
    strict: bool
    keep_unannotated: bool
    summary: IngestSummary


# ---------------------------------------------------------------------------------------------
# files


def read_utf8(path: Path) -> str:
    """A file's text; a UTF-8 byte-order mark at its start is dropped.

    path (Path): The file.
    RETURNS (str): Its text without the byte-order mark.
    """
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
        offset = len(codecs.BOM_UTF8)
    else:
        offset = 0
    try:
        return data.decode("utf8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        line_start = data.rfind(b"\n", 0, err.start) + 1
        utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        hint = " (it starts with a UTF-16 byte-order mark)" if utf16 else ""
        raise IngestError(
            f"{path}:{line}",
            f"byte 0x{data[err.start]:02x} at byte offset {err.start + offset} of the file "
            f"(byte {err.start - line_start + 1} of the line) is not UTF-8{hint}",
            "Save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`",
        ) from None


def input_files(inputs: Sequence[Path | str]) -> list[Path]:
    """The files of the inputs: files as given, folders expanded to their files in name order
    (hidden files left out).

    inputs (Sequence[Union[Path, str]]): Files or folders.
    RETURNS (List[Path]): The files, in order.
    """
    files: list[Path] = []
    for value in inputs:
        path = Path(value)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not inside:
                raise IngestError(str(path), "the folder holds no files", "Give a folder of inputs")
            files.extend(inside)
        elif path.is_file():
            files.append(path)
        else:
            raise IngestError(str(path), "no such file or folder", "Check the input path")
    if not files:
        raise IngestError("ingest", "no input files given", "Name at least one input")
    return files


def detect_format(path: Path) -> str:
    """The format of a file from its extension; an error where the extension is ambiguous.

    path (Path): The file.
    RETURNS (str): One of ``FORMATS`` other than ``"auto"``.
    """
    suffix = path.suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    if suffix == ".txt":
        reason = "a .txt file may be plain text or CoNLL columns"
    else:
        reason = f"the extension {suffix or '(none)'!r} does not tell the format"
    raise IngestError(str(path), reason, f"Give the format: --format {'|'.join(FORMATS[1:])}")


def _check_nonempty(path: Path, text: str, what: str) -> None:
    if not text.strip():
        raise IngestError(f"{path}:1", f"the file is empty (no {what})", "Give a file with data")


def _lines(text: str) -> list[str]:
    """The lines of a text (LF or CRLF endings); a final newline ends the last line."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and not lines[-1]:
        lines.pop()
    return lines


# ---------------------------------------------------------------------------------------------
# tags


def _tag_parts(tag: str, prefixes: str, scheme: LabelScheme, where: str, name: str) -> tuple:
    """(prefix, label) of a tag, checked against the allowed prefixes and the label scheme."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, dash, label = tag.partition("-")
    if not dash or len(prefix) != 1 or prefix not in "BILU" or not label:
        raise IngestError(
            where,
            f"{tag!r} is not a valid tag",
            f"Use O or {'/'.join(p + '-' for p in prefixes)} followed by a label ({name})",
        )
    if prefix not in prefixes:
        raise IngestError(
            where,
            f"tag {tag!r} is not {name.upper()}",
            "Use --tag-scheme biluo (or auto) for L-/U- tags",
        )
    scheme.check(label, where)
    return prefix, label


def detect_tag_scheme(sequences: Sequence[Sequence[str]]) -> str:
    """Whether tag sequences are IOB1, IOB2 or BILUO (see the module docstring).

    sequences (Sequence[Sequence[str]]): Tags of each sentence (valid tag shapes).
    RETURNS (str): ``"iob1"``, ``"iob2"`` or ``"biluo"``.
    """
    i_starts = b_starts = 0
    for tags in sequences:
        previous = OUTSIDE
        for tag in tags:
            if tag[:2] in ("L-", "U-"):
                return "biluo"
            if tag != OUTSIDE and (previous == OUTSIDE or previous[2:] != tag[2:]):
                if tag.startswith("I-"):
                    i_starts += 1
                elif tag.startswith("B-"):
                    b_starts += 1
            previous = tag
    return "iob1" if i_starts > b_starts else "iob2"


def _check_biluo(tags: Sequence[str], wheres: Sequence[str]) -> None:
    # spaCy's decoder (biluo_tags_to_spans) drops a B-X that never ends and gives B-X I-Y L-Y
    # one label without complaint, so a BILUO sequence is checked here before it is decoded.
    open_label = None
    for tag, where in zip(tags, wheres):
        prefix, label = (tag[0], tag[2:]) if tag != OUTSIDE else (OUTSIDE, "")
        if open_label is not None and (prefix not in "IL" or label != open_label):
            raise IngestError(
                where,
                f"BILUO tag {tag!r} follows an unfinished {open_label} entity",
                f"End the entity with L-{open_label} (or U- for one token)",
            )
        if open_label is None and prefix in ("I", "L"):
            raise IngestError(
                where,
                f"BILUO tag {tag!r} continues no entity",
                "Start the entity with B- (or use U- for one token)",
            )
        open_label = label if prefix in ("B", "I") else None
    if open_label is not None:
        raise IngestError(
            wheres[-1],
            f"the sentence ends inside a {open_label} entity",
            f"End the entity with L-{open_label}",
        )


def set_tag_ents(
    doc: Doc,
    tags: Sequence[str],
    wheres: Sequence[str],
    tag_scheme: str,
    scheme: LabelScheme,
    strict: bool = False,
) -> int:
    """Set ``doc.ents`` (all other tokens ``O``) from one sentence's tags.

    doc (Doc): The sentence, one token per tag.
    tags (Sequence[str]): The tags.
    wheres (Sequence[str]): Where each tag was read (``file:line``), for errors.
    tag_scheme (str): ``"iob1"``, ``"iob2"`` or ``"biluo"``.
    scheme (LabelScheme): The labels allowed.
    strict (bool): Refuse an IOB2 ``I-X`` that continues nothing instead of repairing it.
    RETURNS (int): The IOB2 ``I-`` starts repaired.
    """
    prefixes = PREFIXES[tag_scheme]
    for tag, where in zip(tags, wheres):
        _tag_parts(tag, prefixes, scheme, where, tag_scheme)
    repaired = 0
    if tag_scheme == "biluo":
        biluo = list(tags)
        _check_biluo(biluo, wheres)
    else:
        if tag_scheme == "iob2":
            previous = OUTSIDE
            for tag, where in zip(tags, wheres):
                if tag.startswith("I-") and (previous == OUTSIDE or previous[2:] != tag[2:]):
                    if strict:
                        raise IngestError(
                            where,
                            f"IOB2 tag {tag!r} follows {previous!r}: an I- without a B-",
                            f"Tag the entity's first token B-{tag[2:]}, or drop --strict to "
                            "read it as an entity start",
                        )
                    repaired += 1
                previous = tag
        biluo = iob_to_biluo(tags)
    doc.set_ents(biluo_tags_to_spans(doc, biluo), default="outside")
    return repaired


def _sentence_doc(vocab, tokens: Sequence[str], spaces: Sequence[bool] | None = None) -> Doc:
    """A Doc of given tokens; single spaces between them unless ``spaces`` says otherwise."""
    if spaces is None:
        spaces = [True] * len(tokens)
        if spaces:
            spaces[-1] = False
    return Doc(vocab, words=list(tokens), spaces=list(spaces))


# ---------------------------------------------------------------------------------------------
# readers: each yields _Records for one file


def _read_text(path: Path, opts: _Options) -> Iterator[_Record]:
    """Plain text: one document per file or per line; unlabelled."""
    text = read_utf8(path)
    _check_nonempty(path, text, "text")
    if opts.text_mode == "doc-per-file":
        yield _Record(opts.nlp.make_doc(text), str(path), annotator=UNLABELLED)
        return
    for line_no, line in enumerate(_lines(text), start=1):
        if not line.strip():
            opts.summary.skipped["blank lines"] += 1
            continue
        yield _Record(opts.nlp.make_doc(line), f"{path}:{line_no}", annotator=UNLABELLED)


def _char_span_ents(
    doc: Doc, spans: Any, where: str, scheme: LabelScheme, trim: bool = False
) -> list:
    """Entity Spans from ``{"start", "end", "label"}`` character offsets, strictly aligned."""
    if not isinstance(spans, list):
        raise IngestError(where, "'spans' is not a list", 'Write "spans": [{"start", "end", ...}]')
    ents = []
    for position, span in enumerate(spans):
        span_where = f"{where} span #{position}"
        if not isinstance(span, dict):
            raise IngestError(span_where, "a span is not an object", "Write {start, end, label}")
        start, end, label = span.get("start"), span.get("end"), span.get("label")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
            raise IngestError(span_where, f"start/end {start!r}/{end!r} are not integers")
        if not isinstance(label, str):
            raise IngestError(span_where, f"label {label!r} is not a string")
        scheme.check(label, span_where)
        if not 0 <= start < end <= len(doc.text):
            raise IngestError(
                span_where,
                f"offsets {start}-{end} are outside the text (0-{len(doc.text)}) or empty",
                "Give character offsets into the text, end exclusive",
            )
        if trim:  # Label Studio selections often take a space along
            while start < end and doc.text[start].isspace():
                start += 1
            while end > start and doc.text[end - 1].isspace():
                end -= 1
        ent = doc.char_span(start, end, label=label, alignment_mode="strict")
        if ent is None:
            near = doc.char_span(start, end, alignment_mode="expand")
            tokens = " | ".join(t.text for t in near) if near is not None else ""
            raise IngestError(
                span_where,
                f"the {label} span {start}-{end} {doc.text[start:end]!r} does not start and end "
                f"on token boundaries (the tokens there: {tokens!r})",
                "Fix the offsets, or pass the tokenisation (Prodigy 'tokens') or the --lang "
                "whose tokenizer made them",
            )
        ents.append(ent)
    ents.sort(key=lambda e: (e.start, e.end))
    for first, second in zip(ents, ents[1:]):
        if second.start < first.end:
            raise IngestError(
                where,
                f"spans {first.text!r} ({first.label_}) and {second.text!r} ({second.label_}) "
                "overlap",
                "Keep one of them: a token belongs to at most one entity",
            )
    doc.set_ents(ents, default="outside")
    return ents


def _tag_names(value: Sequence[str] | Path | None) -> list[str] | None:
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, (str, Path)):
        path = Path(value)
        text = read_utf8(path).strip()
        _check_nonempty(path, text, "tag names")
        if text.startswith("["):
            try:
                names = json.loads(text)
            except json.JSONDecodeError as err:
                raise IngestError(f"{path}:{err.lineno}", f"not valid JSON ({err.msg})") from None
        else:
            names = [line.strip() for line in text.split("\n") if line.strip()]
        if not all(isinstance(n, str) for n in names):
            raise IngestError(str(path), "tag names must be strings")
        return names
    return list(value)


def _read_jsonl(path: Path, opts: _Options) -> Iterator[_Record]:
    """spaCy/Prodigy ``{"text", "spans"}`` lines and ``{"tokens", "ner_tags"}`` lines."""
    text = read_utf8(path)
    _check_nonempty(path, text, "JSON lines")
    rows: list[tuple[str, dict]] = []
    for line_no, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise IngestError(
                where,
                f"not valid JSON ({err.msg} at column {err.colno})",
                "Write one object a line",
            ) from None
        if not isinstance(row, dict):
            raise IngestError(where, "a line is not a JSON object", "Write one object a line")
        if row.get("answer") in PRODIGY_SKIPPED_ANSWERS:
            opts.summary.skipped[f"prodigy answer {row['answer']}"] += 1
            continue
        rows.append((where, row))
    tag_rows = [(w, r) for w, r in rows if isinstance(r.get("ner_tags"), list)]
    tags_by_where = {w: _string_tags(w, r, opts) for w, r in tag_rows}
    tag_scheme = opts.tag_scheme
    if tag_rows:
        if tag_scheme == "auto":
            for where, tags in tags_by_where.items():
                for tag in tags:
                    _tag_parts(tag, "BILU", opts.scheme, where, "iob2 or biluo")
            tag_scheme = detect_tag_scheme(list(tags_by_where.values()))
        opts.summary.formats[str(path)] = f"jsonl/{tag_scheme}"
    for where, row in rows:
        tokens = row.get("tokens")
        if tokens == []:
            raise IngestError(where, "'tokens' is empty", "Remove the line")
        if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
            doc = _sentence_doc(opts.nlp.vocab, tokens, _spaces(row, where, len(tokens)))
            tags = tags_by_where.get(where)
            if tags is not None:
                if len(tags) != len(tokens):
                    raise IngestError(where, f"{len(tokens)} tokens but {len(tags)} ner_tags")
                wheres = [f"{where} token {i}" for i in range(len(tags))]
                opts.summary.repaired_i_starts += set_tag_ents(
                    doc, tags, wheres, tag_scheme, opts.scheme, opts.strict
                )
            elif "spans" in row:
                raise IngestError(
                    where,
                    "string tokens with character 'spans'",
                    "Give 'ner_tags' with the tokens, or 'text' with the spans",
                )
            labelled = tags is not None
            yield _Record(doc, where, one_sentence=True, annotator=_annotator(labelled))
            continue
        raw = row.get("text")
        if not isinstance(raw, str):
            raise IngestError(
                where,
                "a line has neither 'text' nor a list of 'tokens'",
                'Write {"text": ..., "spans": [...]} or {"tokens": [...], "ner_tags": [...]}',
            )
        if not raw.strip():
            raise IngestError(where, "the text is empty", "Remove the line")
        doc = _prodigy_doc(row, raw, where, opts) if tokens else opts.nlp.make_doc(raw)
        labelled = "spans" in row
        if labelled:
            _char_span_ents(doc, row["spans"], where, opts.scheme)
        yield _Record(doc, where, annotator=_annotator(labelled))


def _annotator(labelled: bool) -> str:
    return meta.GOLD_ANNOTATOR if labelled else UNLABELLED


def _spaces(row: dict, where: str, n_tokens: int) -> list[bool] | None:
    spaces = row.get("spaces", row.get("ws"))
    if spaces is None:
        return None
    if not isinstance(spaces, list) or len(spaces) != n_tokens:
        raise IngestError(where, f"'spaces' must be a list of {n_tokens} booleans")
    return [bool(s) for s in spaces]


def _prodigy_doc(row: dict, text: str, where: str, opts: _Options) -> Doc:
    """The Doc of Prodigy's ``tokens`` (``text`` and ``ws`` per token), which the offsets
    were made against."""
    tokens = row["tokens"]
    try:
        words = [str(t["text"]) for t in tokens]
        spaces = [bool(t.get("ws", False)) for t in tokens]
    except (TypeError, KeyError, AttributeError):
        raise IngestError(
            where, "'tokens' is neither a list of strings nor Prodigy's {text, ws} objects"
        ) from None
    doc = Doc(opts.nlp.vocab, words=words, spaces=spaces)
    if doc.text != text:
        raise IngestError(
            where,
            "the Prodigy tokens (text + ws) do not spell the line's 'text'",
            "Drop 'tokens' to tokenise the text with --lang, or fix them",
        )
    return doc


def _string_tags(where: str, row: dict, opts: _Options) -> list[str]:
    tags = row["ner_tags"]
    if all(isinstance(t, str) for t in tags):
        return list(tags)
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in tags):
        raise IngestError(where, "ner_tags must be all strings or all integer ids")
    names = opts.tag_names
    if names is None:
        raise IngestError(
            where,
            "ner_tags are integer ids but no tag names were given",
            "Pass --tag-names O,B-X,I-X,... (or a file with one tag a line) in id order",
        )
    for tag in tags:
        if not 0 <= tag < len(names):
            raise IngestError(where, f"tag id {tag} has no name ({len(names)} tag names given)")
    return [names[t] for t in tags]


def _read_conll(path: Path, opts: _Options) -> Iterator[_Record]:
    """CoNLL-style columns: token first, tag last; blank lines end sentences."""
    text = read_utf8(path)
    _check_nonempty(path, text, "token lines")
    sentences: list[tuple[list[str], list[str], list[str], bool]] = []
    tokens: list[str] = []
    tags: list[str] = []
    wheres: list[str] = []
    separator: str | None = None
    n_columns = 0
    new_document = True  # the file's first sentence starts a document
    empty_document = False  # a -DOCSTART- seen with no sentence after it yet

    def close() -> None:
        nonlocal tokens, tags, wheres, new_document, empty_document
        if tokens:
            sentences.append((tokens, tags, wheres, new_document))
            new_document = empty_document = False
            tokens, tags, wheres = [], [], []

    for line_no, line in enumerate(_lines(text), start=1):
        if not line.strip():
            close()
            continue
        where = f"{path}:{line_no}"
        if separator is None:
            separator = "\t" if "\t" in line else " "
        columns = line.split("\t") if separator == "\t" else line.split()
        if columns[0] == DOCSTART:
            if tokens:
                raise IngestError(
                    where, f"{DOCSTART} inside a sentence", "Put a blank line before it"
                )
            if empty_document:
                opts.summary.skipped["empty documents"] += 1
            new_document = empty_document = True
            continue
        if not n_columns:
            n_columns = len(columns)
        sep_name = "tab" if separator == "\t" else "space"
        if n_columns < 2 or len(columns) != n_columns:
            raise IngestError(
                where,
                f"{len(columns)} {sep_name}-separated columns where the file's first token line "
                f"has {n_columns}: {line!r}",
                "Give every token line the token first and the tag last, in the same columns",
            )
        if not columns[0] or not columns[-1]:
            raise IngestError(where, f"an empty token or tag in {line!r}")
        tokens.append(columns[0])
        tags.append(columns[-1])
        wheres.append(where)
    close()
    if empty_document:
        opts.summary.skipped["empty documents"] += 1
    if not sentences:
        raise IngestError(
            f"{path}:1",
            "the file has no token lines (empty or header-only)",
            "Give token lines with the tag in the last column",
        )
    tag_scheme = opts.tag_scheme
    prefixes = PREFIXES.get(tag_scheme, "BILU")
    name = tag_scheme if tag_scheme != "auto" else "IOB1, IOB2 or BILUO"
    first_line = sentences[0][2][0]
    for _, sent_tags, sent_wheres, _ in sentences:
        for tag, where in zip(sent_tags, sent_wheres):
            try:
                _tag_parts(tag, prefixes, opts.scheme, where, name)
            except IngestError as err:
                if where != first_line or not err.reason.endswith("is not a valid tag"):
                    raise
                raise IngestError(
                    where, err.reason + " (is the first line a header row?)", err.fix
                ) from None
    if tag_scheme == "auto":
        tag_scheme = detect_tag_scheme([s[1] for s in sentences])
    opts.summary.formats[str(path)] = f"conll/{tag_scheme}"
    for sent_tokens, sent_tags, sent_wheres, starts_document in sentences:
        doc = _sentence_doc(opts.nlp.vocab, sent_tokens)
        opts.summary.repaired_i_starts += set_tag_ents(
            doc, sent_tags, sent_wheres, tag_scheme, opts.scheme, opts.strict
        )
        yield _Record(doc, sent_wheres[0], new_document=starts_document, one_sentence=True)


def _latest_annotation(annotations: Any) -> dict | None:
    """The latest non-cancelled annotation (by updated_at, created_at, id; later on ties), as
    ``nerloop.formats.importing`` chooses it."""
    if not isinstance(annotations, list):
        return None
    best, chosen = None, None
    for position, item in enumerate(annotations):
        if not isinstance(item, dict) or item.get("was_cancelled", False):
            continue
        item_id = item.get("id")
        key = (
            str(item.get("updated_at") or item.get("created_at") or ""),
            str(item.get("created_at") or ""),
            item_id if isinstance(item_id, int) else 0,
            position,
        )
        if best is None or key > best:
            best, chosen = key, item
    return chosen


def _read_label_studio(path: Path, opts: _Options) -> Iterator[_Record]:
    """A Label Studio JSON export: ``data.text`` and the latest non-cancelled annotation."""
    text = read_utf8(path)
    _check_nonempty(path, text, "tasks")
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as err:
        raise IngestError(
            f"{path}:{err.lineno}", f"not valid JSON ({err.msg})", "Export the project as JSON"
        ) from None
    if not isinstance(tasks, list):
        raise IngestError(
            str(path), "a Label Studio JSON export is a list of tasks", "Export as JSON"
        )
    if not tasks:
        raise IngestError(str(path), "the export holds no tasks", "Export a project with tasks")
    for position, task in enumerate(tasks):
        task_id = task.get("id", f"#{position}") if isinstance(task, dict) else f"#{position}"
        where = f"{path} task {task_id}"
        data = task.get("data") if isinstance(task, dict) else None
        raw = data.get("text") if isinstance(data, dict) else None
        if not isinstance(raw, str):
            raise IngestError(
                where, "the task has no data.text", "Export tasks whose text is in data.text"
            )
        if not raw.strip():
            raise IngestError(where, "data.text is empty", "Remove the task")
        doc = opts.nlp.make_doc(raw)
        annotation = _latest_annotation(task.get("annotations"))
        if annotation is None:
            if not opts.keep_unannotated:
                raise IngestError(
                    where,
                    "the task has no annotation that was not cancelled",
                    "Annotate it, remove it, or pass --keep-unannotated to ingest it unlabelled",
                )
            opts.summary.skipped["label studio tasks without annotation (kept unlabelled)"] += 1
            yield _Record(doc, where, annotator=UNLABELLED)
            continue
        spans = []
        result = annotation.get("result")
        if not isinstance(result, list):
            raise IngestError(where, "the annotation's 'result' is not a list")
        for position, item in enumerate(result):
            if not isinstance(item, dict) or item.get("type") != "labels":
                continue  # another control of the project (a comment, a choice, a relation)
            value = item.get("value") if isinstance(item.get("value"), dict) else {}
            labels = value.get("labels")
            item_where = f"{where} result {item.get('id', f'#{position}')}"
            if not isinstance(labels, list) or len(labels) != 1:
                raise IngestError(item_where, f"a result must have one label, not {labels!r}")
            start, end = value.get("start"), value.get("end")
            if (
                isinstance(value.get("text"), str)
                and isinstance(start, int)
                and isinstance(end, int)
                and raw[start:end] != value["text"]
            ):
                raise IngestError(
                    item_where,
                    f"the text at {start}-{end} is {raw[start:end]!r}, not {value['text']!r}",
                    "Export from the project whose tasks hold this text",
                )
            spans.append({"start": start, "end": end, "label": labels[0]})
        _char_span_ents(doc, spans, where, opts.scheme, trim=True)
        yield _Record(doc, where)


def _read_spacy(path: Path, opts: _Options) -> Iterator[_Record]:
    """DocBins: entities and per-token ``O``/missing kept, labels checked."""
    try:
        docs = list(DocBin().from_disk(path).get_docs(opts.nlp.vocab))
    except Exception as err:  # srsly/msgpack raise several types for a file that is no DocBin
        raise IngestError(str(path), f"not a spaCy DocBin ({err})", "Give a .spacy file") from None
    if not docs:
        raise IngestError(str(path), "the DocBin holds no Docs", "Give a DocBin with Docs")
    previous_key = object()
    for index, doc in enumerate(docs):
        where = f"{path} doc {index}"
        for ent in doc.ents:
            opts.scheme.check(ent.label_, f"{where}, entity {ent.text!r}")
        key = doc.user_data.get(meta.DOC_ID, ("doc", index))
        labelled = doc.has_annotation("ENT_IOB")
        annotator = doc.user_data.get(meta.ANNOTATOR) or _annotator(labelled)
        if not labelled:
            annotator = UNLABELLED
        sentences_known = doc.has_annotation("SENT_START")
        yield _Record(
            doc,
            where,
            new_document=key != previous_key,
            one_sentence=not sentences_known and meta.SENT_ID in doc.user_data,
            annotator=str(annotator),
            source=doc.user_data.get(meta.SOURCE) if labelled else None,
        )
        previous_key = key


READERS = {
    "text": _read_text,
    "jsonl": _read_jsonl,
    "conll": _read_conll,
    "labelstudio": _read_label_studio,
    "spacy": _read_spacy,
}


# ---------------------------------------------------------------------------------------------
# sentences


def load_sentencizer(lang: str, sentencizer: str = DEFAULT_SENTENCIZER) -> Language:
    """The pipeline that tokenises and splits sentences.

    lang (str): The language code whose tokenizer is used, e.g. ``"en"``, ``"de"``.
    sentencizer (str): ``"sentencizer"`` (a blank ``lang`` pipeline with spaCy's rule-based
        sentencizer) or an installed pipeline's name or path, e.g. ``"en_core_web_sm"``.
    RETURNS (Language): The pipeline.
    """
    try:
        blank = spacy.blank(lang)
    except ImportError:
        raise IngestError(
            f"--lang {lang}",
            f"spaCy has no language {lang!r}",
            "Use a code from spacy.lang, e.g. en, de, es, fr, nl, xx",
        ) from None
    if sentencizer == DEFAULT_SENTENCIZER:
        blank.add_pipe("sentencizer")
        return blank
    try:
        nlp = spacy.load(sentencizer, exclude=["ner", "entity_ruler", "span_ruler", "llm"])
    except OSError:
        raise IngestError(
            f"--sentencizer {sentencizer}",
            "no installed spaCy pipeline has this name or path",
            f"Install it (python -m spacy download {sentencizer}) or use the default "
            f"'{DEFAULT_SENTENCIZER}'",
        ) from None
    if nlp.lang != lang:
        raise IngestError(
            f"--sentencizer {sentencizer}",
            f"the pipeline's language is {nlp.lang!r}, not --lang {lang!r}",
            f"Pass --lang {nlp.lang} or a pipeline for {lang!r}",
        )
    return nlp


def _token_tags(doc: Doc) -> list[str]:
    """Each token's IOB tag, ``""`` where the Doc has no annotation."""
    return [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ in ("B", "I") else t.ent_iob_ for t in doc]


def _split_sentences(record: _Record, nlp: Language, skipped: Counter) -> list[Doc]:
    """The sentence Docs of a record: whitespace tokens at a sentence's edges are dropped,
    whitespace-only sentences counted in ``skipped``, and an entity across a sentence boundary
    is an error."""
    doc = record.doc
    tags = _token_tags(doc)  # before the pipeline runs, which may set its own
    if record.one_sentence:
        bounds = [(0, len(doc))]
    else:
        if not doc.has_annotation("SENT_START"):
            doc = nlp(doc)
            if not doc.has_annotation("SENT_START"):
                raise IngestError(
                    record.where,
                    "the sentencizer pipeline set no sentence boundaries",
                    "Use a pipeline with a parser, senter or sentencizer",
                )
        bounds = [(sent.start, sent.end) for sent in doc.sents]
    kept = []
    for start, end in bounds:
        while start < end and doc[start].is_space:
            start += 1
        while end > start and doc[end - 1].is_space:
            end -= 1
        if start == end:
            skipped["whitespace-only sentences"] += 1
        else:
            kept.append((start, end))
    inside = [False] * len(doc)
    for start, end in kept:
        inside[start:end] = [True] * (end - start)
        for at in (start, end):
            if at < len(doc) and tags[at].startswith("I-"):
                first = at
                while tags[first].startswith("I-") and first > 0:
                    first -= 1
                last = at
                while last < len(doc) and tags[last] == tags[at]:
                    last += 1
                raise IngestError(
                    record.where,
                    f"the {tags[at][2:]} entity {doc[first:last].text!r} crosses a sentence "
                    f"boundary (before {doc[at].text!r}, token {at})",
                    "Fix the entity or the text, or use another --sentencizer",
                )
    for i, tag in enumerate(tags):
        if tag[:2] in ("B-", "I-") and not inside[i]:
            raise IngestError(
                record.where,
                f"a {tag[2:]} entity is whitespace at a sentence's edge (token {i})",
                "Remove the span",
            )
    labelled = any(tags)
    sentences = []
    for start, end in kept:
        words = [t.text for t in doc[start:end]]
        spaces = [bool(t.whitespace_) for t in doc[start:end]]
        spaces[-1] = False
        ents = tags[start:end] if labelled else None
        sentences.append(Doc(nlp.vocab, words=words, spaces=spaces, ents=ents))
    return sentences


# ---------------------------------------------------------------------------------------------
# the step


def ingest(
    inputs: Sequence[Path | str],
    output: Path | str,
    *,
    format: str = "auto",
    scheme: LabelScheme | str | Path | Sequence[str] | None = None,
    lang: str = "en",
    sentencizer: str = DEFAULT_SENTENCIZER,
    text_mode: str = "doc-per-file",
    tag_scheme: str = "auto",
    tag_names: Sequence[str] | Path | None = None,
    strict: bool = False,
    keep_unannotated: bool = False,
    split: str = "train",
) -> IngestSummary:
    """Read the inputs into one DocBin of sentence Docs with sentence ids; nothing is written
    when any input is bad.

    inputs (Sequence[Union[Path, str]]): Files or folders, read in order.
    output (Union[Path, str]): The ``.spacy`` file to write.
    format (str): One of ``FORMATS`` (``"auto"``: from each file's extension).
    scheme (LabelScheme): The labels allowed (a scheme, a scheme file or None: the default).
    lang (str): The language whose tokenizer splits text into tokens.
    sentencizer (str): ``"sentencizer"`` or an installed pipeline (see ``load_sentencizer``).
    text_mode (str): ``"doc-per-file"`` or ``"doc-per-line"`` for plain text.
    tag_scheme (str): ``"auto"``, ``"iob1"``, ``"iob2"`` or ``"biluo"`` for tags.
    tag_names (Optional[Union[Sequence[str], Path]]): The names of integer tag ids (a list or
        a file with one tag a line or a JSON list).
    strict (bool): Refuse IOB2 ``I-`` tags without a ``B-`` instead of repairing them.
    keep_unannotated (bool): Ingest Label Studio tasks without annotation as unlabelled.
    split (str): The ``split`` metadata of every sentence.
    RETURNS (IngestSummary): The counts.
    """
    for name, value, allowed in (
        ("--format", format, FORMATS),
        ("--text-mode", text_mode, TEXT_MODES),
        ("--tag-scheme", tag_scheme, TAG_SCHEMES),
    ):
        if value not in allowed:
            raise IngestError(
                f"{name} {value}", "unknown value", f"Use one of {', '.join(allowed)}"
            )
    output = Path(output)
    files = input_files(inputs)
    if output.exists() and any(output.resolve() == f.resolve() for f in files):
        raise IngestError(str(output), "the output is also an input", "Write another file")
    summary = IngestSummary(output=output, files=len(files))
    opts = _Options(
        scheme=as_scheme(scheme),
        nlp=load_sentencizer(lang, sentencizer),
        text_mode=text_mode,
        tag_scheme=tag_scheme,
        tag_names=_tag_names(tag_names),
        strict=strict,
        keep_unannotated=keep_unannotated,
        summary=summary,
    )
    formats = [(path, format if format != "auto" else detect_format(path)) for path in files]
    docs: list[Doc] = []
    doc_id = -1
    for path, file_format in formats:
        summary.formats.setdefault(str(path), file_format)
        before = len(docs)
        first = True
        for record in READERS[file_format](path, opts):
            sentences = _split_sentences(record, opts.nlp, summary.skipped)
            if not sentences:
                continue
            if record.new_document or first:
                doc_id += 1
            first = False
            labelled = record.annotator != UNLABELLED
            for sentence in sentences:
                meta.set_meta(
                    sentence,
                    sent_id=len(docs),
                    doc_id=doc_id,
                    split=split,
                    annotator=record.annotator,
                    source=record.source or (GOLD_SOURCE if labelled else UNLABELLED),
                    weight=1.0,
                )
                summary.tokens += len(sentence)
                summary.labelled_sentences += int(labelled)
                summary.entities.update(ent.label_ for ent in sentence.ents)
                docs.append(sentence)
        if len(docs) == before:
            raise IngestError(
                str(path),
                f"no sentence in the file (skipped so far: {dict(summary.skipped)})",
                "Give a file with text in it",
            )
        msg.text(f"{path}: {len(docs) - before:,} sentences ({summary.formats[str(path)]})")
    summary.sentences = len(docs)
    summary.documents = doc_id + 1
    if summary.repaired_i_starts:
        msg.warn(
            f"{summary.repaired_i_starts} IOB2 I- tags without a B- were read as entity starts "
            "(--strict refuses them)"
        )
    write_docbin(output, docs)
    return summary
