"""Entity-level evaluation with seqeval (IOB2, default mode), the study's measures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seqeval.metrics import accuracy_score, classification_report
from seqeval.metrics import f1_score as _f1
from seqeval.metrics import precision_score as _precision
from seqeval.metrics import recall_score as _recall
from spacy.tokens import Doc

from nerloop.errors import NerloopError


class EvaluationError(NerloopError, ValueError):
    """Gold and predicted annotations that cannot be scored against each other."""


def doc_to_iob2(doc: Doc) -> list[str]:
    """The IOB2 tags of a Doc's entities, one per token (``O`` where none is set).

    Read from spaCy's own per-token IOB encoding (``token.ent_iob_``, ``token.ent_type_``):
    ``biluo_to_iob(offsets_to_biluo_tags(...))`` gives the same tags (a test checks) but maps
    character offsets back to tokens, which made every dev evaluation 8 s slower on CoNLL dev.
    """
    return [
        "O" if token.ent_iob_ in ("", "O") else f"{token.ent_iob_}-{token.ent_type_}"
        for token in doc
    ]


def docs_to_iob2(docs: Sequence[Doc]) -> list[list[str]]:
    """``doc_to_iob2`` of every Doc."""
    return [doc_to_iob2(doc) for doc in docs]


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Micro precision/recall/F1, token accuracy and per-type scores from IOB2 tag lists.

    RETURNS (dict): ``{"precision", "recall", "f1", "accuracy", "n_sentences", "per_type":
        {label: {"precision", "recall", "f1", "support"}}}``.
    """
    if len(gold) != len(pred):
        raise EvaluationError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise EvaluationError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    gold, pred = [list(s) for s in gold], [list(s) for s in pred]
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    per_type = {
        label: {
            "precision": float(row["precision"]),
            "recall": float(row["recall"]),
            "f1": float(row["f1-score"]),
            "support": int(row["support"]),
        }
        for label, row in report.items()
        if not label.endswith("avg")
    }
    return {
        "precision": float(_precision(gold, pred, zero_division=0)),
        "recall": float(_recall(gold, pred, zero_division=0)),
        "f1": float(_f1(gold, pred, zero_division=0)),
        "accuracy": float(accuracy_score(gold, pred)) if gold else 0.0,
        "n_sentences": len(gold),
        "per_type": dict(sorted(per_type.items())),
    }


def doc_entity_scores(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]) -> dict[str, Any]:
    """``entity_scores`` on two aligned lists of Docs with identical tokens."""
    for i, (g, p) in enumerate(zip(gold_docs, pred_docs)):
        if [t.text for t in g] != [t.text for t in p]:
            raise EvaluationError(f"doc {i}: gold and predicted tokens differ")
    return entity_scores(docs_to_iob2(gold_docs), docs_to_iob2(pred_docs))
