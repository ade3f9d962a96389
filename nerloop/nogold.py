"""A corpus without gold labels: the experts' fixed dev sample and the per-round report.

A user with raw text only has no dev set to measure anything on. The workflow (``nogold`` in
``project.yml``) is: ingest the text -> the LLM labels every sentence -> a seeded random sample of
the corpus goes to the experts as the fixed dev set (:func:`draw_dev_sample`) -> the cheap model
trains on the LLM labels of the other sentences -> active learning rounds with the experts
(``scripts/al_human.py``) choose from those other sentences only -> :func:`rounds_report` gives
the dev F1 of every round beside the experts' effort in sentences and tokens.

:func:`draw_dev_sample` writes into its output folder (each file atomically)::

    dev_sample.spacy          the sampled sentences without entities: the batch the experts'
                              answers are imported against (``scripts/al_import.py``)
    pool.spacy                the LLM-labelled sentences outside the sample: the cheap training
                              set and the active learning pool (the sample never enters it)
    dev_sample.json           seed, size, the sampled sent_ids, counts and input fingerprints
    export/                   Label Studio tasks and config and Prodigy tasks of the sample,
                              pre-annotated with the LLM's labels (nerloop.formats)

The sample is drawn from every sentence of the corpus, also those the LLM failed on, so the dev
set is a random sample of the user's text and not of what the LLM managed to label.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spacy.tokens import Doc
from spacy.vocab import Vocab

from nerloop.al.checkpoints import open_store
from nerloop.al.human import EXPERT_FILE, iteration_dir, model_path, read_state
from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.fingerprint import file_fingerprint
from nerloop.formats.common import (
    LABEL_STUDIO_CONFIG_FILE,
    LABEL_STUDIO_TASKS_FILE,
    PRODIGY_TASKS_FILE,
    label_studio_config,
)
from nerloop.formats.export import (
    PreAnnotated,
    check_labels,
    label_studio_task,
    prodigy_command,
    prodigy_task,
)
from nerloop.io_utils import (
    atomic_path,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    read_docbin,
    write_docbin,
)
from nerloop.labels import LabelScheme, as_scheme

DEV_SAMPLE_FILE = "dev_sample.spacy"
POOL_FILE = "pool.spacy"
SUMMARY_FILE = "dev_sample.json"
EXPORT_DIR = "export"


class NoGoldError(NerloopError, ValueError):
    """Inputs of the no-gold workflow that do not fit together (sample size, corpora, state)."""


# -- the fixed dev sample -----------------------------------------------------------------------


def sample_ids(sent_ids: Sequence[int], size: int, seed: int) -> list[int]:
    """A seeded random sample of sentence ids, sorted (the same ids for the same seed and ids).

    sent_ids (Sequence[int]): The corpus' sentence ids (their order does not matter).
    size (int): How many to draw; at least 1 and fewer than the corpus holds.
    seed (int): The seed of the draw.
    RETURNS (List[int]): The drawn ids in ascending order.
    """
    ids = sorted(set(sent_ids))
    if len(ids) != len(sent_ids):
        raise NoGoldError("the corpus repeats sentence ids: ingest it again (scripts/ingest.py)")
    if not 0 < size < len(ids):
        raise NoGoldError(
            f"a dev sample of {size} sentences cannot be drawn from {len(ids)}: give a size "
            f"from 1 to {len(ids) - 1}, so that sentences are left for training"
        )
    return sorted(random.Random(seed).sample(ids, size))


def _blank(doc: Doc) -> Doc:
    copy = doc.copy()
    copy.set_ents([], default="missing")
    return copy


def _check_same_words(corpus: dict[int, Doc], annotated: Sequence[Doc], where: Path) -> None:
    for doc in annotated:
        sent_id = meta.sent_id(doc)
        original = corpus.get(sent_id)
        if original is None or [t.text for t in original] != [t.text for t in doc]:
            raise NoGoldError(
                f"{where}: sentence {sent_id} ({doc.text[:40]!r}) is not the corpus sentence "
                "with that sent_id: annotate the ingested corpus itself (scripts/annotate.py)"
            )


def draw_dev_sample(
    corpus_path: Path,
    annotated_path: Path,
    output_dir: Path,
    size: int,
    *,
    seed: int = 0,
    labels: LabelScheme | str | Path | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Draw the fixed dev sample for the experts and write the pool that never holds it.

    corpus_path (Path): The ingested corpus (every sentence, ``scripts/ingest.py``).
    annotated_path (Path): The LLM-labelled sentences of that corpus (``scripts/annotate.py``).
    output_dir (Path): Folder for the files listed in the module docstring.
    size (int): Sentences in the dev sample.
    seed (int): The seed of the draw.
    labels (Union[LabelScheme, Path, Sequence[str], None]): The label scheme offered to the
        experts (None: the default scheme); an LLM label outside it is refused.
    RETURNS (dict): The summary written to ``dev_sample.json``.
    """
    scheme = as_scheme(labels)
    vocab = Vocab()
    corpus_docs = read_docbin(corpus_path, vocab)
    corpus = {meta.sent_id(doc): doc for doc in corpus_docs}
    ids = sample_ids([meta.sent_id(doc) for doc in corpus_docs], size, seed)
    annotated = read_docbin(annotated_path, vocab)
    _check_same_words(corpus, annotated, annotated_path)
    llm = meta.by_sent_id(annotated)
    sampled = set(ids)
    sample = [_blank(corpus[i]) for i in ids]
    pool = [doc for doc in annotated if meta.sent_id(doc) not in sampled]
    # The LLM's labels are the pre-annotations the experts correct; a sentence the LLM failed
    # on comes without any.
    items = [PreAnnotated(doc, llm.get(meta.sent_id(doc), doc), confidence=1.0) for doc in sample]
    check_labels(items, scheme)
    annotators = sorted({str(doc.user_data.get(meta.ANNOTATOR, "llm")) for doc in annotated})
    version = "llm:" + ",".join(annotators)
    ls_tasks = [label_studio_task(item, version) for item in items]
    prodigy_tasks = [prodigy_task(item, version) for item in items]
    for ls_task, p_task in zip(ls_tasks, prodigy_tasks, strict=True):
        # an LLM gives no confidence: the tasks carry none
        del ls_task["predictions"][0]["score"]
        del p_task["meta"]["score"]
    export_dir = output_dir / EXPORT_DIR
    paths = {
        "dev_sample": output_dir / DEV_SAMPLE_FILE,
        "pool": output_dir / POOL_FILE,
        "labelstudio_tasks": export_dir / LABEL_STUDIO_TASKS_FILE,
        "labelstudio_config": export_dir / LABEL_STUDIO_CONFIG_FILE,
        "prodigy_tasks": export_dir / PRODIGY_TASKS_FILE,
    }
    write_docbin(paths["dev_sample"], sample)
    write_docbin(paths["pool"], pool)
    atomic_write_json(paths["labelstudio_tasks"], ls_tasks)
    atomic_write_text(paths["labelstudio_config"], label_studio_config(scheme))
    atomic_write_jsonl(paths["prodigy_tasks"], prodigy_tasks)
    summary = {
        "seed": seed,
        "size": size,
        "sent_ids": ids,
        "n_corpus": len(corpus_docs),
        "n_annotated": len(annotated),
        "n_pool": len(pool),
        "n_sample_tokens": sum(len(doc) for doc in sample),
        "n_sample_without_llm_labels": sum(1 for i in ids if i not in llm),
        "n_pre_annotated_entities": sum(len(item.predicted.ents) for item in items),
        "labels": list(scheme.labels),
        "model_version": version,
        "prodigy_command": prodigy_command(paths["prodigy_tasks"], scheme),
        "inputs": {
            "corpus": str(corpus_path),
            "corpus_sha256": file_fingerprint(corpus_path),
            "annotated": str(annotated_path),
            "annotated_sha256": file_fingerprint(annotated_path),
        },
        "paths": {name: str(path) for name, path in paths.items()},
    }
    atomic_write_json(output_dir / SUMMARY_FILE, summary)
    return summary


# -- the rounds report --------------------------------------------------------------------------


def _state(state_dir: Path) -> dict[str, Any]:
    state = read_state(state_dir)
    if state is None or not state["history"]:
        raise NoGoldError(
            f"{state_dir} has no scored round yet: run `python -m scripts.al_human update "
            f"{state_dir} ...` once the experts have answered the first batch"
        )
    return state


def _effort(docs: Sequence[Doc]) -> tuple[int, int]:
    return len(docs), sum(len(doc) for doc in docs)


CHOICES = ("best", "last")


def _round_model(state_dir: Path, state: dict[str, Any], row: dict[str, Any]) -> Path:
    """The pipeline of a round: its checkpoint, or for round 0 the start model."""
    if row["round"] == 0:
        return Path(state["start_model"])
    return open_store(state_dir).pipeline_path(row["checkpoint"])


def rounds_report(
    state_dir: Path, dev_path: Path | None = None, choose: str = "best"
) -> dict[str, Any]:
    """The dev F1 of every round of a human loop beside the experts' effort.

    Round 0 is the start model (the cheap model) as the first update scored it; round i is the
    checkpoint after the experts' i-th batch. Effort counts the sentences and tokens the experts
    labelled: each round's imported answers (a skipped task is not labelled), the cumulative
    sum, and, with ``dev_path``, the dev sample they labelled first (in ``expert_*`` totals).

    state_dir (Path): The state folder of ``scripts/al_human.py``.
    dev_path (Optional[Path]): The experts' dev DocBin (its sentences count as effort).
    choose (str): Which round's model is the final one: ``best``, the highest dev F1 on the
        experts' fixed dev sample (the earliest on ties; dev chooses, so its F1 is optimistic and
        only a held-out test set tells the truth), or ``last``, the current model.
    RETURNS (dict): ``rounds`` (a row per scored round), ``dev`` (its effort and fingerprint),
        ``chosen`` (the final round and why), ``final_model``, ``current_model`` and ``pending``
        (an iteration selected but not yet answered, or None).
    """
    if choose not in CHOICES:
        raise NoGoldError(f"choose must be one of {', '.join(CHOICES)}, not {choose!r}")
    state = _state(state_dir)
    vocab = Vocab()
    dev_sentences, dev_tokens = (0, 0)
    dev: dict[str, Any] | None = None
    if dev_path is not None:
        dev_sentences, dev_tokens = _effort(read_docbin(dev_path, vocab))
        dev = {
            "path": str(dev_path),
            "sha256": file_fingerprint(dev_path),
            "sentences": dev_sentences,
            "tokens": dev_tokens,
        }
    n_initial = state.get("n_initial_experts", 0)
    initial: list[Doc] = []
    if n_initial:
        initial_ids = set(state["labelled_ids"][:n_initial])
        experts = read_docbin(state_dir / EXPERT_FILE, vocab)
        initial = [doc for doc in experts if meta.sent_id(doc) in initial_ids]
    total_sentences, total_tokens = _effort(initial)
    rows = []
    for entry in state["history"]:
        iteration = entry["iteration"]
        answers_path = iteration_dir(state_dir, iteration) / "answers.spacy"
        if iteration > 0:
            sentences, tokens = _effort(read_docbin(answers_path, vocab))
        else:
            sentences, tokens = (0, 0)
        total_sentences += sentences
        total_tokens += tokens
        rows.append(
            {
                "round": iteration,
                "checkpoint": entry["checkpoint"],
                "dev_f1": entry["dev"]["f1"],
                "gain": entry["gain"],
                "sentences": sentences,
                "tokens": tokens,
                "al_sentences": total_sentences,
                "al_tokens": total_tokens,
                "expert_sentences": total_sentences + dev_sentences,
                "expert_tokens": total_tokens + dev_tokens,
                "dev_sha256": entry["dev_sha256"],
            }
        )
    if dev is not None and rows[-1]["dev_sha256"] != dev["sha256"]:
        raise NoGoldError(
            f"the last round of {state_dir} was scored on another dev set than {dev_path}: "
            "give the dev DocBin the updates were run with"
        )
    pending = state["pending"]
    current = model_path(state_dir, state)
    if choose == "best":
        chosen = max(rows, key=lambda row: (row["dev_f1"], -row["round"]))
        final = _round_model(state_dir, state, chosen)
        rule = "highest dev F1 on the experts' dev sample (earliest on ties)"
    else:
        chosen, final, rule = rows[-1], current, "the last round"
    return {
        "state_dir": str(state_dir),
        "rounds": rows,
        "dev": dev,
        "chosen": {"round": chosen["round"], "dev_f1": chosen["dev_f1"], "rule": rule},
        "final_model": str(final),
        "current_model": str(current),
        "pending": pending["iteration"] if pending else None,
    }


def rounds_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table (one row per round)."""
    lines = [
        "| round | dev F1 | gain | sentences | tokens | AL sentences | AL tokens "
        "| expert sentences | expert tokens |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rounds"]:
        gain = "" if row["gain"] is None else f"{row['gain']:+.4f}"
        lines.append(
            f"| {row['round']} | {row['dev_f1']:.4f} | {gain} | {row['sentences']} "
            f"| {row['tokens']} | {row['al_sentences']} | {row['al_tokens']} "
            f"| {row['expert_sentences']} | {row['expert_tokens']} |"
        )
    chosen = report.get("chosen")
    if chosen is not None:
        lines.append("")
        lines.append(
            f"Final model: round {chosen['round']} (dev F1 {chosen['dev_f1']:.4f}; "
            f"{chosen['rule']})."
        )
    dev = report["dev"]
    if dev is not None:
        lines.append("")
        lines.append(
            f"Expert totals include the dev sample: {dev['sentences']} sentences, "
            f"{dev['tokens']} tokens ({dev['path']})."
        )
    return "\n".join(lines) + "\n"


def write_rounds_report(
    state_dir: Path,
    output_path: Path,
    *,
    dev_path: Path | None = None,
    markdown_path: Path | None = None,
    final_model_dir: Path | None = None,
    choose: str = "best",
) -> dict[str, Any]:
    """Write :func:`rounds_report` as JSON (and Markdown), and copy the final model.

    state_dir (Path): The state folder of ``scripts/al_human.py``.
    output_path (Path): The JSON report.
    dev_path (Optional[Path]): The experts' dev DocBin (counted as effort).
    markdown_path (Optional[Path]): The Markdown table.
    final_model_dir (Optional[Path]): Copy the final model here (a fixed path to package).
    choose (str): ``best`` (on the experts' dev sample) or ``last`` (see :func:`rounds_report`).
    RETURNS (dict): The report.
    """
    report = rounds_report(state_dir, dev_path, choose)
    if final_model_dir is not None:
        with atomic_path(final_model_dir) as tmp:
            shutil.copytree(report["final_model"], tmp)
        report["final_model_copy"] = str(final_model_dir)
    if markdown_path is not None:
        atomic_write_text(markdown_path, rounds_markdown(report))
    atomic_write_json(output_path, report)
    return report
