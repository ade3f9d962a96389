"""Mix expert (gold) labels into a cheap LLM-labelled corpus.

One training DocBin comes out: the chosen expert sentences carry their gold labels, every other
sentence of the cheap set its cheap labels, and no sentence occurs twice. Each Doc records where its
labels came from (``source``: ``cheap`` or ``expert``) and its loss ``weight``.

Two settings of the study are covered by the expert *pool* (the sentences experts may label):

- ``rest``: the pool is the gold train set minus the cheap set, and expert sentences are added to
  the cheap set (the Llama-3.1-405B set: 2,037 cheap sentences, a pool of 12,004).
- ``cheap``: the pool is the cheap set itself, and experts relabel a subset of it, whose cheap
  version is replaced (the ChatGPT set, which covers all of train).
- ``auto`` picks ``cheap`` when the cheap set covers every gold train sentence, else ``rest``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
from spacy.tokens import Doc
from spacy.vocab import Vocab

from nerloop.corpus import meta
from nerloop.errors import NerloopError, SettingsError
from nerloop.io_utils import atomic_write_json, read_docbin, write_docbin

POOL_SETTINGS = ("auto", "rest", "cheap")
CHEAP_SOURCE = "cheap"
EXPERT_SOURCE = "expert"


class ExpertPoolError(NerloopError, ValueError):
    """The expert sentences asked for cannot be taken from the expert pool."""


class SentenceMismatchError(NerloopError, ValueError):
    """The cheap and the expert Doc of one sentence have different words."""


@dataclass
class MixedCorpus:
    """The mixed training Docs (sorted by sentence id) and their provenance summary."""

    docs: list[Doc]
    summary: dict[str, Any]


def resolve_pool_setting(cheap_ids: Iterable[int], gold_ids: Iterable[int], pool: str) -> str:
    """``rest`` or ``cheap``: ``auto`` becomes ``cheap`` when the cheap set covers all of gold."""
    if pool not in POOL_SETTINGS:
        raise SettingsError(f"pool must be one of {POOL_SETTINGS}, not {pool!r}")
    if pool != "auto":
        return pool
    return "cheap" if set(gold_ids) <= set(cheap_ids) else "rest"


def expert_pool(cheap_ids: Iterable[int], gold_ids: Iterable[int], pool: str = "auto") -> list[int]:
    """The sorted sentence ids experts may label in the given pool setting.

    cheap_ids (Iterable[int]): Sentence ids of the cheap set.
    gold_ids (Iterable[int]): Sentence ids of the gold train set.
    pool (str): ``rest``, ``cheap`` or ``auto`` (see the module docstring).
    RETURNS (List[int]): The pool, sorted.
    """
    cheap, gold = set(cheap_ids), set(gold_ids)
    missing = sorted(cheap - gold)
    if missing:
        raise ExpertPoolError(
            f"{len(missing)} cheap sentences have no gold version (e.g. {missing[:5]}): "
            "are the cheap and gold DocBins from the same preprocess run?"
        )
    setting = resolve_pool_setting(cheap, gold, pool)
    return sorted(gold - cheap) if setting == "rest" else sorted(cheap)


def budget_from_percent(budget_pct: float, n_cheap: int) -> int:
    """Expert sentences for a budget given as a percentage of the cheap set (rounded half up)."""
    if budget_pct < 0:
        raise ExpertPoolError(f"a budget cannot be negative: {budget_pct}%")
    return int(math.floor(budget_pct / 100.0 * n_cheap + 0.5))


def draw_expert_ids(pool_ids: Sequence[int], budget: int, seed: int) -> list[int]:
    """Draw ``budget`` sentence ids from the pool without replacement; the same seed gives the
    same ids whatever the order of ``pool_ids``.

    pool_ids (Sequence[int]): The expert pool.
    budget (int): How many sentences to draw.
    seed (int): Random seed.
    RETURNS (List[int]): The drawn ids, sorted.
    """
    pool = sorted(set(pool_ids))
    if budget < 0:
        raise ExpertPoolError(f"an expert budget cannot be negative: {budget}")
    if budget > len(pool):
        raise ExpertPoolError(
            f"an expert budget of {budget} sentences is larger than the pool ({len(pool)})"
        )
    rng = numpy.random.default_rng(seed)
    chosen = rng.choice(len(pool), size=budget, replace=False)
    return sorted(pool[int(i)] for i in chosen)


def check_expert_ids(expert_ids: Sequence[int], pool_ids: Iterable[int]) -> list[int]:
    """The expert ids, sorted, after checking they are distinct and all in the pool."""
    ids = [int(i) for i in expert_ids]
    if len(set(ids)) != len(ids):
        seen: set[int] = set()
        twice = sorted({i for i in ids if i in seen or seen.add(i)})
        raise ExpertPoolError(f"expert sentence ids occur more than once: {twice[:10]}")
    outside = sorted(set(ids) - set(pool_ids))
    if outside:
        raise ExpertPoolError(
            f"{len(outside)} expert sentence ids are outside the expert pool, e.g. {outside[:10]}"
        )
    return sorted(ids)


def merge_labels(
    cheap: dict[int, Doc],
    experts: dict[int, Doc],
    cheap_weight: float = 1.0,
    expert_weight: float = 1.0,
) -> list[Doc]:
    """Copies of every expert Doc and of the cheap Docs without an expert version, sorted by
    sentence id, each with ``source`` and ``weight`` set. An expert Doc replaces the cheap Doc of
    its sentence, which must have the same words (a SentenceMismatchError otherwise).
    """
    docs: list[Doc] = []
    for key in sorted(set(cheap) | set(experts)):
        if key in experts:
            doc = experts[key].copy()
            if key in cheap and [t.text for t in cheap[key]] != [t.text for t in doc]:
                raise SentenceMismatchError(
                    f"sentence {key}: the cheap and the expert Doc have different words "
                    "(are they from the same preprocess run?)"
                )
            meta.set_meta(doc, source=EXPERT_SOURCE, weight=float(expert_weight))
        else:
            doc = cheap[key].copy()
            meta.set_meta(doc, source=CHEAP_SOURCE, weight=float(cheap_weight))
        docs.append(doc)
    return docs


def mix_corpus(
    cheap_docs: Sequence[Doc],
    gold_docs: Sequence[Doc],
    expert_ids: Sequence[int],
    *,
    pool: str = "auto",
    cheap_weight: float = 1.0,
    expert_weight: float = 1.0,
) -> MixedCorpus:
    """One training corpus: gold labels for the expert sentences, cheap labels for the rest.

    The input Docs are not changed: the output holds copies, sorted by sentence id, each with
    ``source`` and ``weight`` set in ``doc.user_data``.

    cheap_docs (Sequence[Doc]): The cheap (LLM-labelled) Docs.
    gold_docs (Sequence[Doc]): The gold train Docs (a superset of the cheap sentences).
    expert_ids (Sequence[int]): Sentence ids that get gold labels; all must be in the pool.
    pool (str): ``rest``, ``cheap`` or ``auto`` (see the module docstring).
    cheap_weight (float): Loss weight of the cheap Docs; 0 keeps them in the corpus without
        teaching anything, so that fine-tuning an LLM-only model on the mix learns from the
        experts alone (the LLM labels then act only through the model's starting point).
    expert_weight (float): Loss weight of the expert Docs.
    RETURNS (MixedCorpus): The Docs and a JSON-serialisable provenance summary.
    """
    if not cheap_weight >= 0:
        raise SettingsError(f"cheap_weight must be 0 or more, not {cheap_weight}")
    if not expert_weight > 0:
        raise SettingsError(f"expert_weight must be positive, not {expert_weight}")
    cheap = meta.by_sent_id(cheap_docs)
    gold = meta.by_sent_id(gold_docs)
    setting = resolve_pool_setting(cheap, gold, pool)
    pool_ids = expert_pool(cheap, gold, setting)
    experts = check_expert_ids(expert_ids, pool_ids)
    replaced = sorted(set(experts) & set(cheap))
    docs = merge_labels(cheap, {key: gold[key] for key in experts}, cheap_weight, expert_weight)
    counts = {
        CHEAP_SOURCE: len(docs) - len(experts),
        EXPERT_SOURCE: len(experts),
    }
    summary = {
        "pool": setting,
        "pool_size": len(pool_ids),
        "n_cheap_set": len(cheap),
        "n_docs": len(docs),
        "counts": counts,
        "n_replaced": len(replaced),
        "cheap_weight": float(cheap_weight),
        "expert_weight": float(expert_weight),
        "expert_ids": experts,
        "replaced_ids": replaced,
    }
    return MixedCorpus(docs=docs, summary=summary)


def read_expert_ids(path: Path) -> list[int]:
    """Sentence ids from a file: a JSON list, a JSON object with ``expert_ids`` (e.g. a mixing
    summary), or plain text with ids separated by whitespace or commas (``#`` starts a comment).
    """
    text = path.read_text(encoding="utf8")
    if path.suffix == ".json":
        data = json.loads(text)
        if isinstance(data, dict):
            if "expert_ids" not in data:
                raise ExpertPoolError(f"{path} is a JSON object without 'expert_ids'")
            data = data["expert_ids"]
        if not isinstance(data, list):
            raise ExpertPoolError(f"{path}: expected a list of sentence ids")
        values: list[Any] = data
    else:
        values = [
            item
            for line in text.splitlines()
            for item in line.split("#", 1)[0].replace(",", " ").split()
        ]
    try:
        return [int(value) for value in values]
    except (TypeError, ValueError) as err:
        raise ExpertPoolError(f"{path}: not a sentence id: {err}") from None


def noisy_report_path(corpus_path: Path | str) -> Path:
    """Where a mixed corpus's noisy-label report lies (``nerloop.noisy``): ``mixed.spacy`` ->
    ``mixed.noisy.json``."""
    corpus_path = Path(corpus_path)
    return corpus_path.with_name(f"{corpus_path.stem}.noisy.json")


def mix_from_files(
    cheap_path: Path,
    gold_path: Path,
    output_path: Path,
    *,
    expert_ids: Sequence[int] | None = None,
    budget: int | None = None,
    budget_pct: float | None = None,
    seed: int = 0,
    pool: str = "auto",
    cheap_weight: float = 1.0,
    expert_weight: float = 1.0,
) -> MixedCorpus:
    """Read the DocBins, choose the expert ids (given, or drawn with a budget) and mix: the
    corpus whose summary is the provenance ``mix_files`` writes (``output_path`` is recorded)."""
    given = [expert_ids is not None, budget is not None, budget_pct is not None]
    if sum(given) != 1:
        raise ExpertPoolError("give exactly one of expert ids, a budget or a budget percentage")
    vocab = Vocab()
    cheap_docs = read_docbin(cheap_path, vocab)
    gold_docs = read_docbin(gold_path, vocab)
    cheap_ids = [meta.sent_id(doc) for doc in cheap_docs]
    gold_ids = [meta.sent_id(doc) for doc in gold_docs]
    setting = resolve_pool_setting(cheap_ids, gold_ids, pool)
    drawn = expert_ids is None
    if budget_pct is not None:
        budget = budget_from_percent(budget_pct, len(cheap_docs))
    if expert_ids is None:
        assert budget is not None
        expert_ids = draw_expert_ids(expert_pool(cheap_ids, gold_ids, setting), budget, seed)
    mixed = mix_corpus(
        cheap_docs,
        gold_docs,
        expert_ids,
        pool=setting,
        cheap_weight=cheap_weight,
        expert_weight=expert_weight,
    )
    summary = {
        "cheap_path": str(cheap_path),
        "gold_path": str(gold_path),
        "output_path": str(output_path),
        "selection": (
            {"method": "random", "budget": budget, "budget_pct": budget_pct, "seed": seed}
            if drawn
            else {"method": "given"}
        ),
        **mixed.summary,
    }
    return MixedCorpus(docs=mixed.docs, summary=summary)


def write_mixed(
    mixed: MixedCorpus,
    output_path: Path,
    summary_path: Path,
    noisy_report: dict[str, Any] | None = None,
) -> None:
    """Write the mixed DocBin, the noisy-label report beside it (or remove a stale one: it
    would describe another corpus) and the provenance summary, each atomically."""
    write_docbin(output_path, mixed.docs)
    report_path = noisy_report_path(output_path)
    if noisy_report is not None:
        atomic_write_json(report_path, noisy_report)
    else:
        report_path.unlink(missing_ok=True)
    atomic_write_json(summary_path, mixed.summary)


def mix_files(
    cheap_path: Path,
    gold_path: Path,
    output_path: Path,
    summary_path: Path,
    *,
    expert_ids: Sequence[int] | None = None,
    budget: int | None = None,
    budget_pct: float | None = None,
    seed: int = 0,
    pool: str = "auto",
    cheap_weight: float = 1.0,
    expert_weight: float = 1.0,
) -> dict[str, Any]:
    """Read the DocBins, choose the expert ids (given, or drawn with a budget), write the mixed
    DocBin and its provenance summary (both atomically) and return the summary.
    ``nerloop.noisy.mix_files_noisy`` adds a judge of the cheap labels."""
    mixed = mix_from_files(
        cheap_path,
        gold_path,
        output_path,
        expert_ids=expert_ids,
        budget=budget,
        budget_pct=budget_pct,
        seed=seed,
        pool=pool,
        cheap_weight=cheap_weight,
        expert_weight=expert_weight,
    )
    write_mixed(mixed, output_path, summary_path)
    return mixed.summary
