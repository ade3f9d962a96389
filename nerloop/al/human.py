"""Active learning with real experts, one iteration at a time: select -> export -> people
annotate -> import -> fine-tune.

A state folder holds everything of a run::

    STATE/state.json                         start model, current model, labelled sent_ids,
                                             the pending iteration, the dev history
    STATE/expert.spacy                       every expert-labelled Doc so far (the experts' labels)
    STATE/iter_{i}/selected.spacy            the batch chosen in iteration i (no entities)
    STATE/iter_{i}/selection.json            its scores, words and most uncertain tokens
    STATE/iter_{i}/export/                   Label Studio tasks + config, Prodigy JSONL
    STATE/iter_{i}/answers.spacy             the experts' answers of iteration i (imported)
    STATE/iter_{i}/import_summary.json
    STATE/checkpoints/active_iter_{i}_added_{n}/ (+ .json manifest)  the fine-tuned pipelines

``select`` scores the pool sentences not labelled yet with the current model (the last
checkpoint, or the start model), picks a batch (``scripts/al/selection.py``) and exports it
(``scripts/al_export.py``). ``update`` imports the answers (``scripts/al_import.py``; an invalid
file stops everything with nothing written), trains the current model warm on the cheap set with
the expert sentences replacing or adding to it, scores it on dev and saves the checkpoint.

``state.json`` is written last by both commands: it is the commit point. Everything else is
written atomically before it and is simply redone when a command is run again after a crash
(``expert.spacy`` only ever keeps the sentences ``state.json`` records as labelled, plus the
batch being committed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spacy.tokens import Doc
from spacy.vocab import Vocab

from nerloop.al.checkpoints import CheckpointStore, checkpoint_name
from nerloop.al.scoring import score_pool
from nerloop.al.selection import EmptyPoolError, select_batch
from nerloop.al.strategies import UnknownStrategyError, make_strategy
from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.eval.pipeline import evaluate_pipeline, load_pipeline
from nerloop.formats.common import SelectedBatchError
from nerloop.formats.export import ExportError, export_batch
from nerloop.formats.importing import ImportValidationError, import_annotations
from nerloop.io_utils import atomic_write_json, file_sha256, read_docbin, write_docbin
from nerloop.mixing import (
    CHEAP_SOURCE,
    EXPERT_SOURCE,
    MixedCorpus,
    merge_labels,
)
from nerloop.training import (
    DEV_KEYS,
    finetune,
)

STATE_FILE = "state.json"
EXPERT_FILE = "expert.spacy"
STATE_VERSION = 1


class HumanLoopError(NerloopError, ValueError):
    """The state folder is not ready for the command (nothing pending, already pending, ...)."""


# What the CLI reports in one line rather than as a traceback.
CLI_ERRORS = (
    HumanLoopError,
    ImportValidationError,
    EmptyPoolError,
    UnknownStrategyError,
    SelectedBatchError,
    ExportError,
    FileNotFoundError,
)


# -- the state folder ---------------------------------------------------------------------------


def iteration_dir(state_dir: Path, iteration: int) -> Path:
    return state_dir / f"iter_{iteration}"


def read_state(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / STATE_FILE
    return json.loads(path.read_text(encoding="utf8")) if path.exists() else None


def write_state(state_dir: Path, state: dict[str, Any]) -> Path:
    return atomic_write_json(state_dir / STATE_FILE, state)


def model_path(state_dir: Path, state: dict[str, Any]) -> Path:
    """The current model: a checkpoint (stored relative to the state folder) or the start model."""
    path = Path(state["model"])
    return path if path.is_absolute() else state_dir / path


def _require_state(state_dir: Path) -> dict[str, Any]:
    state = read_state(state_dir)
    if state is None:
        raise HumanLoopError(
            f"{state_dir / STATE_FILE} does not exist: start with "
            f"`python -m scripts.al_human select {state_dir} --model MODEL_DIR --pool POOL.spacy`"
        )
    return state


# -- select -------------------------------------------------------------------------------------


def without_entities(doc: Doc) -> Doc:
    """A copy with the words and metadata of ``doc`` but no entities (nothing to leak)."""
    copy = doc.copy()
    copy.set_ents([], default="missing")
    return copy


def select_for_experts(
    state_dir: Path,
    pool_path: Path,
    *,
    model: Path | None = None,
    initial_experts: Path | None = None,
    strategy_name: str = "entropy",
    batch_to_add: int = 10,
    seed: int = 0,
    max_jaccard: float | None = None,
    scoring_batch_size: int = 64,
    progress: bool = True,
) -> dict[str, Any]:
    """Choose the next batch for the experts and export it; the iteration is pending afterwards.

    state_dir (Path): The state folder (created with ``model`` as the start model on first use).
    pool_path (Path): DocBin of the sentences experts may label (only their words are used).
    model (Optional[Path]): The start model; needed on first use, checked against it later.
    initial_experts (Optional[Path]): First use only: a DocBin with the expert-labelled Docs the
        start model was trained with (e.g. the init model's mixed corpus, of which the Docs with
        source "expert" are taken). They join every later training set and are never selected.
    strategy_name (str): A name of ``scripts.al.strategies.STRATEGIES``.
    batch_to_add (int): Sentences per batch.
    seed (int): Seeds MC dropout, the random baseline and the fine-tuning of this iteration.
    max_jaccard (Optional[float]): The diversity rule of ``select_batch``.
    RETURNS (dict): The pending iteration as recorded in ``state.json``.
    """
    strategy = make_strategy(strategy_name, seed=seed)
    state = read_state(state_dir)
    if state is None:
        if model is None:
            raise HumanLoopError(f"{state_dir} has no state yet: give the start model (--model)")
        if not (model / "config.cfg").exists():
            raise FileNotFoundError(f"{model} is not a spaCy pipeline folder (no config.cfg)")
        start = str(model.resolve())
        initial_ids: list[int] = []
        if initial_experts is not None:
            docs = read_docbin(initial_experts, Vocab())
            experts = [d for d in docs if d.user_data.get(meta.SOURCE) == EXPERT_SOURCE] or docs
            for doc in experts:
                meta.set_meta(doc, source=EXPERT_SOURCE)
            initial_ids = [meta.sent_id(doc) for doc in experts]
            # written before state.json (the commit point): a crash here leaves no state
            write_docbin(state_dir / EXPERT_FILE, experts)
        state = {
            "version": STATE_VERSION,
            "start_model": start,
            "model": start,
            "iteration": 0,
            "initial_experts": str(initial_experts) if initial_experts else None,
            "n_initial_experts": len(initial_ids),
            "labelled_ids": initial_ids,
            "pending": None,
            "history": [],
        }
    elif initial_experts is not None:
        raise HumanLoopError(
            f"{state_dir} has started: --initial-experts is only read on first use"
        )
    elif model is not None and model.resolve() != Path(state["start_model"]):
        raise HumanLoopError(
            f"{state_dir} was started from {state['start_model']}, not {model}: "
            "leave out --model, or use another state folder"
        )
    pending = state["pending"]
    if pending is not None:
        raise HumanLoopError(
            f"iteration {pending['iteration']} is pending (selected, not yet updated): import "
            f"the experts' answers first with `python -m scripts.al_human update {state_dir} "
            "--answers FILE --format labelstudio|prodigy --cheap CHEAP.spacy --dev DEV.spacy`"
        )
    iteration = state["iteration"] + 1
    current = model_path(state_dir, state)
    nlp = load_pipeline(current)
    labelled = set(state["labelled_ids"])
    candidates = [
        doc for doc in read_docbin(pool_path, nlp.vocab) if meta.sent_id(doc) not in labelled
    ]
    scored = score_pool(
        nlp,
        candidates,
        strategy,
        round=iteration,
        batch_size=scoring_batch_size,
        seed=seed + iteration,
        progress=progress,
    )
    chosen = select_batch(
        scored.sent_ids, scored.scores, scored.tokens, batch_to_add, max_jaccard=max_jaccard
    )
    by_id = meta.by_sent_id(candidates)
    folder = iteration_dir(state_dir, iteration)
    selected_path = write_docbin(
        folder / "selected.spacy", [without_entities(by_id[i]) for i in chosen]
    )
    rows = {row[meta.SENT_ID]: row for row in scored.rows()}
    atomic_write_json(
        folder / "selection.json",
        {"strategy": str(strategy), "model": str(current), "selected": [rows[i] for i in chosen]},
    )
    version = current.name if current.name.startswith("active_iter_") else "start"
    export = export_batch(
        current, selected_path, folder / "export", model_version=version, progress=progress
    )
    state["pending"] = {
        "iteration": iteration,
        "selected_ids": chosen,
        "strategy": str(strategy),
        "strategy_name": strategy_name,
        "seed": seed,
        "pool": str(pool_path),
        "model": state["model"],
        "export": export["paths"],
        "scoring": scored.stats(),
    }
    write_state(state_dir, state)
    return state["pending"]


# -- update -------------------------------------------------------------------------------------


def expert_training_docs(
    cheap_docs: Sequence[Doc],
    expert_docs: Sequence[Doc],
    *,
    cheap_weight: float = 1.0,
    expert_weight: float = 1.0,
) -> MixedCorpus:
    """The cheap Docs without an expert version plus every expert Doc, sorted by sentence id.

    Unlike ``scripts.mix.mix_corpus`` the expert labels come from the experts' answers, and an
    expert sentence may or may not be in the cheap set (it replaces its cheap version if it is).
    """
    for name, value in (("cheap_weight", cheap_weight), ("expert_weight", expert_weight)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, not {value}")
    cheap = meta.by_sent_id(cheap_docs)
    experts = meta.by_sent_id(expert_docs)
    try:
        docs = merge_labels(cheap, experts, cheap_weight, expert_weight)
    except ValueError as err:
        raise HumanLoopError(str(err)) from None
    summary = {
        "n_docs": len(docs),
        "counts": {CHEAP_SOURCE: len(docs) - len(experts), EXPERT_SOURCE: len(experts)},
        "n_replaced": len(set(experts) & set(cheap)),
        "cheap_weight": float(cheap_weight),
        "expert_weight": float(expert_weight),
    }
    return MixedCorpus(docs=docs, summary=summary)


def dev_scores(scores: dict[str, Any]) -> dict[str, float]:
    return {key: float(scores[key]) for key in DEV_KEYS}


def update_from_experts(
    state_dir: Path,
    answers_path: Path,
    answers_format: str,
    cheap_path: Path,
    dev_path: Path,
    *,
    finetune_epochs: int = 2,
    cheap_weight: float = 1.0,
    expert_weight: float = 1.0,
    learn_rate: float | None = None,
    dropout: float | None = None,
    batch_words: int | None = None,
    annotator: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Import the answers of the pending iteration, fine-tune, evaluate on dev, save.

    state_dir (Path): The state folder (an iteration must be pending).
    answers_path (Path): Label Studio JSON export or Prodigy JSONL (``prodigy db-out``).
    answers_format (str): ``labelstudio`` or ``prodigy``.
    cheap_path (Path): The cheap DocBin the expert sentences are mixed into.
    dev_path (Path): Gold dev DocBin (F1, accuracy, loss).
    finetune_epochs (int): Epochs of the warm-started fine-tuning.
    RETURNS (dict): The checkpoint's manifest.
    """
    started = time.perf_counter()
    if finetune_epochs < 1:
        raise ValueError(f"finetune_epochs must be at least 1, not {finetune_epochs}")
    state = _require_state(state_dir)
    pending = state["pending"]
    if pending is None:
        raise HumanLoopError(
            f"no iteration is pending in {state_dir}: choose a batch first with "
            f"`python -m scripts.al_human select {state_dir} --pool POOL.spacy`"
        )
    iteration = pending["iteration"]
    folder = iteration_dir(state_dir, iteration)
    # Validation errors are raised here, before anything is written.
    summary = import_annotations(
        answers_path,
        folder / "selected.spacy",
        folder / "answers.spacy",
        answers_format,
        annotator=annotator,
        summary_path=folder / "import_summary.json",
    )
    vocab = Vocab()
    answers = read_docbin(folder / "answers.spacy", vocab)
    labelled = set(state["labelled_ids"])
    expert_path = state_dir / EXPERT_FILE
    # Only what state.json records as labelled: a batch left by a crashed update is dropped.
    earlier = [
        doc
        for doc in (read_docbin(expert_path, vocab) if expert_path.exists() else [])
        if meta.sent_id(doc) in labelled
    ]
    added_ids = [meta.sent_id(doc) for doc in answers]
    twice = sorted(set(added_ids) & labelled)
    if twice:
        raise HumanLoopError(f"sentences {twice} were labelled in an earlier iteration")
    expert_docs = earlier + answers
    mixed = expert_training_docs(
        read_docbin(cheap_path, vocab),
        expert_docs,
        cheap_weight=cheap_weight,
        expert_weight=expert_weight,
    )
    dev = read_docbin(dev_path, vocab)
    dev_hash = file_sha256(dev_path)
    store = CheckpointStore(state_dir)
    store.remove_unfinished()
    nlp = load_pipeline(model_path(state_dir, state))
    history = list(state["history"])
    if not history or history[-1]["dev_sha256"] != dev_hash:
        # the model the gain is measured against, scored on this dev set
        before = evaluate_pipeline(nlp, dev, progress=False)
        history.append(
            {
                "iteration": state["iteration"],
                "checkpoint": None if state["iteration"] == 0 else Path(state["model"]).name,
                "n_labelled": len(labelled),
                "dev": dev_scores(before),
                "dev_sha256": dev_hash,
                "gain": None,
            }
        )
    result = finetune(
        nlp,
        mixed.docs,
        dev,
        epochs=finetune_epochs,
        seed=pending["seed"] + iteration,
        learn_rate=learn_rate,
        dropout=dropout,
        batch_words=batch_words,
        eval_every=finetune_epochs,
        keep_best=False,
        progress=progress,
        description=f"finetune iteration {iteration}",
    )
    scores = dev_scores(result.last_scores)
    all_ids = state["labelled_ids"] + added_ids
    # named like the loop's: the sentences added by the iterations, not the initial experts
    name = checkpoint_name(iteration, len(all_ids) - state.get("n_initial_experts", 0))
    gain = scores["f1"] - history[-1]["dev"]["f1"]
    store.save_pipeline(result.nlp, name, scores)
    manifest = {
        "version": STATE_VERSION,
        "checkpoint": name,
        "iteration": iteration,
        "n_added": len(all_ids),
        "added_ids": added_ids,
        "all_added_ids": all_ids,
        "skipped": summary["skipped"],
        "dev": scores,
        "gain": gain,
        "n_train_docs": len(mixed.docs),
        "training_set": mixed.summary,
        "epochs": finetune_epochs,
        "strategy": pending["strategy"],
        "mode": "warm",
        "from_model": pending["model"],
        "answers": {
            "path": str(answers_path),
            "format": answers_format,
            "sha256": file_sha256(answers_path),
            "annotators": summary["annotators"],
        },
        "inputs": {"cheap": str(cheap_path), "dev": str(dev_path), "dev_sha256": dev_hash},
        "seconds": time.perf_counter() - started,
    }
    store.write_manifest(manifest)
    write_docbin(expert_path, expert_docs)
    history.append(
        {
            "iteration": iteration,
            "checkpoint": name,
            "n_labelled": len(all_ids),
            "dev": scores,
            "dev_sha256": dev_hash,
            "gain": gain,
        }
    )
    state.update(
        model=str(store.pipeline_path(name).relative_to(state_dir)),
        iteration=iteration,
        labelled_ids=all_ids,
        pending=None,
        history=history,
    )
    write_state(state_dir, state)
    return manifest


# -- CLI ----------------------------------------------------------------------------------------







