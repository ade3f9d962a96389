"""Read the experts' answers back from Label Studio or Prodigy into an expert DocBin.

The output holds the selected Docs (original tokens and metadata) that the experts answered, with
their entities as ``doc.ents``, ``source="expert"`` and ``annotator`` set. Before anything is
written the whole export is checked against the selected batch; every problem is collected and
reported with its task id and sentence id, and a single problem stops the import with nothing
written (:class:`ImportValidationError`):

- a task whose ``sent_id`` is missing or not in the selected batch, or whose text (or tokens)
  differ from the selected sentence;
- a selected sentence with no task, or a sentence with two or more tasks;
- a span that does not start and end on token boundaries (surrounding whitespace is trimmed
  first), overlaps another span, has a ``text`` that differs from the text at its offsets, or whose
  Prodigy token indices disagree with its character offsets;
- a label outside the label scheme (``nerloop.labels``; the message names the task, the span
  and the scheme file), or a Label Studio result with several labels or with
  ``from_name``/``to_name`` other than the labeling config's.

Which answer counts:

- Label Studio (JSON export): the latest annotation that was not cancelled (by ``updated_at``,
  then ``created_at``, then ``id``). A task whose annotations were all cancelled (skipped in the
  UI), or that has none, is left out and listed as skipped; with ``use_predictions`` a task
  without a usable annotation takes its latest prediction instead (recorded with
  ``source="cheap"`` and ``annotator="model:<model_version>"``: no expert saw it).
  Result items of other types than ``labels`` (e.g. a comment box) are ignored.
- Prodigy (``prodigy db-out`` JSONL): ``accept`` gives the spans; ``reject`` (the expert marked
  the sentence as unusable) and ``ignore`` (skipped) leave the sentence out, listed as skipped.

Label Studio's ``<Text>`` offsets count UTF-16 code units in the browser; for text with characters
outside the Basic Multilingual Plane they differ from Python's and show up as misaligned spans.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.formats.common import (
    FORMATS,
    FROM_NAME,
    LABEL_STUDIO,
    PRODIGY,
    RESULT_TYPE,
    TO_NAME,
    selected_sent_ids,
)
from nerloop.io_utils import MissingInputError, atomic_write_json, read_docbin, write_docbin
from nerloop.labels import LabelScheme, UnknownLabelError, as_scheme

EXPERT_SOURCE = "expert"
PREDICTION_SOURCE = "cheap"
DEFAULT_ANNOTATOR = "expert"
PRODIGY_ANSWERS = ("accept", "reject", "ignore")


@dataclass(frozen=True)
class ImportProblem:
    """One thing wrong with an export: which task, which sentence, what."""

    task: str | None
    sent_id: int | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.task is not None:
            where.append(f"task {self.task}")
        if self.sent_id is not None:
            where.append(f"sent_id {self.sent_id}")
        return f"{', '.join(where) or 'export'}: {self.message}"


class ImportFormatError(NerloopError, ValueError):
    """An export format that is not given and cannot be told from the file name, or unknown."""


class ImportValidationError(NerloopError, ValueError):
    """The export does not match the selected batch; ``problems`` lists every mismatch."""

    def __init__(self, problems: Sequence[ImportProblem], source: str | Path | None = None):
        self.problems = list(problems)
        self.source = str(source) if source is not None else None
        where = f" in {self.source}" if self.source else ""
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{len(self.problems)} problem(s){where}; nothing was imported:\n{lines}")


@dataclass(frozen=True)
class ExpertSpan:
    """An entity as the tool gave it: character offsets (end exclusive) and label.

    token_start/token_end: Prodigy's token indices (end exclusive here), when given.
    """

    start: int
    end: int
    label: str
    text: str | None = None
    token_start: int | None = None
    token_end: int | None = None


@dataclass
class ExpertTask:
    """One task of an export, in a tool-independent form.

    task_id (str): The tool's task id (Label Studio ``id``, or the position / line number).
    sent_id (Optional[int]): The sentence it is about (None when the task does not say).
    text (Optional[str]): The task's text.
    tokens (Optional[List[str]]): The task's tokens, when it lists them.
    spans (List[ExpertSpan]): The answer's entities.
    annotator (Optional[str]): Who answered.
    source (str): ``expert``, or ``cheap`` for a model prediction taken as the answer.
    skipped (Optional[str]): Why the task gives no answer (cancelled, rejected, ...); None when
        it does.
    """

    task_id: str
    sent_id: int | None
    text: str | None
    tokens: list[str] | None = None
    spans: list[ExpertSpan] = field(default_factory=list)
    annotator: str | None = None
    source: str = EXPERT_SOURCE
    skipped: str | None = None


@dataclass
class ImportResult:
    """The expert Docs (in the order of the selected batch) and a summary of the import."""

    docs: list[Doc]
    summary: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Reading the tools' exports
# ---------------------------------------------------------------------------------------------


def _parse_int(value: Any) -> int | None:
    """An int, or a string of digits (as a CSV-imported task stores it); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _latest(items: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The most recent item (by updated_at, created_at, id; the later in the list on ties)."""
    best: tuple | None = None
    chosen = None
    for position, item in enumerate(items):
        key = (
            str(item.get("updated_at") or item.get("created_at") or ""),
            str(item.get("created_at") or ""),
            _parse_int(item.get("id")) or 0,
            position,
        )
        if best is None or key > best:
            best, chosen = key, item
    return chosen


def _label_studio_annotator(annotation: dict[str, Any]) -> str:
    user = annotation.get("completed_by")
    if isinstance(user, dict):
        user = user.get("id", user.get("email"))
    return f"labelstudio-user-{user}" if user is not None else DEFAULT_ANNOTATOR


def _label_studio_spans(
    result: Any,
    task_id: str,
    sent_id: int | None,
    from_name: str,
    to_name: str,
    problems: list[ImportProblem],
) -> list[ExpertSpan]:
    if not isinstance(result, list):
        problems.append(ImportProblem(task_id, sent_id, "'result' is not a list"))
        return []
    spans = []
    for position, item in enumerate(result):
        if not isinstance(item, dict):
            problems.append(ImportProblem(task_id, sent_id, f"result #{position} is not an object"))
            continue
        if item.get("type") != RESULT_TYPE:
            continue  # another control of the project (a comment box, a choice, a relation)
        where = f"result {item.get('id', f'#{position}')}"
        if item.get("from_name") != from_name or item.get("to_name") != to_name:
            problems.append(
                ImportProblem(
                    task_id,
                    sent_id,
                    f"{where} comes from {item.get('from_name')!r} -> {item.get('to_name')!r}, "
                    f"not from the labeling config's {from_name!r} -> {to_name!r}",
                )
            )
            continue
        value = item.get("value")
        value = value if isinstance(value, dict) else {}
        start, end, labels = (
            _as_int(value.get("start")),
            _as_int(value.get("end")),
            value.get("labels"),
        )
        if start is None or end is None:
            problems.append(ImportProblem(task_id, sent_id, f"{where} has no integer start/end"))
            continue
        if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
            problems.append(
                ImportProblem(
                    task_id, sent_id, f"{where} must have exactly one label, not {labels!r}"
                )
            )
            continue
        text = value.get("text")
        spans.append(ExpertSpan(start, end, labels[0], text if isinstance(text, str) else None))
    return spans


def read_label_studio(
    path: Path,
    use_predictions: bool = False,
    from_name: str = FROM_NAME,
    to_name: str = TO_NAME,
) -> tuple[list[ExpertTask], list[ImportProblem]]:
    """Tasks of a Label Studio JSON export, and the problems found while reading them."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf8"))
    except json.JSONDecodeError as err:
        raise ImportValidationError(
            [ImportProblem(None, None, f"not valid JSON: {err}")], path
        ) from None
    if not isinstance(data, list):
        raise ImportValidationError(
            [ImportProblem(None, None, "a Label Studio JSON export is a list of tasks")], path
        )
    tasks: list[ExpertTask] = []
    problems: list[ImportProblem] = []
    for position, raw in enumerate(data):
        task_id = str(raw["id"]) if isinstance(raw, dict) and "id" in raw else f"#{position}"
        if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
            problems.append(
                ImportProblem(
                    task_id,
                    None,
                    "not a Label Studio task (no 'data' object; JSON-MIN and CSV exports are "
                    "not supported, export as JSON)",
                )
            )
            continue
        data_ = raw["data"]
        sent_id = _parse_int(data_.get(meta.SENT_ID))
        text = data_.get("text") if isinstance(data_.get("text"), str) else None
        tokens = data_.get("tokens")
        task = ExpertTask(task_id, sent_id, text, tokens if isinstance(tokens, list) else None)
        annotations = [
            a
            for a in raw.get("annotations") or []
            if isinstance(a, dict) and not a.get("was_cancelled", False)
        ]
        annotation = _latest(annotations)
        if annotation is not None:
            task.spans = _label_studio_spans(
                annotation.get("result"), task_id, sent_id, from_name, to_name, problems
            )
            task.annotator = _label_studio_annotator(annotation)
        elif use_predictions and raw.get("predictions"):
            predictions = [p for p in raw["predictions"] if isinstance(p, dict)]
            prediction = _latest(predictions) if predictions else None
            if prediction is None:
                task.skipped = "no usable prediction"
            else:
                task.spans = _label_studio_spans(
                    prediction.get("result"), task_id, sent_id, from_name, to_name, problems
                )
                task.annotator = f"model:{prediction.get('model_version', 'unknown')}"
                task.source = PREDICTION_SOURCE
        else:
            cancelled = bool(raw.get("annotations"))
            task.skipped = "all annotations cancelled" if cancelled else "not annotated"
        tasks.append(task)
    return tasks, problems


def read_prodigy(path: Path) -> tuple[list[ExpertTask], list[ImportProblem]]:
    """Tasks of a Prodigy JSONL export (``prodigy db-out``), and the problems found reading them."""
    tasks: list[ExpertTask] = []
    problems: list[ImportProblem] = []
    with Path(path).open(encoding="utf8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            task_id = f"line {number}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as err:
                problems.append(ImportProblem(task_id, None, f"not valid JSON: {err}"))
                continue
            if not isinstance(raw, dict):
                problems.append(ImportProblem(task_id, None, "not a Prodigy task (a JSON object)"))
                continue
            task_meta = raw.get("meta") if isinstance(raw.get("meta"), dict) else {}
            sent_id = _parse_int(task_meta.get(meta.SENT_ID))
            tokens = raw.get("tokens")
            token_texts = (
                [t.get("text") for t in tokens if isinstance(t, dict)]
                if isinstance(tokens, list)
                else None
            )
            text = raw.get("text") if isinstance(raw.get("text"), str) else None
            task = ExpertTask(task_id, sent_id, text, token_texts)
            task.annotator = raw.get("_annotator_id") or raw.get("_session_id") or None
            answer = raw.get("answer")
            if answer not in PRODIGY_ANSWERS:
                problems.append(
                    ImportProblem(
                        task_id,
                        sent_id,
                        f"answer {answer!r} is not one of {PRODIGY_ANSWERS} "
                        "(export the annotated dataset with `prodigy db-out`)",
                    )
                )
            elif answer != "accept":
                task.skipped = "rejected" if answer == "reject" else "ignored"
            else:
                task.spans = _prodigy_spans(raw.get("spans"), task_id, sent_id, problems)
            tasks.append(task)
    return tasks, problems


def _prodigy_spans(
    spans: Any, task_id: str, sent_id: int | None, problems: list[ImportProblem]
) -> list[ExpertSpan]:
    if spans is None:
        return []
    if not isinstance(spans, list):
        problems.append(ImportProblem(task_id, sent_id, "'spans' is not a list"))
        return []
    result = []
    for position, span in enumerate(spans):
        span = span if isinstance(span, dict) else {}
        start, end, label = _as_int(span.get("start")), _as_int(span.get("end")), span.get("label")
        if start is None or end is None or not isinstance(label, str):
            problems.append(
                ImportProblem(
                    task_id, sent_id, f"span #{position} needs integer start/end and a label"
                )
            )
            continue
        token_start, token_end = _as_int(span.get("token_start")), _as_int(span.get("token_end"))
        text = span.get("text")
        result.append(
            ExpertSpan(
                start,
                end,
                label,
                text if isinstance(text, str) else None,
                token_start,
                token_end + 1 if token_end is not None else None,
            )
        )
    return result


# ---------------------------------------------------------------------------------------------
# Checking the answers against the selected batch
# ---------------------------------------------------------------------------------------------


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _nearby_tokens(doc: Doc, start: int, end: int) -> str:
    tokens = [f"{t.text!r}@{t.idx}" for t in doc if t.idx < end + 1 and t.idx + len(t) > start - 1]
    return ", ".join(tokens) or "none"


def check_spans(
    task: ExpertTask,
    doc: Doc,
    labels: LabelScheme | Sequence[str] | None,
    problems: list[ImportProblem],
) -> list[Span]:
    """The task's spans as entity Spans of ``doc``; every problem is added to ``problems``.

    task (ExpertTask): The answered task.
    doc (Doc): The selected sentence it answers.
    labels (Union[LabelScheme, Sequence[str], None]): The label scheme (None: the default).
    problems (List[ImportProblem]): Where the problems go.
    RETURNS (List[Span]): The valid entities, in order.
    """
    scheme = as_scheme(labels)
    entities: dict[tuple[int, int], Span] = {}
    text = doc.text
    for span in task.spans:
        where = f"span {span.start}:{span.end} ({span.label})"

        def report(message: str, where: str = where) -> None:
            problems.append(ImportProblem(task.task_id, task.sent_id, f"{where} {message}"))

        try:
            scheme.check(span.label, f"span {span.start}:{span.end}")
        except UnknownLabelError as err:
            problems.append(ImportProblem(task.task_id, task.sent_id, str(err)))
            continue
        if not 0 <= span.start < span.end <= len(text):
            report(f"is outside the text (0:{len(text)}) or empty")
            continue
        if span.text is not None and span.text != text[span.start : span.end]:
            report(
                f"says its text is {span.text!r} but the text at those offsets is "
                f"{text[span.start : span.end]!r}"
            )
            continue
        start, end = _trimmed(text, span.start, span.end)
        entity = doc.char_span(start, end, label=span.label, alignment_mode="strict")
        if entity is None:
            report(
                f"{text[span.start : span.end]!r} does not fall on token boundaries "
                f"(tokens around it: {_nearby_tokens(doc, start, end)})"
            )
            continue
        if (
            span.token_start is not None
            and span.token_end is not None
            and (
                span.token_start,
                span.token_end,
            )
            != (entity.start, entity.end)
        ):
            report(
                f"has token_start/token_end {span.token_start}/{span.token_end - 1} but its "
                f"characters cover tokens {entity.start}/{entity.end - 1}"
            )
            continue
        key = (entity.start, entity.end)
        if key in entities and entities[key].label_ == entity.label_:
            continue  # the same entity twice
        clash = [
            other
            for other in entities.values()
            if other.start < entity.end and entity.start < other.end
        ]
        if clash:
            report(
                f"{entity.text!r} overlaps "
                + ", ".join(f"{o.text!r} ({o.label_}, {o.start_char}:{o.end_char})" for o in clash)
            )
            continue
        entities[key] = entity
    return sorted(entities.values(), key=lambda ent: ent.start)


def build_expert_docs(
    selected: Sequence[Doc],
    tasks: Sequence[ExpertTask],
    labels: LabelScheme | str | Path | Sequence[str] | None = None,
    annotator: str | None = None,
    problems: Sequence[ImportProblem] = (),
) -> ImportResult:
    """The selected Docs with the experts' entities; an ImportValidationError lists all problems.

    selected (Sequence[Doc]): The batch that was exported (with ``sent_id``).
    tasks (Sequence[ExpertTask]): The export's tasks.
    labels (Union[LabelScheme, Path, Sequence[str], None]): The label scheme (or its file) an
        expert may use (None: the default scheme).
    annotator (Optional[str]): Name recorded as ``annotator`` on every expert Doc (default: the
        tool's user id, else ``expert``).
    problems (Sequence[ImportProblem]): Problems already found while reading the export.
    RETURNS (ImportResult): The answered Docs (order of ``selected``) and a summary.
    """
    scheme = as_scheme(labels)
    problems = list(problems)
    selected_sent_ids(selected)
    by_id = meta.by_sent_id(selected)
    tasks_of: dict[int, list[ExpertTask]] = defaultdict(list)
    for task in tasks:
        if task.sent_id is None:
            problems.append(
                ImportProblem(task.task_id, None, f"has no integer '{meta.SENT_ID}' to match it by")
            )
        elif task.sent_id not in by_id:
            problems.append(
                ImportProblem(task.task_id, task.sent_id, "is not a sentence of the selected batch")
            )
        else:
            tasks_of[task.sent_id].append(task)
    for sent_id in by_id:
        if not tasks_of.get(sent_id):
            problems.append(
                ImportProblem(None, sent_id, "was selected but the export has no task for it")
            )
    for sent_id, group in tasks_of.items():
        if len(group) > 1:
            ids = ", ".join(task.task_id for task in group)
            for task in group:
                problems.append(
                    ImportProblem(
                        task.task_id,
                        sent_id,
                        f"is one of {len(group)} tasks for this sentence ({ids})",
                    )
                )
    answered: dict[int, tuple[ExpertTask, list[Span]]] = {}
    for sent_id, group in tasks_of.items():
        task, doc = group[0], by_id[sent_id]
        if task.text is not None and task.text != doc.text:
            problems.append(
                ImportProblem(
                    task.task_id,
                    sent_id,
                    f"text {task.text[:60]!r} differs from the selected sentence {doc.text[:60]!r}",
                )
            )
            continue
        if task.tokens is not None and task.tokens != [token.text for token in doc]:
            problems.append(
                ImportProblem(task.task_id, sent_id, "tokens differ from the selected sentence's")
            )
            continue
        if task.skipped is None:
            answered[sent_id] = (task, check_spans(task, doc, scheme, problems))
    if problems:
        raise ImportValidationError(problems)
    docs = []
    annotators: Counter[str] = Counter()
    for doc in selected:
        sent_id = meta.sent_id(doc)
        if sent_id not in answered:
            continue
        task, entities = answered[sent_id]
        expert_doc = doc.copy()
        expert_doc.set_ents(
            [Span(expert_doc, e.start, e.end, label=e.label_) for e in entities], default="outside"
        )
        chosen = annotator if task.source == EXPERT_SOURCE else None
        name = chosen or task.annotator or DEFAULT_ANNOTATOR
        meta.set_meta(expert_doc, source=task.source, annotator=name)
        annotators[name] += 1
        docs.append(expert_doc)
    skipped = [
        {"task": t.task_id, meta.SENT_ID: t.sent_id, "reason": t.skipped}
        for t in tasks
        if t.skipped is not None
    ]
    summary = {
        "n_selected": len(selected),
        "n_tasks": len(tasks),
        "n_imported": len(docs),
        "n_from_predictions": sum(1 for t, _ in answered.values() if t.source != EXPERT_SOURCE),
        "n_skipped": len(skipped),
        "skipped": skipped,
        "n_entities": sum(len(doc.ents) for doc in docs),
        "annotators": dict(sorted(annotators.items())),
    }
    return ImportResult(docs, summary)


def infer_format(path: Path) -> str:
    if path.suffix == ".jsonl":
        return PRODIGY
    if path.suffix == ".json":
        return LABEL_STUDIO
    raise ImportFormatError(f"cannot tell the format of {path}: give --format {'|'.join(FORMATS)}")


def import_annotations(
    export_path: Path,
    selected_path: Path,
    output_path: Path,
    export_format: str | None = None,
    use_predictions: bool = False,
    annotator: str | None = None,
    labels: LabelScheme | str | Path | Sequence[str] | None = None,
    from_name: str = FROM_NAME,
    to_name: str = TO_NAME,
    summary_path: Path | None = None,
) -> dict[str, Any]:
    """Check an export against the selected batch and write the expert DocBin (and summary).

    Nothing is written unless the whole export is valid.

    export_path (Path): Label Studio JSON export or Prodigy JSONL (``db-out``).
    selected_path (Path): The DocBin that was exported for the experts.
    output_path (Path): Expert DocBin to write.
    export_format (Optional[str]): ``labelstudio`` or ``prodigy`` (default: from the suffix).
    use_predictions (bool): Label Studio: take the latest prediction of an unannotated task.
    annotator (Optional[str]): Name recorded as every Doc's ``annotator``.
    labels (Union[LabelScheme, Path, Sequence[str], None]): The label scheme (or its file) an
        expert may use (None: the default scheme).
    from_name, to_name (str): Label Studio ``<Labels>``/``<Text>`` tag names.
    summary_path (Optional[Path]): Where to write the summary JSON.
    RETURNS (dict): The summary.
    """
    scheme = as_scheme(labels)  # a bad scheme file fails before the export is read
    export_format = export_format or infer_format(export_path)
    if export_format not in FORMATS:
        raise ImportFormatError(f"format must be one of {FORMATS}, not {export_format!r}")
    if not Path(export_path).exists():
        raise MissingInputError(f"{export_path} does not exist")
    selected = read_docbin(selected_path, Vocab())
    if export_format == LABEL_STUDIO:
        tasks, problems = read_label_studio(export_path, use_predictions, from_name, to_name)
    else:
        tasks, problems = read_prodigy(export_path)
    try:
        result = build_expert_docs(selected, tasks, scheme, annotator, problems)
    except ImportValidationError as err:
        raise ImportValidationError(err.problems, export_path) from None
    summary = {"format": export_format, "export": str(export_path), **result.summary}
    write_docbin(output_path, result.docs)
    if summary_path is not None:
        atomic_write_json(summary_path, summary)
    return summary
