"""Label sentence Docs with an LLM (a spacy-llm config) or with a recorded LLM set.

Every input sentence ends either annotated (a copy of the input Doc: same words, token
attributes and ``user_data``, but the LLM's entities, ``annotator`` set to the LLM's name and
``source`` to ``"cheap"``, as in ``corpus/cheap/*.spacy``) or as a failure row with its reason:

| reason | meaning |
|---|---|
| ``request_failed`` | the model gave no answer (after its retries) |
| ``truncated`` | the model stopped at its token limit (``finish_reason`` ``"length"``) |
| ``parse_failed`` | the answer could not be turned into entities for these tokens (for span |
| | tasks such as ``spacy.NER.v3``: see ``nerloop.llm.tasks.span_replies``) |
| ``token_mismatch`` | the parsed or recorded Doc has other tokens than the input |
| ``not_in_recorded_set`` | the recorded set does not label this sentence |
| ``split_mismatch`` | the recorded set labels another split's sentence with this id |
| ``no_sent_id`` | the input Doc has no ``sent_id`` to match a recorded set on |
| ``unknown_label`` | the recorded sentence has a label the label scheme does not list |

A live source is driven through the ``llm`` component that the config builds: its task makes
the prompts and parses the answers, its model answers them; the executor in between adds
concurrency, the answer cache, failure capture and usage counting. An answer that came back
but ended as ``truncated``, ``parse_failed`` or ``token_mismatch`` is rejected in the cache, so
a rerun asks the model again.

What a parser had to repair in an answer it could use is kept per sentence: in the annotated
Doc's ``user_data["llm_repairs"]`` (only when there was something) and as rows of
``AnnotationRun.repairs`` (``index``, ``sent_id``, ``split``, ``kind`` and the details), counted
by kind in the summary. Token replies (``nerloop.TokenNER.v1``) record ``dropped``,
``invented``, ``changed``, ``merged``, ``split``, ``length_mismatch``, ``unknown_tag`` and
``iob_repaired``; span replies record ``unknown_label`` and ``not_found`` entries.

The label set comes from the label scheme (``nerloop.labels``): with ``labels`` given, the
task's labels are the scheme's, and for ``spacy.NER`` tasks its descriptions become the
``label_definitions``; without it the config's own settings stand (the token task's default
is the default scheme).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span

from nerloop.corpus import meta
from nerloop.errors import SettingsError
from nerloop.io_utils import MissingInputError, read_docbin
from nerloop.labels import LabelScheme, as_scheme
from nerloop.llm.cache import AnswerCache
from nerloop.llm.cost import cost_summary, estimate_recorded_usage
from nerloop.llm.executor import Answer, PromptExecutor
from nerloop.llm.tasks.span_replies import is_span_task, span_reply_problem, span_reply_repairs
from nerloop.llm.tasks.token_ner.task import ERROR_EXTENSION, REPAIRS_EXTENSION, STATS_EXTENSION

logger = logging.getLogger("nerloop.llm")

RECORDED_PREFIX = "recorded:"
CHEAP_SOURCE = "cheap"
DEFAULT_CONCURRENCY = 4
# doc.user_data key of an annotated Doc's repair records
REPAIRS_KEY = "llm_repairs"
TRUNCATED_FINISH_REASON = "length"


@dataclass
class AnnotationRun:
    """The result of labelling a list of Docs.

    docs (list[Doc]): the annotated sentences, in input order (failures left out).
    failures (list[dict]): one row per failed sentence: ``index``, ``sent_id``, ``reason``,
        ``detail``, ``annotator``.
    summary (dict): counts, usage, time and cost of the run.
    repairs (list[dict]): one row per repair in an annotated sentence: ``index``, ``sent_id``,
        ``split``, ``kind`` and the kind's details.
    """

    docs: list[Doc]
    failures: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    repairs: list[dict[str, Any]] = field(default_factory=list)


def is_recorded(source: str) -> bool:
    return source.startswith(RECORDED_PREFIX)


def default_annotator(source: str) -> str:
    """The annotator name of a source: ``recorded:chatgpt`` -> ``chatgpt``,
    ``configs/llm_token_ner_openai.cfg`` -> ``token_ner_openai``."""
    if is_recorded(source):
        return source[len(RECORDED_PREFIX) :]
    stem = Path(source).stem
    return stem[len("llm_") :] if stem.startswith("llm_") else stem


def labelled_copy(doc: Doc, entities: Sequence[tuple[int, int, str]], annotator: str) -> Doc:
    """A copy of ``doc`` (words, token attributes, ``user_data``) with only ``entities``,
    ``annotator`` set to the LLM's name and ``source`` to ``"cheap"``."""
    out = doc.copy()
    spans = [Span(out, start, end, label=label) for start, end, label in entities]
    out.set_ents(spans, default="outside")
    meta.set_meta(out, annotator=annotator, source=CHEAP_SOURCE)
    return out


def _failure(index: int, doc: Doc, reason: str, detail: str, annotator: str) -> dict[str, Any]:
    return {
        "index": index,
        "sent_id": doc.user_data.get(meta.SENT_ID),
        "split": doc.user_data.get(meta.SPLIT),
        "reason": reason,
        "detail": detail,
        "annotator": annotator,
    }


def _repair_row(index: int, doc: Doc, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": index,
        "sent_id": doc.user_data.get(meta.SENT_ID),
        "split": doc.user_data.get(meta.SPLIT),
        **record,
    }


def _entity_counts(docs: Sequence[Doc]) -> dict[str, Any]:
    counts = Counter(ent.label_ for doc in docs for ent in doc.ents)
    return {"entities": sum(counts.values()), "entities_per_type": dict(sorted(counts.items()))}


def _base_summary(
    source: str, annotator: str, docs: Sequence[Doc], run: AnnotationRun
) -> dict[str, Any]:
    reasons = Counter(row["reason"] for row in run.failures)
    kinds = Counter(row["kind"] for row in run.repairs)
    return {
        "source": source,
        "annotator": annotator,
        "sentences": len(docs),
        "annotated": len(run.docs),
        "failed": len(run.failures),
        "failure_rate": round(len(run.failures) / len(docs), 4) if docs else 0.0,
        "failure_reasons": dict(sorted(reasons.items())),
        "repaired_sentences": len({row["index"] for row in run.repairs}),
        "repairs": dict(sorted(kinds.items())),
        **_entity_counts(run.docs),
    }


# -- recorded sets ----------------------------------------------------------------------------


def annotate_recorded(
    docs: Sequence[Doc],
    set_name: str,
    recorded_dir: Path | str,
    *,
    annotator: str | None = None,
    prices: dict[str, Any] | None = None,
    labels: LabelScheme | Path | str | None = None,
) -> AnnotationRun:
    """Label Docs with a recorded set ``<recorded_dir>/<set_name>.spacy``, matched by ``sent_id``.

    docs (Sequence[Doc]): sentences with ``sent_id`` (and ``split``) in ``user_data``.
    set_name (str): the recorded set (``chatgpt``, ``uniner``, ``llama405b``, ``noisebench``).
    recorded_dir (Path | str): the folder of recorded DocBins (``corpus/cheap``).
    annotator (str | None): the name to set; default the set name.
    prices (dict | None): a price table, to add the estimated cost of these sentences.
    labels (LabelScheme | Path | str | None): a label scheme: a recorded sentence with an entity
        label the scheme does not list fails with reason ``unknown_label``; None: no check.
    RETURNS (AnnotationRun): annotated Docs, failures and summary.
    """
    start = time.perf_counter()
    scheme = as_scheme(labels) if labels is not None else None
    annotator = annotator or set_name
    path = Path(recorded_dir) / f"{set_name}.spacy"
    if not path.exists():
        available = sorted(p.stem for p in Path(recorded_dir).glob("*.spacy"))
        raise MissingInputError(
            f"recorded set {set_name!r} not found at {path} (available: {available or 'none'}); "
            "run `python -m spacy project run preprocess` first"
        )
    vocab = docs[0].vocab if docs else None
    recorded = meta.by_sent_id(read_docbin(path, vocab=vocab))
    run = AnnotationRun(docs=[], failures=[])
    n_word_differences = 0
    for index, doc in enumerate(docs):
        if meta.SENT_ID not in doc.user_data:
            run.failures.append(
                _failure(index, doc, "no_sent_id", "the Doc has no sent_id in user_data", annotator)
            )
            continue
        sent_id = meta.sent_id(doc)
        labelled = recorded.get(sent_id)
        split = doc.user_data.get(meta.SPLIT)
        if labelled is None:
            detail = f"sentence {sent_id} is not labelled by recorded set {set_name!r}"
            run.failures.append(_failure(index, doc, "not_in_recorded_set", detail, annotator))
        elif split is not None and labelled.user_data.get(meta.SPLIT, split) != split:
            detail = (
                f"recorded set {set_name!r} labels {labelled.user_data.get(meta.SPLIT)} "
                f"sentence {sent_id}, the input is a {split} sentence"
            )
            run.failures.append(_failure(index, doc, "split_mismatch", detail, annotator))
        elif len(labelled) != len(doc):
            detail = f"{len(labelled)} recorded tokens, {len(doc)} input tokens"
            run.failures.append(_failure(index, doc, "token_mismatch", detail, annotator))
        elif scheme is not None and any(ent.label_ not in scheme for ent in labelled.ents):
            unknown = sorted({ent.label_ for ent in labelled.ents if ent.label_ not in scheme})
            detail = f"labels {unknown} are not in the label scheme ({', '.join(scheme.labels)})"
            run.failures.append(_failure(index, doc, "unknown_label", detail, annotator))
        else:
            if [t.text for t in labelled] != [t.text for t in doc]:
                n_word_differences += 1
            entities = [(ent.start, ent.end, ent.label_) for ent in labelled.ents]
            run.docs.append(labelled_copy(doc, entities, annotator))
    source = f"{RECORDED_PREFIX}{set_name}"
    run.summary = _base_summary(source, annotator, docs, run)
    run.summary.update(
        {
            "recorded_file": str(path),
            "annotated_with_other_word_forms": n_word_differences,
            "wall_seconds": round(time.perf_counter() - start, 3),
        }
    )
    if prices is not None:
        model = prices.get("recorded", {}).get(set_name, set_name)
        usage = estimate_recorded_usage(run.docs)
        run.summary["cost"] = cost_summary(prices, model, usage, len(run.docs))
    return run


# -- live LLMs ---------------------------------------------------------------------------------


def apply_label_scheme(config: Any, scheme: LabelScheme, where: str = "the config") -> None:
    """Set the labels of a spacy-llm config's ``llm`` task from a label scheme, in place.

    ``nerloop.TokenNER.*`` gets ``labels`` (its tag ids follow from them); ``spacy.NER.*`` and
    ``spacy.SpanCat.*`` get ``labels`` and ``label_definitions`` (the scheme's descriptions;
    none when the scheme has no descriptions).

    config (Config): the config, not interpolated.
    scheme (LabelScheme): the label scheme.
    where (str): the config's name, for errors.
    """
    task = config.get("components", {}).get("llm", {}).get("task")
    name = str(task.get("@llm_tasks", "")) if isinstance(task, dict) else ""
    if name.startswith("nerloop.TokenNER."):
        task.pop("tag_ids", None)
        task["labels"] = list(scheme.labels)
    elif name.startswith(("spacy.NER.", "spacy.SpanCat.")):
        task["labels"] = list(scheme.labels)
        definitions = {label: scheme.description(label) for label in scheme.labels}
        task["label_definitions"] = {
            label: text for label, text in definitions.items() if text
        } or None
    else:
        raise SettingsError(
            f"{where}: cannot set the labels of llm task {name or '(none)'!r} from a label "
            "scheme (supported: nerloop.TokenNER.*, spacy.NER.*, spacy.SpanCat.*)"
        )


def load_llm_pipeline(
    config_path: Path | str,
    overrides: dict[str, Any] | None = None,
    labels: LabelScheme | Path | str | None = None,
) -> tuple[Language, dict[str, Any]]:
    """Build the pipeline of a spacy-llm config and read its ``[annotate]`` settings.

    config_path (Path | str): a config with an ``llm`` component (``configs/llm_*.cfg``).
    overrides (dict | None): config overrides (``{"components.llm.model.name": "gpt-4o"}``).
    labels (LabelScheme | Path | str | None): a label scheme (or its file) whose labels and
        descriptions replace the task's (:func:`apply_label_scheme`); None keeps the config's.
    RETURNS (tuple[Language, dict]): the pipeline and the ``[annotate]`` section (may be empty).
    """
    from spacy.util import load_config
    from spacy_llm.util import assemble_from_config

    from nerloop.llm import models, tasks  # noqa: F401  (registers the nerloop.* functions)
    from nerloop.redact import register_known_secrets

    register_known_secrets()

    config = load_config(Path(config_path), overrides=dict(overrides or {}), interpolate=False)
    if labels is not None:
        apply_label_scheme(config, as_scheme(labels), where=str(config_path))
    settings = dict(config.interpolate().get("annotate", {}))
    with warnings.catch_warnings():
        # Sentences are short: a model without a context length simply means "do not shard".
        warnings.filterwarnings("ignore", message="Task supports sharding, but model does not")
        nlp = assemble_from_config(config)
    return nlp, settings


def llm_component(nlp: Language) -> Any:
    """The pipeline's spacy-llm component."""
    from spacy_llm.pipeline import LLMWrapper

    for _name, component in nlp.pipeline:
        if isinstance(component, LLMWrapper):
            return component
    raise SettingsError(f"the pipeline has no spacy-llm component: {nlp.pipe_names}")


def _unusable_reply(
    task: Any, span_task: bool, answers: Sequence[Answer]
) -> tuple[str, str] | None:
    """(reason, detail) when a sentence's answers cannot be parsed before the task sees them:
    cut off by the token limit (any task), or a span task's reply that is incomplete."""
    for answer in answers:
        if answer.finish_reason == TRUNCATED_FINISH_REASON:
            return (
                "truncated",
                "the model stopped at its token limit (finish_reason 'length'): the reply is "
                "incomplete; raise max_tokens",
            )
    if span_task:
        for answer in answers:
            problem = span_reply_problem(task, answer.text or "")
            if problem is not None:
                return "parse_failed", problem
    return None


def annotate_live(
    docs: Sequence[Doc],
    nlp: Language,
    *,
    cache: AnswerCache | None,
    concurrency: int = DEFAULT_CONCURRENCY,
    annotator: str,
    source: str,
    progress: bool = True,
    prices: dict[str, Any] | None = None,
) -> AnnotationRun:
    """Label Docs with the pipeline's ``llm`` component, through the cache and the executor.

    docs (Sequence[Doc]): the sentences (any vocab; their entities are not shown to the LLM).
    nlp (Language): a pipeline with a spacy-llm component (see :func:`load_llm_pipeline`).
    cache (AnswerCache | None): answer cache; None to ask everything.
    concurrency (int): prompts in flight at once.
    annotator (str): the name to set on annotated Docs.
    source (str): where the labels come from, for the summary (the config path).
    progress (bool): show a progress bar.
    prices (dict | None): a price table, to add the cost to the summary.
    RETURNS (AnnotationRun): annotated Docs, failures and summary.
    """
    from spacy_llm.ty import ModelWithContextLength, supports_sharding

    from nerloop.llm.executor import model_identity, model_name

    start = time.perf_counter()
    component = llm_component(nlp)
    task = component.task
    # spacy-llm 0.7 has no public accessor for a component's model.
    model = component._model
    context_length = model.context_length if isinstance(model, ModelWithContextLength) else None
    sharding = supports_sharding(task)

    # Fresh Docs in the pipeline's vocab: words and spaces only, nothing of the input's labels.
    work_docs = [
        Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
        for doc in docs
    ]
    if sharding:
        generated = [
            (list(p), list(s)) for p, s in task.generate_prompts(work_docs, context_length)
        ]
    else:
        generated = [
            ([p], work_doc) for p, work_doc in zip(task.generate_prompts(work_docs), work_docs)
        ]
    prompts = [prompt for doc_prompts, _ in generated for prompt in doc_prompts]

    executor = PromptExecutor(
        model, cache, concurrency=concurrency, progress=progress, description=annotator
    )
    answers, report = executor.run(prompts)

    run = AnnotationRun(docs=[], failures=[])
    parse_stats: Counter = Counter()
    span_task = is_span_task(task)
    position = 0
    for index, (doc, (doc_prompts, shards)) in enumerate(zip(docs, generated)):
        doc_answers = answers[position : position + len(doc_prompts)]
        position += len(doc_prompts)
        errors = [answer.error for answer in doc_answers if answer.error]
        if errors:
            run.failures.append(_failure(index, doc, "request_failed", errors[0], annotator))
            continue
        failure = _unusable_reply(task, span_task, doc_answers)
        parsed = None
        if failure is None:
            try:
                replies = [[a.text for a in doc_answers]]
                parsed = next(iter(task.parse_responses([shards], replies)))
            except Exception as err:  # a task's parser must not take the whole run down
                failure = ("parse_failed", f"{type(err).__name__}: {err}")
        if parsed is not None and failure is None:
            parse_stats.update(parsed._.get(STATS_EXTENSION) or {})
            error = parsed._.get(ERROR_EXTENSION)
            if error:
                failure = ("parse_failed", error)
            elif [t.text for t in parsed] != [t.text for t in doc]:
                detail = f"the parsed Doc has {len(parsed)} tokens, the input {len(doc)}"
                failure = ("token_mismatch", detail)
        if failure is not None:
            reason, detail = failure
            run.failures.append(_failure(index, doc, reason, detail, annotator))
            if cache is not None:
                for answer in doc_answers:
                    cache.reject(answer.key, reason)
            continue
        entities = [(ent.start, ent.end, ent.label_) for ent in parsed.ents]
        labelled = labelled_copy(doc, entities, annotator)
        repairs = list(parsed._.get(REPAIRS_EXTENSION) or [])
        if span_task:
            for answer in doc_answers:
                repairs.extend(span_reply_repairs(task, answer.text, parsed))
        if repairs:
            labelled.user_data[REPAIRS_KEY] = repairs
            run.repairs.extend(_repair_row(index, doc, record) for record in repairs)
        run.docs.append(labelled)

    run.summary = _base_summary(source, annotator, docs, run)
    wall = time.perf_counter() - start
    identity = model_identity(model)
    run.summary.update(
        {
            "task": type(task).__name__,
            "labels": list(getattr(task, "labels", ()) or ()),
            "model": identity,
            "endpoint": identity.get("base_url") or identity.get("endpoint") or None,
            "concurrency": concurrency,
            "requests": report.to_dict(),
            "parse_repairs": dict(sorted(parse_stats.items())),
            "wall_seconds": round(wall, 3),
            "sentences_per_second": round(len(docs) / wall, 2) if wall > 0 else None,
        }
    )
    if prices is not None:
        run.summary["cost"] = cost_summary(
            prices,
            model_name(model),
            report.usage_all,
            len(run.docs),
            wall_seconds=report.wall_seconds,
        )
    return run


def annotate_docs(
    docs: Sequence[Doc],
    source: str,
    *,
    recorded_dir: Path | str = Path("corpus/cheap"),
    cache_dir: Path | str | None = Path("cache/llm"),
    concurrency: int | None = None,
    annotator: str | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    prices: dict[str, Any] | None = None,
    labels: LabelScheme | Path | str | None = None,
) -> AnnotationRun:
    """Label Docs from a source: ``recorded:<set>`` or the path of a spacy-llm config.

    docs (Sequence[Doc]): the sentences.
    source (str): ``recorded:<set>`` or ``configs/llm_*.cfg``.
    recorded_dir (Path | str): folder of the recorded DocBins.
    cache_dir (Path | str | None): folder of the answer cache (live sources); None for none.
    concurrency (int | None): prompts in flight; default the config's ``[annotate]
        concurrency``, else 4.
    annotator (str | None): the name to set; default the config's ``[annotate] annotator``,
        else derived from the source (:func:`default_annotator`).
    overrides (dict | None): config overrides for a live source.
    progress (bool): show a progress bar.
    prices (dict | None): a price table, to add costs to the summary.
    labels (LabelScheme | Path | str | None): the label scheme (or its file): the live task's
        labels and definitions (:func:`apply_label_scheme`), the check of a recorded set's
        labels; None keeps the config's labels and checks nothing.
    RETURNS (AnnotationRun): annotated Docs, failures and summary.
    """
    scheme = as_scheme(labels) if labels is not None else None
    if is_recorded(source):
        return annotate_recorded(
            docs,
            source[len(RECORDED_PREFIX) :],
            recorded_dir,
            annotator=annotator,
            prices=prices,
            labels=scheme,
        )
    nlp, settings = load_llm_pipeline(source, overrides, labels=scheme)
    annotator = annotator or settings.get("annotator") or default_annotator(source)
    concurrency = int(concurrency or settings.get("concurrency") or DEFAULT_CONCURRENCY)
    cache = AnswerCache(cache_dir) if cache_dir is not None else None
    try:
        return annotate_live(
            docs,
            nlp,
            cache=cache,
            concurrency=concurrency,
            annotator=annotator,
            source=str(source),
            progress=progress,
            prices=prices,
        )
    finally:
        if cache is not None:
            cache.close()
