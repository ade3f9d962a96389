"""Compare two taggers on one fixed gold set: per-type F1, difference, paired bootstrap CI.

The gold set is fixed for every model (the test split by default); it must never be a set chosen
by active learning. The bootstrap resamples sentences with replacement and recomputes both
models' micro F1 on the same resample, so the interval is for the paired difference. The
per-type rows are the label scheme's labels, in its order (``nerloop.labels``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy
from seqeval.metrics.sequence_labeling import get_entities

from nerloop.eval.metrics import entity_scores
from nerloop.labels import LabelScheme, as_scheme


def sentence_counts(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    labels: LabelScheme | Sequence[str] | None = None,
) -> numpy.ndarray:
    """Per sentence and type (plus a last column for all types): true positives, predicted
    and gold entity counts, as an array of shape (n_sentences, len(labels) + 1, 3).

    gold (Sequence[Sequence[str]]): Gold IOB2 tags per sentence.
    pred (Sequence[Sequence[str]]): Predicted IOB2 tags per sentence.
    labels (Union[LabelScheme, Sequence[str], None]): The label scheme, whose order is the
        order of the type columns (None: the default scheme). A label outside it is an
        ``UnknownLabelError`` naming the sentence.
    RETURNS (numpy.ndarray): The counts.
    """
    scheme = as_scheme(labels)
    columns = {label: i for i, label in enumerate(scheme.labels)}
    counts = numpy.zeros((len(gold), len(scheme) + 1, 3), dtype=numpy.int64)
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        gold_ents = set(get_entities(list(g)))
        pred_ents = set(get_entities(list(p)))
        for side, ents in (("gold", gold_ents), ("predicted", pred_ents)):
            for label, _, _ in sorted(ents, key=lambda ent: ent[1]):
                scheme.check(label, f"{side} sentence {i}")
        for ents, slot in ((gold_ents & pred_ents, 0), (pred_ents, 1), (gold_ents, 2)):
            for label, _, _ in ents:
                counts[i, columns[label], slot] += 1
                counts[i, -1, slot] += 1
    return counts


def f1_from_counts(totals: numpy.ndarray) -> numpy.ndarray:
    """F1 from summed (tp, n_pred, n_gold) along the last axis (0 where undefined)."""
    tp, n_pred, n_gold = totals[..., 0], totals[..., 1], totals[..., 2]
    denominator = n_pred + n_gold
    return numpy.where(denominator > 0, 2 * tp / numpy.maximum(denominator, 1), 0.0)


def paired_bootstrap(
    counts_a: numpy.ndarray, counts_b: numpy.ndarray, n_resamples: int, seed: int
) -> dict[str, Any]:
    """Bootstrap distribution of F1(b) - F1(a), micro, over sentence resamples."""
    rng = numpy.random.default_rng(seed)
    n = counts_a.shape[0]
    diffs = numpy.empty(n_resamples)
    for r in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        diffs[r] = f1_from_counts(counts_b[idx, -1].sum(0)) - f1_from_counts(
            counts_a[idx, -1].sum(0)
        )
    low, high = numpy.percentile(diffs, [2.5, 97.5])
    return {
        "n_resamples": n_resamples,
        "seed": seed,
        "ci95_low": float(low),
        "ci95_high": float(high),
        "mean": float(diffs.mean()),
        "p_b_not_better": float((diffs <= 0).mean()),
    }


def compare_predictions(
    gold: Sequence[Sequence[str]],
    pred_a: Sequence[Sequence[str]],
    pred_b: Sequence[Sequence[str]],
    n_resamples: int = 1000,
    seed: int = 0,
    labels: LabelScheme | str | Path | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Per-type F1 of two taggers' predictions on one gold set and the paired bootstrap.

    gold (Sequence[Sequence[str]]): Gold IOB2 tags per sentence.
    pred_a (Sequence[Sequence[str]]): Model A's tags (the baseline); pred_b: model B's.
    n_resamples (int): Bootstrap resamples.
    seed (int): Bootstrap seed.
    labels (Union[LabelScheme, Path, Sequence[str], None]): The label scheme (or its file): the
        per-type rows, in its order (None: the default scheme).
    RETURNS (dict): ``n_sentences``, ``per_type_f1`` (the scheme's labels, then ``micro``) and
        ``bootstrap``.
    """
    scheme = as_scheme(labels)
    scores_a, scores_b = entity_scores(gold, pred_a), entity_scores(gold, pred_b)
    counts_a = sentence_counts(gold, pred_a, scheme)
    counts_b = sentence_counts(gold, pred_b, scheme)
    per_type = {}
    for i, label in enumerate(scheme.labels):
        f1_a = float(f1_from_counts(counts_a[:, i].sum(0)))
        f1_b = float(f1_from_counts(counts_b[:, i].sum(0)))
        per_type[label] = {"a": f1_a, "b": f1_b, "diff": f1_b - f1_a}
    per_type["micro"] = {
        "a": scores_a["f1"],
        "b": scores_b["f1"],
        "diff": scores_b["f1"] - scores_a["f1"],
    }
    return {
        "n_sentences": len(gold),
        "per_type_f1": per_type,
        "bootstrap": paired_bootstrap(counts_a, counts_b, n_resamples, seed),
    }


def comparison_table(result: dict[str, Any], name_a: str, name_b: str) -> str:
    """The comparison as Markdown: a row per type (the scheme's order, then micro), then the
    bootstrap interval."""
    lines = [f"| type | {name_a} F1 | {name_b} F1 | difference |", "|---|---|---|---|"]
    for label, row in result["per_type_f1"].items():
        lines.append(f"| {label} | {row['a']:.4f} | {row['b']:.4f} | {row['diff']:+.4f} |")
    boot = result["bootstrap"]
    lines.append("")
    lines.append(
        f"Paired bootstrap over {result['n_sentences']:,} sentences "
        f"({boot['n_resamples']} resamples, seed {boot['seed']}): "
        f"F1({name_b}) - F1({name_a}) 95% CI [{boot['ci95_low']:+.4f}, {boot['ci95_high']:+.4f}]; "
        f"share of resamples where {name_b} is not better: {boot['p_b_not_better']:.3f}"
    )
    return "\n".join(lines) + "\n"


def compare_models(
    model_a: Path,
    model_b: Path,
    gold_path: Path,
    n_resamples: int = 1000,
    seed: int = 0,
    labels: LabelScheme | str | Path | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run two pipelines on one fixed gold DocBin and compare them (:func:`compare_predictions`).

    model_a (Path): the first pipeline folder (the baseline); model_b (Path): the second.
    gold_path (Path): the fixed gold DocBin (never a set chosen by active learning).
    n_resamples (int): bootstrap resamples; seed (int): the bootstrap seed.
    labels (Union[LabelScheme, Path, Sequence[str], None]): the label scheme (or its file) of
        the per-type rows (None: the default scheme).
    RETURNS (dict): the comparison, with the three paths added.
    """
    scheme = as_scheme(labels)
    from nerloop.eval.metrics import doc_to_iob2
    from nerloop.eval.pipeline import load_pipeline, predict_with_probs
    from nerloop.io_utils import read_docbin

    predictions = []
    gold_tags: list[list[str]] = []
    for path in (model_a, model_b):
        nlp = load_pipeline(path)
        gold_docs = read_docbin(gold_path, nlp.vocab)
        gold_tags = [doc_to_iob2(doc) for doc in gold_docs]
        predicted, _ = predict_with_probs(nlp, gold_docs)
        predictions.append([doc_to_iob2(doc) for doc in predicted])
    result = compare_predictions(
        gold_tags, predictions[0], predictions[1], n_resamples, seed, labels=scheme
    )
    result.update({"model_a": str(model_a), "model_b": str(model_b), "gold": str(gold_path)})
    return result
