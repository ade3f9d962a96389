"""Pick the cheap annotator: entity P/R/F1 of several LLM sources on a gold sample, beside cost.

    python -m scripts.annotate_eval corpus/train.spacy \
        --source configs/llm_token_ner_openai.cfg --source configs/llm_spacy_ner_openai.cfg \
        --source recorded:chatgpt --source recorded:llama405b \
        --n-sentences 200 --seed 0 --output metrics/annotate_eval.json

Every source labels the same seeded sample of gold sentences (sentences used as few-shot
examples by any source are never sampled). Scores are seqeval entity scores on the sentences
a source annotated (``coverage`` says how many), and on the whole sample with failures counted
as sentences without entities.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spacy.tokens import Doc

from nerloop.corpus import meta
from nerloop.eval.metrics import doc_entity_scores
from nerloop.labels import LabelScheme, as_scheme
from nerloop.llm.annotator import (
    RECORDED_PREFIX,
    AnnotationRun,
    annotate_live,
    annotate_recorded,
    default_annotator,
    is_recorded,
    llm_component,
    load_llm_pipeline,
)
from nerloop.llm.cache import AnswerCache


def prompt_example_texts(nlp: Any) -> set[str]:
    """Texts of the few-shot examples a pipeline's llm task puts in its prompts."""
    task = llm_component(nlp).task
    # spacy-llm's built-in tasks keep their examples in ``_prompt_examples`` (no public accessor).
    return {str(getattr(eg, "text", "")) for eg in getattr(task, "_prompt_examples", None) or []}


def sample_gold(
    gold: Sequence[Doc], n_sentences: int, seed: int, exclude_texts: set[str]
) -> list[Doc]:
    """A seeded sample of gold Docs (in corpus order), leaving out ``exclude_texts``."""
    eligible = [i for i, doc in enumerate(gold) if doc.text not in exclude_texts]
    chosen = random.Random(seed).sample(eligible, min(n_sentences, len(eligible)))
    return [gold[i] for i in sorted(chosen)]


def score_run(sample: Sequence[Doc], run: AnnotationRun) -> dict[str, Any]:
    """Entity scores of one source's run against the gold sample."""
    by_index = {}
    failed = {row["index"] for row in run.failures}
    annotated = iter(run.docs)
    for i in range(len(sample)):
        if i not in failed:
            by_index[i] = next(annotated)
    covered_gold = [sample[i] for i in sorted(by_index)]
    covered_pred = [by_index[i] for i in sorted(by_index)]
    with_failures = []
    for i, doc in enumerate(sample):
        if i in by_index:
            with_failures.append(by_index[i])
        else:
            empty = doc.copy()
            empty.set_ents([], default="outside")
            with_failures.append(empty)
    scores = doc_entity_scores(covered_gold, covered_pred) if covered_gold else None
    return {
        "coverage": round(len(covered_gold) / len(sample), 4) if sample else 0.0,
        "scores": scores,
        "scores_failures_as_empty": doc_entity_scores(list(sample), with_failures),
    }


def evaluate_sources(
    gold: Sequence[Doc],
    sources: Sequence[str],
    *,
    n_sentences: int,
    seed: int,
    recorded_dir: Path,
    cache_dir: Path | None,
    prices: dict[str, Any] | None,
    concurrency: int | None = None,
    progress: bool = True,
    labels: LabelScheme | Path | str | None = None,
) -> dict[str, Any]:
    """Label one gold sample with every source and score each.

    gold (Sequence[Doc]): gold sentences (with ``sent_id``/``split`` for recorded sources).
    sources (Sequence[str]): configs and/or ``recorded:<set>``.
    n_sentences (int): sample size.
    seed (int): sample seed.
    recorded_dir (Path): folder of recorded DocBins.
    cache_dir (Path | None): answer cache folder.
    prices (dict | None): price table, for costs.
    concurrency (int | None): prompts in flight (default: each config's own).
    progress (bool): show progress bars.
    labels (LabelScheme | Path | str | None): the label scheme every source uses (see
        ``annotate_docs``); None keeps each config's labels.
    RETURNS (dict): the sample and, per source, scores, coverage, requests and cost.
    """
    scheme = as_scheme(labels) if labels is not None else None
    pipelines = {}
    excluded: set[str] = set()
    for source in sources:
        if not is_recorded(source):
            nlp, settings = load_llm_pipeline(source, labels=scheme)
            pipelines[source] = (nlp, settings)
            excluded |= prompt_example_texts(nlp)
    sample = sample_gold(gold, n_sentences, seed, excluded)
    results = []
    cache = AnswerCache(cache_dir) if cache_dir is not None and pipelines else None
    try:
        for source in sources:
            if is_recorded(source):
                run = annotate_recorded(
                    sample,
                    source[len(RECORDED_PREFIX) :],
                    recorded_dir,
                    prices=prices,
                    labels=scheme,
                )
            else:
                nlp, settings = pipelines[source]
                run = annotate_live(
                    sample,
                    nlp,
                    cache=cache,
                    concurrency=int(concurrency or settings.get("concurrency") or 4),
                    annotator=settings.get("annotator") or default_annotator(source),
                    source=source,
                    progress=progress,
                    prices=prices,
                )
            results.append({**run.summary, **score_run(sample, run)})
    finally:
        if cache is not None:
            cache.close()
    return {
        "n_sentences": len(sample),
        "seed": seed,
        "sample_sent_ids": [doc.user_data.get(meta.SENT_ID) for doc in sample],
        "excluded_few_shot_sentences": len(excluded),
        "sources": results,
    }


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def markdown_table(report: dict[str, Any]) -> str:
    """Scores beside costs, one row per source."""
    lines = [
        f"Entity scores (seqeval, micro) on {report['n_sentences']:,} gold sentences "
        f"(seed {report['seed']}); P/R/F1 on the sentences each source annotated.",
        "",
        "| source | coverage | P | R | F1 | F1 (failures as empty) | LLM $/1k sent | "
        "expert $/1k sent | s/1k sent |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["sources"]:
        scores = row["scores"] or {}
        cost = row.get("cost") or {}
        lines.append(
            f"| {row['annotator']} | {row['coverage']:.1%} | "
            f"{_fmt(scores.get('precision'), '.3f')} | {_fmt(scores.get('recall'), '.3f')} | "
            f"{_fmt(scores.get('f1'), '.3f')} | "
            f"{row['scores_failures_as_empty']['f1']:.3f} | "
            f"{_fmt(cost.get('llm_usd_per_1000_sentences'), '.4f')} | "
            f"{_fmt(cost.get('expert_usd_per_1000_sentences'), '.2f')} | "
            f"{_fmt(cost.get('wall_seconds_per_1000_sentences'), '.1f')} |"
        )
    return "\n".join(lines) + "\n"
