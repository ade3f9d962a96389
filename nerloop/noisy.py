"""Learning from noisy cheap (LLM) labels: a trained tagger judges every cheap sentence.

The *judge* is a trained ``bio_ner`` pipeline (the LLM-only model, or a model trained on the
mix). It tags each cheap sentence; per token, its *confidence* is the probability of the tag it
chose (the top probability, unless the IOB2 constraint of its decoder overrode the top tag).
Three methods use the judgement, each a pure function of the Docs and the judgements (copies
come out, in the input order, one per input Doc: a sentence is never dropped). Only Docs whose
``source`` is ``cheap`` are judged or changed; expert sentences are never touched.

- ``downweight`` (confident disagreement): where the judge's tags differ from the LLM's and its
  confidence on the differing tokens (their ``mean``, or ``max``) is at least ``threshold``, the
  cheap sentence's weight is multiplied by ``max(floor, 1 - share)``, ``share`` being the
  differing tokens' share of the sentence.
- ``relabel`` (self-training): where the judge is confident on every token (each confidence at
  least ``threshold``) and its tags differ from the LLM's, its entities replace the LLM's, and
  the sentence's ``annotator`` becomes ``self_training``; the others keep their LLM labels.
- ``droptypes``: cheap entities of a type that the judge never predicts confidently (no
  predicted entity of that type whose token confidences all reach ``threshold``, over all cheap
  sentences) are removed; the sentence stays, with its other entities.

``none`` leaves the corpus as mixed. Every method returns the Docs and a JSON-serialisable report
(counts in and out, sentences reweighted or relabelled, mean weight, entities added and removed).
Prediction has no randomness (dropout is off); the seed is fixed before it all the same.
``mix_files_noisy`` is ``scripts/mix.py``'s step (``--noisy``, ``--judge-model``);
``nerloop.budget.init_model`` reads a ``[noisy]`` settings section (``read_noisy_section``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import fix_random_seed

from nerloop.corpus import meta
from nerloop.errors import NerloopError, SettingsError
from nerloop.eval.metrics import doc_to_iob2
from nerloop.eval.pipeline import load_pipeline, predict_with_probs, tagger_of
from nerloop.io_utils import input_hashes
from nerloop.mixing import (
    CHEAP_SOURCE,
    MixedCorpus,
    mix_files,
    mix_from_files,
    noisy_report_path,
    write_mixed,
)

NONE = "none"
DOWNWEIGHT = "downweight"
RELABEL = "relabel"
DROPTYPES = "droptypes"
NOISY_METHODS = (NONE, DOWNWEIGHT, RELABEL, DROPTYPES)
AGGREGATES = ("mean", "max")
# the keys of a settings file's [noisy] section (read by nerloop.budget.init_model)
NOISY_KEYS = ("method", "threshold", "floor", "aggregate")
SELF_TRAINING_ANNOTATOR = "self_training"

Entity = tuple[int, int, str]


class JudgementError(NerloopError, ValueError):
    """A cheap sentence without a usable judgement (none, or one for other tokens)."""


@dataclass(frozen=True)
class NoisySettings:
    """How cheap labels are treated after mixing (see the module docstring).

    method (str): ``none``, ``downweight``, ``relabel`` or ``droptypes``.
    threshold (float): The judge's confidence that counts as confident, in (0, 1].
    floor (float): ``downweight``: the smallest factor a weight is multiplied by, in (0, 1].
    aggregate (str): ``downweight``: ``mean`` or ``max`` confidence on the differing tokens.
    """

    method: str = NONE
    threshold: float = 0.9
    floor: float = 0.1
    aggregate: str = "mean"

    def __post_init__(self) -> None:
        if self.method not in NOISY_METHODS:
            raise SettingsError(
                f"noisy method must be one of {', '.join(NOISY_METHODS)}, not {self.method!r}"
            )
        if self.aggregate not in AGGREGATES:
            raise SettingsError(
                f"noisy aggregate must be one of {', '.join(AGGREGATES)}, not {self.aggregate!r}"
            )
        for name in ("threshold", "floor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SettingsError(f"noisy {name} must be a number, not {value!r}")
            if not 0 < value <= 1:
                raise SettingsError(f"noisy {name} must be in (0, 1], not {value!r}")
            object.__setattr__(self, name, float(value))

    def __str__(self) -> str:
        if self.method == NONE:
            return NONE
        if self.method == DOWNWEIGHT:
            return (
                f"{DOWNWEIGHT}(threshold={self.threshold:g}, floor={self.floor:g}, "
                f"aggregate={self.aggregate})"
            )
        return f"{self.method}(threshold={self.threshold:g})"

    @property
    def active(self) -> bool:
        """Whether the method changes anything (needs a judge)."""
        return self.method != NONE

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict."""
        return asdict(self)


def read_noisy_section(values: Mapping[str, Any] | None, source: Path | str = "") -> NoisySettings:
    """The ``[noisy]`` section of a settings file (None or absent keys: the defaults).

    values (Optional[Mapping[str, Any]]): The section's keys and values.
    source (Path | str): The settings file, for the error messages.
    RETURNS (NoisySettings): The checked settings.
    """
    where = f"{source}: " if source else ""
    values = dict(values or {})
    unknown = sorted(set(values) - set(NOISY_KEYS))
    if unknown:
        raise SettingsError(
            f"{where}[noisy] has unknown settings {', '.join(unknown)}; "
            f"known: {', '.join(NOISY_KEYS)}"
        )
    try:
        return NoisySettings(**values)
    except SettingsError as err:
        raise SettingsError(f"{where}[noisy] {err}") from None


@dataclass(frozen=True)
class Judgement:
    """The judge's view of one sentence.

    tags (List[str]): Its IOB2 tag per token.
    confidences (numpy.ndarray): The probability of its own tag per token.
    entities (List[Tuple[int, int, str]]): Its entities (start token, end token, label).
    """

    tags: list[str]
    confidences: numpy.ndarray
    entities: list[Entity]


@dataclass(frozen=True)
class Disagreement:
    """How one cheap sentence's labels and the judge's differ.

    n_tokens (int): Tokens of the sentence.
    n_differ (int): Tokens whose cheap and judged tags differ.
    confidence (Optional[float]): The judge's aggregated confidence on those tokens (None when
        none differ).
    confident (bool): Whether that confidence reaches the threshold.
    """

    n_tokens: int
    n_differ: int
    confidence: float | None
    confident: bool

    @property
    def share(self) -> float:
        """The differing tokens' share of the sentence (0 for an empty sentence)."""
        return self.n_differ / self.n_tokens if self.n_tokens else 0.0


@dataclass
class NoisyResult:
    """The Docs after a method (one per input Doc, in order) and the method's report."""

    docs: list[Doc]
    report: dict[str, Any]


# -- scoring helpers (pure, on tags and probabilities) --------------------------------------------


def own_tag_confidences(
    probs: numpy.ndarray, tags: Sequence[str], tag_names: Sequence[str]
) -> numpy.ndarray:
    """The probability of each token's chosen tag.

    probs (numpy.ndarray): ``(n_tokens, n_tags)`` probabilities, columns in ``tag_names`` order.
    tags (Sequence[str]): The chosen IOB2 tag per token.
    tag_names (Sequence[str]): The column names.
    RETURNS (numpy.ndarray): ``(n_tokens,)`` float64 confidences.
    """
    index = {name: i for i, name in enumerate(tag_names)}
    columns = numpy.asarray([index[tag] for tag in tags], dtype=int)
    probs = numpy.asarray(probs, dtype="float64").reshape(len(columns), len(tag_names))
    return probs[numpy.arange(len(columns)), columns]


def disagreement(
    cheap_tags: Sequence[str],
    judged_tags: Sequence[str],
    confidences: Sequence[float],
    *,
    threshold: float,
    aggregate: str = "mean",
) -> Disagreement:
    """Compare a sentence's cheap tags with the judge's on the tokens where they differ.

    cheap_tags (Sequence[str]): The LLM's IOB2 tags.
    judged_tags (Sequence[str]): The judge's IOB2 tags.
    confidences (Sequence[float]): The judge's confidence in its own tag, per token.
    threshold (float): The confidence that counts as confident.
    aggregate (str): ``mean`` or ``max`` of the confidences on the differing tokens.
    RETURNS (Disagreement): The counts, the aggregated confidence and whether it is confident.
    """
    if not len(cheap_tags) == len(judged_tags) == len(confidences):
        raise JudgementError(
            f"{len(cheap_tags)} cheap tags, {len(judged_tags)} judged tags and "
            f"{len(confidences)} confidences for one sentence"
        )
    differ = [i for i, (a, b) in enumerate(zip(cheap_tags, judged_tags)) if a != b]
    if not differ:
        return Disagreement(len(cheap_tags), 0, None, False)
    values = numpy.asarray(confidences, dtype="float64")[differ]
    confidence = float(values.mean() if aggregate == "mean" else values.max())
    return Disagreement(len(cheap_tags), len(differ), confidence, confidence >= threshold)


def downweight_factor(found: Disagreement, floor: float) -> float:
    """``max(floor, 1 - share)`` for a confident disagreement, else 1."""
    return max(floor, 1.0 - found.share) if found.confident else 1.0


def confident_everywhere(confidences: Sequence[float], threshold: float) -> bool:
    """Whether every token's confidence reaches the threshold (never for an empty sentence)."""
    values = numpy.asarray(confidences, dtype="float64")
    return bool(len(values)) and bool((values >= threshold).all())


def confident_types(judgements: Mapping[int, Judgement], threshold: float) -> set[str]:
    """The entity types the judge predicts at least once with every token's confidence at
    least ``threshold``."""
    found: set[str] = set()
    for judgement in judgements.values():
        for start, end, label in judgement.entities:
            if confident_everywhere(judgement.confidences[start:end], threshold):
                found.add(label)
    return found


# -- judging ---------------------------------------------------------------------------------------


def is_cheap(doc: Doc) -> bool:
    """Whether a Doc carries cheap labels (``source`` is ``cheap``)."""
    return doc.user_data.get(meta.SOURCE) == CHEAP_SOURCE


def judge(
    nlp: Language,
    docs: Sequence[Doc],
    *,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[int, Judgement]:
    """Tag the cheap Docs with the judge and keep its tags, confidences and entities.

    nlp (Language): A trained pipeline with a ``bio_ner`` component.
    docs (Sequence[Doc]): The mixed Docs; only the cheap ones are tagged.
    seed (int): Fixed before prediction.
    batch_size (int): Docs per forward pass.
    progress (bool): Show a progress bar.
    RETURNS (Dict[int, Judgement]): By sentence id, one judgement per cheap Doc.
    """
    cheap = [doc for doc in docs if is_cheap(doc)]
    fix_random_seed(seed)
    predicted, probs = predict_with_probs(nlp, cheap, batch_size=batch_size, progress=progress)
    tag_names = tagger_of(nlp).tag_names
    judgements: dict[int, Judgement] = {}
    for doc, tagged, doc_probs in zip(cheap, predicted, probs, strict=True):
        tags = doc_to_iob2(tagged)
        judgements[meta.sent_id(doc)] = Judgement(
            tags=tags,
            confidences=own_tag_confidences(doc_probs, tags, tag_names),
            entities=entities_of(tagged),
        )
    return judgements


def entities_of(doc: Doc) -> list[Entity]:
    """A Doc's entities as (start token, end token, label)."""
    return [(ent.start, ent.end, ent.label_) for ent in doc.ents]


def _judgement_for(doc: Doc, judgements: Mapping[int, Judgement]) -> Judgement:
    key = meta.sent_id(doc)
    if key not in judgements:
        raise JudgementError(f"cheap sentence {key} has no judgement: judge the mixed Docs")
    judgement = judgements[key]
    if len(judgement.tags) != len(doc) or len(judgement.confidences) != len(doc):
        raise JudgementError(
            f"cheap sentence {key} has {len(doc)} tokens but its judgement "
            f"{len(judgement.tags)}: judge the same Docs"
        )
    return judgement


def _with_entities(doc: Doc, entities: Sequence[Entity]) -> Doc:
    doc.set_ents([Span(doc, s, e, label=label) for s, e, label in entities], default="outside")
    return doc


def _weights_report(docs: Sequence[Doc]) -> dict[str, Any]:
    cheap = [meta.weight(doc) for doc in docs if is_cheap(doc)]
    return {
        "mean_weight": float(numpy.mean([meta.weight(doc) for doc in docs])) if docs else 0.0,
        "mean_cheap_weight": float(numpy.mean(cheap)) if cheap else 0.0,
    }


def _report(
    settings: NoisySettings, docs_in: Sequence[Doc], docs_out: Sequence[Doc], **values: Any
) -> dict[str, Any]:
    n_cheap = sum(1 for doc in docs_in if is_cheap(doc))
    if len(docs_out) != len(docs_in):  # a method never drops or adds a sentence
        raise AssertionError(f"{len(docs_in)} Docs in but {len(docs_out)} out")
    return {
        "method": settings.method,
        "settings": settings.as_dict(),
        "description": str(settings),
        "n_docs_in": len(docs_in),
        "n_docs_out": len(docs_out),
        "n_cheap": n_cheap,
        "n_untouched_other": len(docs_in) - n_cheap,
        **values,
        "mean_cheap_weight_before": _weights_report(docs_in)["mean_cheap_weight"],
        **_weights_report(docs_out),
    }


# -- the methods -----------------------------------------------------------------------------------


def downweight_from_judgements(
    docs: Sequence[Doc], judgements: Mapping[int, Judgement], settings: NoisySettings
) -> NoisyResult:
    """Lower the weight of the cheap sentences the judge confidently disagrees with.

    docs (Sequence[Doc]): The mixed Docs (not changed).
    judgements (Mapping[int, Judgement]): By sentence id, at least every cheap Doc's.
    settings (NoisySettings): ``threshold``, ``floor`` and ``aggregate`` are used.
    RETURNS (NoisyResult): Copies of the Docs, and the report (``n_disagreeing``,
        ``n_reweighted``, ``reweighted_ids``, the mean weights).
    """
    out: list[Doc] = []
    reweighted: list[int] = []
    n_disagreeing = 0
    for doc in docs:
        copy = doc.copy()
        if is_cheap(doc):
            judgement = _judgement_for(doc, judgements)
            found = disagreement(
                doc_to_iob2(doc),
                judgement.tags,
                judgement.confidences,
                threshold=settings.threshold,
                aggregate=settings.aggregate,
            )
            n_disagreeing += found.n_differ > 0
            factor = downweight_factor(found, settings.floor)
            if factor < 1.0:
                meta.set_meta(copy, weight=float(meta.weight(doc) * factor))
                reweighted.append(meta.sent_id(doc))
        out.append(copy)
    report = _report(
        settings,
        docs,
        out,
        n_disagreeing=n_disagreeing,
        n_changed=len(reweighted),
        n_reweighted=len(reweighted),
        reweighted_ids=reweighted,
        entities_added=0,
        entities_removed=0,
    )
    return NoisyResult(out, report)


def relabel_from_judgements(
    docs: Sequence[Doc], judgements: Mapping[int, Judgement], settings: NoisySettings
) -> NoisyResult:
    """Replace the cheap labels of the sentences the judge is confident on everywhere.

    docs (Sequence[Doc]): The mixed Docs (not changed).
    judgements (Mapping[int, Judgement]): By sentence id, at least every cheap Doc's.
    settings (NoisySettings): ``threshold`` is used.
    RETURNS (NoisyResult): Copies of the Docs (relabelled ones with the judge's entities and
        ``annotator`` ``self_training``; ids, weights and other metadata kept), and the report
        (``n_confident``, ``n_relabelled``, ``relabelled_ids``, ``n_confirmed`` (confident and
        already the same), ``n_emptied`` (relabelled to no entity), entities added and removed).
    """
    out: list[Doc] = []
    relabelled: list[int] = []
    n_confident = n_emptied = added = removed = 0
    for doc in docs:
        copy = doc.copy()
        if is_cheap(doc):
            judgement = _judgement_for(doc, judgements)
            if confident_everywhere(judgement.confidences, settings.threshold):
                n_confident += 1
                if judgement.tags != doc_to_iob2(doc):
                    before, after = set(entities_of(doc)), set(judgement.entities)
                    added += len(after - before)
                    removed += len(before - after)
                    n_emptied += bool(before) and not after
                    _with_entities(copy, judgement.entities)
                    meta.set_meta(copy, annotator=SELF_TRAINING_ANNOTATOR)
                    relabelled.append(meta.sent_id(doc))
        out.append(copy)
    report = _report(
        settings,
        docs,
        out,
        n_confident=n_confident,
        n_changed=len(relabelled),
        n_relabelled=len(relabelled),
        relabelled_ids=relabelled,
        n_confirmed=n_confident - len(relabelled),
        n_emptied=n_emptied,
        entities_added=added,
        entities_removed=removed,
    )
    return NoisyResult(out, report)


def droptypes_from_judgements(
    docs: Sequence[Doc], judgements: Mapping[int, Judgement], settings: NoisySettings
) -> NoisyResult:
    """Remove the cheap entities of the types the judge never predicts confidently.

    docs (Sequence[Doc]): The mixed Docs (not changed).
    judgements (Mapping[int, Judgement]): By sentence id, at least every cheap Doc's.
    settings (NoisySettings): ``threshold`` is used.
    RETURNS (NoisyResult): Copies of the Docs, and the report (``confident_types``,
        ``dropped_types``, ``n_changed``, ``changed_ids``, ``entities_removed`` per type).
    """
    cheap_judgements = {
        meta.sent_id(doc): _judgement_for(doc, judgements) for doc in docs if is_cheap(doc)
    }
    keep = confident_types(cheap_judgements, settings.threshold)
    out: list[Doc] = []
    changed: list[int] = []
    removed: dict[str, int] = {}
    for doc in docs:
        copy = doc.copy()
        if is_cheap(doc):
            entities = entities_of(doc)
            kept = [ent for ent in entities if ent[2] in keep]
            if len(kept) != len(entities):
                for _, _, label in entities:
                    if label not in keep:
                        removed[label] = removed.get(label, 0) + 1
                _with_entities(copy, kept)
                changed.append(meta.sent_id(doc))
        out.append(copy)
    report = _report(
        settings,
        docs,
        out,
        confident_types=sorted(keep),
        dropped_types=sorted(removed),
        n_changed=len(changed),
        changed_ids=changed,
        entities_added=0,
        entities_removed=sum(removed.values()),
        entities_removed_by_type=dict(sorted(removed.items())),
    )
    return NoisyResult(out, report)


METHODS = {
    DOWNWEIGHT: downweight_from_judgements,
    RELABEL: relabel_from_judgements,
    DROPTYPES: droptypes_from_judgements,
}


def apply_noisy(
    docs: Sequence[Doc],
    nlp: Language | None,
    settings: NoisySettings,
    *,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = False,
) -> NoisyResult:
    """Judge the cheap Docs with ``nlp`` and apply the settings' method.

    docs (Sequence[Doc]): The mixed Docs (not changed).
    nlp (Optional[Language]): The judge, a trained ``bio_ner`` pipeline (None only for ``none``).
    settings (NoisySettings): The method and its thresholds.
    seed (int): Fixed before prediction.
    batch_size (int): Docs per forward pass.
    progress (bool): Show a progress bar.
    RETURNS (NoisyResult): Copies of the Docs, one per input Doc in order, and the report.
    """
    if not settings.active:
        out = [doc.copy() for doc in docs]
        return NoisyResult(out, _report(settings, docs, out, n_changed=0))
    if nlp is None:
        raise SettingsError(f"noisy method {settings.method} needs a judge model")
    judgements = judge(nlp, docs, seed=seed, batch_size=batch_size, progress=progress)
    result = METHODS[settings.method](docs, judgements, settings)
    result.report["seed"] = seed
    return result


def mix_files_noisy(
    cheap_path: Path,
    gold_path: Path,
    output_path: Path,
    summary_path: Path,
    *,
    noisy: NoisySettings,
    judge_model: Path | None = None,
    progress: bool = False,
    **mix_options: Any,
) -> dict[str, Any]:
    """``nerloop.mixing.mix_files``, then the ``judge_model`` pipeline judges the cheap
    sentences with the ``noisy`` method: the DocBin holds the result, the method's report lies
    beside it (``<output stem>.noisy.json``, with the judge's path and content hash) and the
    summary names it under ``noisy``. With the method ``none`` it is ``mix_files``.

    noisy (NoisySettings): The method and its thresholds.
    judge_model (Optional[Path]): A trained ``bio_ner`` pipeline (e.g. the LLM-only model);
        needed by every method but ``none``, refused with ``none``.
    progress (bool): Show a progress bar while judging.
    mix_options: The options of ``mix_files`` (``expert_ids``, ``budget``, ``seed``, ...); the
        ``seed`` is fixed before judging too.
    RETURNS (dict): The summary written to ``summary_path``.
    """
    if noisy.active and judge_model is None:
        raise SettingsError(
            f"noisy method {noisy.method} needs a judge: give --judge-model PATH (a trained "
            "bio_ner pipeline, e.g. the LLM-only model)"
        )
    if judge_model is not None and not noisy.active:
        raise SettingsError(
            "--judge-model is only used with --noisy downweight, relabel or droptypes"
        )
    if not noisy.active:
        return mix_files(cheap_path, gold_path, output_path, summary_path, **mix_options)
    assert judge_model is not None
    mixed = mix_from_files(cheap_path, gold_path, output_path, **mix_options)
    seed = int(mix_options.get("seed", 0))
    judged = apply_noisy(
        mixed.docs, load_pipeline(judge_model), noisy, seed=seed, progress=progress
    )
    report_path = noisy_report_path(output_path)
    report = {
        "judge_model": str(judge_model),
        "judge_model_hash": input_hashes({"judge": str(judge_model)})["judge"],
        "corpus": str(output_path),
        **judged.report,
    }
    summary = {
        **mixed.summary,
        "noisy": {
            "method": noisy.method,
            "settings": noisy.as_dict(),
            "judge_model": str(judge_model),
            "n_changed": judged.report["n_changed"],
            "report": str(report_path),
        },
    }
    write_mixed(MixedCorpus(judged.docs, summary), output_path, summary_path, report)
    return summary
