"""Export a batch of sentences for the experts, pre-annotated by the current model.

The model runs on copies of the selected Docs that keep the original tokens, so every
pre-annotated entity falls on token boundaries and comes back aligned. Three files are written
into the output folder (each atomically):

- ``labelstudio_tasks.json``: Label Studio tasks (``data``: ``text``, ``sent_id``, ``tokens``;
  ``predictions``: the model's entities, with ``score`` the least confident token's top tag
  probability, so the Data Manager can sort the most doubtful sentences first);
- ``labelstudio_config.xml``: the labeling config those tasks are meant for;
- ``prodigy_tasks.jsonl``: the same sentences as Prodigy ``ner.manual`` tasks (``text``,
  ``tokens``, ``spans``, ``meta.sent_id``), to be opened with
  ``prodigy ner.manual DATASET blank:en prodigy_tasks.jsonl --label <the scheme's labels>``
  (the summary's ``prodigy_command`` spells it out).

The labels offered to the experts are those of the label scheme (``nerloop.labels``), in its
order; a model that predicts a label outside the scheme is refused before anything is written.

Experts then correct the pre-annotations instead of starting from nothing; ``scripts/al_import.py``
reads their answers back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
from spacy.language import Language
from spacy.tokens import Doc

from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.eval.pipeline import load_pipeline, predict_with_probs
from nerloop.fingerprint import small_int_hash
from nerloop.formats.common import (
    FROM_NAME,
    LABEL_STUDIO_CONFIG_FILE,
    LABEL_STUDIO_TASKS_FILE,
    PRODIGY_TASKS_FILE,
    TO_NAME,
    label_studio_config,
    label_studio_result,
    prodigy_span,
    prodigy_tokens,
    selected_sent_ids,
)
from nerloop.io_utils import atomic_write_json, atomic_write_jsonl, atomic_write_text, read_docbin
from nerloop.labels import LabelScheme, as_scheme


class ExportError(NerloopError, ValueError):
    """The batch cannot be exported as the experts' tools need it (e.g. a label they lack)."""


@dataclass
class PreAnnotated:
    """A selected sentence and the model's reading of it.

    doc (Doc): The selected Doc (original tokens and metadata).
    predicted (Doc): A copy with the same tokens and the model's entities.
    confidence (float): The lowest top-tag probability over the tokens (1.0 for an empty Doc).
    """

    doc: Doc
    predicted: Doc
    confidence: float


def pre_annotate(
    nlp: Language, docs: Sequence[Doc], batch_size: int = 64, progress: bool = True
) -> list[PreAnnotated]:
    """Run the tagger on copies of ``docs`` with their original tokens."""
    predicted, probs = predict_with_probs(nlp, docs, batch_size=batch_size, progress=progress)
    return [
        PreAnnotated(doc, pred, float(doc_probs.max(axis=1).min()) if len(doc) else 1.0)
        for doc, pred, doc_probs in zip(docs, predicted, probs, strict=True)
    ]


def label_studio_task(
    item: PreAnnotated,
    model_version: str,
    from_name: str = FROM_NAME,
    to_name: str = TO_NAME,
) -> dict[str, Any]:
    """A Label Studio task with the model's entities as a prediction."""
    doc = item.doc
    return {
        "data": {
            "text": doc.text,
            meta.SENT_ID: meta.sent_id(doc),
            "tokens": [token.text for token in doc],
        },
        "predictions": [
            {
                "model_version": model_version,
                "score": round(item.confidence, 6),
                "result": [
                    label_studio_result(ent, i, from_name, to_name)
                    for i, ent in enumerate(item.predicted.ents)
                ],
            }
        ],
    }


def prodigy_task(item: PreAnnotated, model_version: str) -> dict[str, Any]:
    """A Prodigy ``ner.manual`` task with the model's entities as the starting spans."""
    doc = item.doc
    spans = [prodigy_span(ent) for ent in item.predicted.ents]
    input_hash = small_int_hash({"text": doc.text})
    return {
        "text": doc.text,
        "tokens": prodigy_tokens(doc),
        "spans": spans,
        "meta": {
            meta.SENT_ID: meta.sent_id(doc),
            "model_version": model_version,
            "score": round(item.confidence, 6),
        },
        "_input_hash": input_hash,
        "_task_hash": small_int_hash({"input": input_hash, "spans": spans}),
    }


def check_labels(items: Sequence[PreAnnotated], labels: LabelScheme | Sequence[str]) -> None:
    """Refuse pre-annotations with a label the scheme (the labeling config) does not offer."""
    scheme = as_scheme(labels)
    predicted = {ent.label_ for item in items for ent in item.predicted.ents}
    unknown = sorted(predicted - set(scheme.labels))
    if unknown:
        source = f" of {scheme.path}" if scheme.path else ""
        raise ExportError(
            f"the model predicts labels {unknown} that the label scheme{source} does not offer "
            f"({', '.join(scheme.labels)}): the experts could not keep them. Export with the "
            "scheme the model was trained with (--labels)"
        )


def prodigy_command(tasks_path: Path | str, labels: LabelScheme | Sequence[str]) -> str:
    """The ``prodigy ner.manual`` command line that opens the tasks with the scheme's labels."""
    label_list = ",".join(as_scheme(labels).labels)
    return f"prodigy ner.manual DATASET blank:en {tasks_path} --label {label_list}"


def export_batch(
    model_path: Path,
    selected_path: Path,
    output_dir: Path,
    model_version: str | None = None,
    labels: LabelScheme | str | Path | Sequence[str] | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> dict[str, Any]:
    """Pre-annotate the selected sentences and write the Label Studio and Prodigy files.

    model_path (Path): Trained pipeline folder.
    selected_path (Path): DocBin of the selected sentences (with ``sent_id``).
    output_dir (Path): Folder for the three files (created when missing).
    model_version (Optional[str]): Name of the predictions (default: ``model_path``).
    labels (Union[LabelScheme, Path, Sequence[str], None]): The label scheme (or its file)
        offered to the experts (None: the default scheme).
    batch_size (int): Sentences per forward pass.
    RETURNS (dict): A summary: paths written, counts of sentences and predicted entities, the
        mean confidence, the labels and the Prodigy command line.
    """
    scheme = as_scheme(labels)
    nlp = load_pipeline(model_path)
    docs = read_docbin(selected_path, nlp.vocab)
    selected_sent_ids(docs)
    items = pre_annotate(nlp, docs, batch_size=batch_size, progress=progress)
    check_labels(items, scheme)
    version = model_version or str(model_path)
    paths = {
        "labelstudio_tasks": output_dir / LABEL_STUDIO_TASKS_FILE,
        "labelstudio_config": output_dir / LABEL_STUDIO_CONFIG_FILE,
        "prodigy_tasks": output_dir / PRODIGY_TASKS_FILE,
    }
    atomic_write_json(paths["labelstudio_tasks"], [label_studio_task(i, version) for i in items])
    atomic_write_text(paths["labelstudio_config"], label_studio_config(scheme))
    atomic_write_jsonl(paths["prodigy_tasks"], [prodigy_task(i, version) for i in items])
    confidences = [item.confidence for item in items]
    return {
        "model_version": version,
        "n_sentences": len(items),
        "n_entities": sum(len(item.predicted.ents) for item in items),
        "mean_confidence": float(numpy.mean(confidences)) if confidences else None,
        "labels": list(scheme.labels),
        "prodigy_command": prodigy_command(paths["prodigy_tasks"], scheme),
        "paths": {name: str(path) for name, path in paths.items()},
    }
