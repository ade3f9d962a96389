"""Run a trained ``bio_ner`` pipeline over gold Docs and measure it as the study does.

The study's three measures are validation loss, seqeval accuracy and seqeval entity F1; precision,
recall and the per-type report come with them. Predictions keep the gold tokenisation.
``read_dev_f1`` reads the dev F1 back from a metrics JSON (``scripts/evaluate.py``'s format).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import minibatch
from tqdm import tqdm

from nerloop.errors import NerloopError
from nerloop.eval.metrics import EvaluationError, doc_to_iob2, entity_scores
from nerloop.io_utils import MissingInputError

TAGGER_NAME = "bio_ner"
_LOG_FLOOR = 1e-12


class PipelineError(NerloopError, ValueError):
    """A pipeline that is not a trained ``bio_ner`` tagger."""


def load_pipeline(path: Path | str) -> Language:
    """Load a trained pipeline whose code lives in ``components/`` (registers the factory)."""
    import spacy

    import components.bio_ner  # noqa: F401  (registers nerloop.* and the bio_ner factory)

    path = Path(path)
    if not (path / "config.cfg").exists():
        raise MissingInputError(
            f"{path} is not a spaCy pipeline folder (no config.cfg): train it first"
        )
    return spacy.load(path)


def tagger_of(nlp: Language):
    """The pipeline's ``bio_ner`` component; a PipelineError when it has none."""
    if TAGGER_NAME not in nlp.pipe_names:
        raise PipelineError(f"the pipeline has no {TAGGER_NAME!r} component: {nlp.pipe_names}")
    return nlp.get_pipe(TAGGER_NAME)


def blank_copies(nlp: Language, docs: Sequence[Doc]) -> list[Doc]:
    """Unannotated Docs with the same tokens and whitespace, in the pipeline's vocab."""
    return [
        Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
        for doc in docs
    ]


def upstream_batches(nlp: Language, docs: Sequence[Doc], batch_size: int) -> Iterator[list[Doc]]:
    """Blank copies of ``docs`` in batches, annotated by the components before the tagger.

    ``nlp.pipe`` runs them with the tagger and everything after it disabled, so the tagger's
    own ``predict_proba`` (which ``nlp.pipe`` cannot return) gets the same inputs as in
    ``nlp(doc)``.

    nlp (Language): a pipeline with a ``bio_ner`` component.
    docs (Sequence[Doc]): the Docs whose words (and whitespace) are used.
    batch_size (int): Docs per batch (and per upstream ``pipe`` call).
    YIELDS (List[Doc]): the annotated copies, in the order of ``docs``.
    """
    tagger_of(nlp)
    names = nlp.pipe_names
    downstream = names[names.index(TAGGER_NAME) :]
    copies = nlp.pipe(blank_copies(nlp, docs), batch_size=batch_size, disable=downstream)
    yield from minibatch(copies, size=batch_size)


def ensure_features(nlp: Language, docs: Sequence[Doc], progress: bool = True) -> int:
    """Compute and store the features of any frozen encoder in ``nlp`` that its store lacks
    for ``docs`` (``components/frozen_encoder.py``); a no-op for other pipelines.

    RETURNS (int): the number of Docs whose features were computed.
    """
    from components.frozen_encoder import ensure_features as ensure_store

    return ensure_store(nlp, docs, progress=progress)


def predict_with_probs(
    nlp: Language, docs: Sequence[Doc], batch_size: int = 64, progress: bool = True
) -> tuple[list[Doc], list[numpy.ndarray]]:
    """Annotate copies of ``docs`` and return them with the tagger's per-token probabilities.

    nlp (Language): a pipeline with a ``bio_ner`` component (components after it are not run).
    docs (Sequence[Doc]): the Docs to tag (only their words and whitespace are used).
    batch_size (int): Docs per forward pass.
    progress (bool): show a progress bar.
    RETURNS (Tuple[List[Doc], List[numpy.ndarray]]): the tagged copies and, per Doc, the
        ``(n_tokens, n_tags)`` probabilities, in the order of ``docs``.
    """
    tagger = tagger_of(nlp)
    ensure_features(nlp, docs, progress=progress)
    predicted: list[Doc] = []
    probs: list[numpy.ndarray] = []
    bar = tqdm(total=len(docs), desc="predict", unit="sent", disable=not progress, leave=False)
    for batch in upstream_batches(nlp, docs, batch_size):
        batch_probs = tagger.predict_proba(batch)
        tagger.set_annotations(batch, batch_probs)
        predicted.extend(batch)
        probs.extend(batch_probs)
        bar.update(len(batch))
    bar.close()
    return predicted, probs


def validation_loss(
    gold_docs: Sequence[Doc], probs: Sequence[numpy.ndarray], tag_names: Sequence[str]
) -> float:
    """Mean cross-entropy of the gold IOB2 tag per token (the study's validation loss)."""
    index = {name: i for i, name in enumerate(tag_names)}
    total, n_tokens = 0.0, 0
    for doc, doc_probs in zip(gold_docs, probs, strict=True):
        if not len(doc):
            continue
        gold = numpy.asarray([index[tag] for tag in doc_to_iob2(doc)])
        picked = doc_probs[numpy.arange(len(gold)), gold]
        total += float(-numpy.log(numpy.maximum(picked, _LOG_FLOOR)).sum())
        n_tokens += len(gold)
    return total / n_tokens if n_tokens else 0.0


def evaluate_pipeline(
    nlp: Language, gold_docs: Sequence[Doc], batch_size: int = 64, progress: bool = True
) -> dict[str, Any]:
    """Loss, seqeval accuracy/P/R/F1 and per-type scores of a pipeline on gold Docs."""
    start = time.perf_counter()
    predicted, probs = predict_with_probs(nlp, gold_docs, batch_size, progress)
    seconds = time.perf_counter() - start
    scores = entity_scores(
        [doc_to_iob2(doc) for doc in gold_docs], [doc_to_iob2(doc) for doc in predicted]
    )
    scores["loss"] = validation_loss(gold_docs, probs, tagger_of(nlp).tag_names)
    n_words = sum(len(doc) for doc in gold_docs)
    scores["words_per_second"] = n_words / seconds if seconds else 0.0
    scores["seconds"] = seconds
    return scores


def read_dev_f1(path: Path | None) -> dict[str, Any] | None:
    """``{"f1", "model", "path"}`` from a metrics JSON with ``{"dev": {"f1": ...}}``."""
    if path is None:
        return None
    data = json.loads(Path(path).read_text(encoding="utf8"))
    try:
        f1 = float(data["dev"]["f1"])
    except (KeyError, TypeError, ValueError):
        raise EvaluationError(f"{path} has no dev F1 (expected {{'dev': {{'f1': ...}}}})") from None
    return {"f1": f1, "model": data.get("model", Path(path).stem), "path": str(path)}
