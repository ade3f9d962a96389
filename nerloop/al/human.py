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
    STATE/iter_{i}/config.cfg                the resolved settings (select, then update)
    STATE/checkpoints/active_iter_{i}_added_{n}/ (+ .json manifest)  the fine-tuned pipelines;
                                             active_iter_0_added_0 is the start model as scored
                                             on dev by the first update

``select`` scores the pool sentences not labelled yet with the current model (the last
checkpoint, or the start model), picks a batch (``nerloop.al.iteration.select``) and exports it
(``scripts/al_export.py``). ``update`` imports the answers (``scripts/al_import.py``; an invalid
file stops everything with nothing written), then runs the same update as the simulated loop
(``nerloop.al.iteration.update``): it trains the current model warm on the cheap set with the
expert sentences replacing or adding to it, scores it on dev and saves the checkpoint, whose
manifest has the simulated loop's keys, so ``CheckpointStore(STATE)`` reads the folder like a
simulated run's. The settings are those of ``configs/al.cfg`` (``[loop]``, ``[mix]``,
``[training]``, ``[hub]``).

The labels offered to the experts and checked on import are those of the label scheme given
(``labels``), else those the current model tags (with the descriptions of the scheme file its
config names, when that file still lists them). Sentences given as ``exclude`` on first use
(e.g. the fixed dev sample of a corpus without gold, ``nerloop.nogold``) are never candidates,
and ``update`` refuses answers to them.

``state.json`` is written last by both commands: it is the commit point. Everything else is
written atomically before it and is simply redone when a command is run again after a crash
(``expert.spacy`` only ever keeps the sentences ``state.json`` records as labelled, plus the
batch being committed).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from confection import Config
from spacy.language import Language
from spacy.tokens import Doc
from spacy.vocab import Vocab

from nerloop.al import iteration as al_iteration
from nerloop.al.checkpoints import open_store
from nerloop.al.settings import (
    DEFAULT_CONFIG,
    IterationSettings,
    hub_settings,
    iteration_settings,
    load_al_config,
)
from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.eval.pipeline import evaluate_pipeline, load_pipeline, tagger_of
from nerloop.fingerprint import file_fingerprint, fingerprint
from nerloop.formats.common import FORMATS
from nerloop.formats.export import export_batch
from nerloop.formats.importing import import_annotations
from nerloop.hub import HubSettings
from nerloop.io_utils import atomic_write_json, read_docbin, write_docbin
from nerloop.labels import LabelScheme, as_scheme, load_scheme, scheme_from_labels
from nerloop.mixing import EXPERT_SOURCE
from nerloop.settings import write_resolved

STATE_FILE = "state.json"
EXPERT_FILE = "expert.spacy"
STATE_VERSION = 1


class HumanLoopError(NerloopError, ValueError):
    """The state folder is not ready for the command (nothing pending, already pending, ...)."""


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


def pipeline_scheme(nlp: Language) -> LabelScheme:
    """The label scheme a trained pipeline tags: its ``bio_ner`` labels, with the descriptions of
    the scheme file ``paths.labels`` of its config (null: the default scheme) when that file
    lists the same labels."""
    labels = tuple(tagger_of(nlp).labels)
    path = nlp.config.get("paths", {}).get("labels")
    if path is None or Path(path).is_file():
        scheme = load_scheme(path)
        if scheme.labels == labels:
            return scheme
    return scheme_from_labels(labels)


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


def _excluded_ids(path: Path | None, initial_ids: list[int]) -> list[int]:
    if path is None:
        return []
    ids = sorted({meta.sent_id(doc) for doc in read_docbin(path, Vocab())})
    overlap = sorted(set(ids) & set(initial_ids))
    if overlap:
        raise HumanLoopError(
            f"sentences {overlap} of {path} are also initial experts: a sentence that is "
            "never to be chosen cannot be in the training set either"
        )
    return ids


def _new_state(
    state_dir: Path,
    model: Path | None,
    initial_experts: Path | None,
    exclude: Path | None = None,
) -> dict:
    if model is None:
        raise HumanLoopError(f"{state_dir} has no state yet: give the start model (--model)")
    if not (model / "config.cfg").exists():
        raise HumanLoopError(f"{model} is not a spaCy pipeline folder (no config.cfg)")
    start = str(model.resolve())
    initial_ids: list[int] = []
    if initial_experts is not None:
        docs = read_docbin(initial_experts, Vocab())
        experts = [d for d in docs if d.user_data.get(meta.SOURCE) == EXPERT_SOURCE] or docs
        for doc in experts:
            meta.set_meta(doc, source=EXPERT_SOURCE)
        initial_ids = [meta.sent_id(doc) for doc in experts]
    excluded_ids = _excluded_ids(exclude, initial_ids)
    if initial_experts is not None:
        # written before state.json (the commit point): a crash here leaves no state
        write_docbin(state_dir / EXPERT_FILE, experts)
    return {
        "version": STATE_VERSION,
        "start_model": start,
        "model": start,
        "iteration": 0,
        "initial_experts": str(initial_experts) if initial_experts else None,
        "n_initial_experts": len(initial_ids),
        "labelled_ids": initial_ids,
        "exclude": str(exclude) if exclude else None,
        "excluded_ids": excluded_ids,
        "pending": None,
        "history": [],
    }


def select_for_experts(
    state_dir: Path,
    pool_path: Path,
    *,
    model: Path | None = None,
    initial_experts: Path | None = None,
    exclude: Path | None = None,
    labels: LabelScheme | str | Path | None = None,
    settings: IterationSettings | None = None,
    config: Config | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Choose the next batch for the experts and export it; the iteration is pending afterwards.

    state_dir (Path): The state folder (created with ``model`` as the start model on first use).
    pool_path (Path): DocBin of the sentences experts may label (only their words are used).
    model (Optional[Path]): The start model; needed on first use, checked against it later.
    initial_experts (Optional[Path]): First use only: a DocBin with the expert-labelled Docs the
        start model was trained with (e.g. the init model's mixed corpus, of which the Docs with
        source "expert" are taken). They join every later training set and are never selected.
    exclude (Optional[Path]): First use only: a DocBin of sentences (by ``sent_id``) that are
        never selected, e.g. the experts' fixed dev sample.
    labels (Union[LabelScheme, Path, None]): The label scheme offered to the experts (None: the
        labels the current model tags).
    settings (Optional[IterationSettings]): The strategy, ``batch_to_add``, the seed (it seeds
        MC dropout, the random baseline and the fine-tuning of this iteration), ``max_jaccard``.
    config (Optional[Config]): The resolved settings, written to ``iter_{i}/config.cfg``.
    RETURNS (dict): The pending iteration as recorded in ``state.json``.
    """
    settings = settings or IterationSettings()
    strategy = settings.make_strategy()
    state = read_state(state_dir)
    if state is None:
        state = _new_state(state_dir, model, initial_experts, exclude)
    elif initial_experts is not None or exclude is not None:
        option = "--initial-experts" if initial_experts is not None else "--exclude"
        raise HumanLoopError(f"{state_dir} has started: {option} is only read on first use")
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
    never = set(state["labelled_ids"]) | set(state.get("excluded_ids", []))
    candidates = [
        doc for doc in read_docbin(pool_path, nlp.vocab) if meta.sent_id(doc) not in never
    ]
    selection = al_iteration.select(
        nlp,
        candidates,
        strategy,
        settings.batch_to_add,
        iteration=iteration,
        seed=settings.seed,
        max_jaccard=settings.max_jaccard,
        batch_size=settings.scoring_batch_size,
        progress=progress,
        budget_unit=settings.budget_unit,
        # a pool of LLM-labelled sentences carries the LLM's labels (llm-disagreement)
        llm_docs=candidates
        if all(d.user_data.get(meta.SOURCE) == "cheap" for d in candidates)
        else None,
    )
    chosen = selection.sent_ids
    by_id = meta.by_sent_id(candidates)
    folder = iteration_dir(state_dir, iteration)
    selected_path = write_docbin(
        folder / "selected.spacy", [without_entities(by_id[i]) for i in chosen]
    )
    rows = {row[meta.SENT_ID]: row for row in selection.scored.rows()}
    atomic_write_json(
        folder / "selection.json",
        {"strategy": str(strategy), "model": str(current), "selected": [rows[i] for i in chosen]},
    )
    version = current.name if current.name.startswith("active_iter_") else "start"
    export = export_batch(
        current,
        selected_path,
        folder / "export",
        model_version=version,
        labels=as_scheme(labels) if labels is not None else pipeline_scheme(nlp),
        progress=progress,
    )
    if config is not None:
        write_resolved(config, folder)
    state["pending"] = {
        "iteration": iteration,
        "selected_ids": chosen,
        "selected": selection.selected(),
        "strategy": str(strategy),
        "strategy_name": settings.strategy,
        "seed": settings.seed,
        "pool": str(pool_path),
        "model": state["model"],
        "export": export["paths"],
        "scoring": selection.scored.stats(),
    }
    write_state(state_dir, state)
    return state["pending"]


# -- update -------------------------------------------------------------------------------------


def update_from_experts(
    state_dir: Path,
    answers_path: Path,
    answers_format: str,
    cheap_path: Path,
    dev_path: Path,
    *,
    settings: IterationSettings | None = None,
    annotator: str | None = None,
    labels: LabelScheme | str | Path | None = None,
    hub: HubSettings | None = None,
    config: Config | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Import the answers of the pending iteration, fine-tune, evaluate on dev, save.

    state_dir (Path): The state folder (an iteration must be pending).
    answers_path (Path): Label Studio JSON export or Prodigy JSONL (``prodigy db-out``).
    answers_format (str): ``labelstudio`` or ``prodigy``.
    cheap_path (Path): The cheap DocBin the expert sentences are mixed into.
    dev_path (Path): Gold dev DocBin (F1, accuracy, loss).
    settings (Optional[IterationSettings]): Epochs, optimiser settings and loss weights of the
        fine-tuning (its seed is the one ``select`` used).
    labels (Union[LabelScheme, Path, None]): The label scheme the answers are checked against
        (None: the labels the current model tags).
    hub (Optional[HubSettings]): Also push the checkpoint to its own branch of this repo.
    config (Optional[Config]): The resolved settings, written to ``iter_{i}/config.cfg``.
    RETURNS (dict): The checkpoint's manifest (the keys of ``checkpoints.MANIFEST_KEYS``).
    """
    started = time.perf_counter()
    state = _require_state(state_dir)
    pending = state["pending"]
    if pending is None:
        raise HumanLoopError(
            f"no iteration is pending in {state_dir}: choose a batch first with "
            f"`python -m scripts.al_human select {state_dir} --pool POOL.spacy`"
        )
    settings = replace(settings or IterationSettings(), seed=pending["seed"])
    store = open_store(state_dir, hub)  # a Hub token is checked before anything is written
    iteration = pending["iteration"]
    folder = iteration_dir(state_dir, iteration)
    nlp = load_pipeline(model_path(state_dir, state))
    # Validation errors are raised here, before anything is written.
    summary = import_annotations(
        answers_path,
        folder / "selected.spacy",
        folder / "answers.spacy",
        answers_format,
        annotator=annotator,
        labels=as_scheme(labels) if labels is not None else pipeline_scheme(nlp),
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
    excluded = sorted(set(added_ids) & set(state.get("excluded_ids", [])))
    if excluded:
        raise HumanLoopError(
            f"sentences {excluded} are excluded from this run ({state.get('exclude')}): they "
            "must not be trained on"
        )
    n_initial = state.get("n_initial_experts", 0)
    before_ids = state["labelled_ids"][n_initial:]
    cheap = read_docbin(cheap_path, vocab)
    dev = read_docbin(dev_path, vocab)
    inputs = {
        "cheap": str(cheap_path),
        "cheap_sha256": file_fingerprint(cheap_path),
        "dev": str(dev_path),
        "dev_sha256": file_fingerprint(dev_path),
        "pool": pending["pool"],
        "start_model": state["start_model"],
    }
    if config is not None:
        write_resolved(config, folder)
    store.remove_unfinished()
    common = {
        "settings": settings.to_dict(),
        "fingerprint": fingerprint({"settings": settings.to_dict(), "inputs": inputs}),
        "inputs": inputs,
    }
    history = list(state["history"])
    if not history or history[-1]["dev_sha256"] != inputs["dev_sha256"]:
        # the model the gain is measured against, scored on this dev set
        if state["iteration"] == 0 and not store.manifests():
            _, start = al_iteration.update(
                store,
                nlp,
                earlier,
                cheap,
                dev,
                settings,
                iteration=0,
                added_ids=[],
                all_added_ids=[],
                n_initial_expert=n_initial,
                previous_f1=None,
                epochs=0,
                record={"mode": "initial", "from_model": state["start_model"], **common},
            )
            before, start_checkpoint = start["dev"], start["checkpoint"]
        else:
            before = al_iteration.dev_scores(evaluate_pipeline(nlp, dev, progress=False))
            start_checkpoint = None if state["iteration"] == 0 else Path(state["model"]).name
        history.append(
            {
                "iteration": state["iteration"],
                "checkpoint": start_checkpoint,
                "n_labelled": len(labelled),
                "dev": before,
                "dev_sha256": inputs["dev_sha256"],
                "gain": None,
            }
        )
    expert_docs = earlier + answers
    nlp, record = al_iteration.update(
        store,
        nlp,
        expert_docs,
        cheap,
        dev,
        settings,
        iteration=iteration,
        added_ids=added_ids,
        all_added_ids=before_ids + added_ids,
        n_initial_expert=n_initial,
        previous_f1=history[-1]["dev"]["f1"],
        score_seconds=pending["scoring"]["seconds"],
        started=started,
        progress=progress,
        record={
            "selected": [s for s in pending["selected"] if s["sent_id"] in set(added_ids)],
            "scoring": pending["scoring"],
            "strategy": pending["strategy"],
            "mode": "warm",
            "from_model": pending["model"],
            "answers": {
                "path": str(answers_path),
                "format": answers_format,
                "sha256": file_fingerprint(answers_path),
                "annotators": summary["annotators"],
            },
            "skipped": summary["skipped"],
            **common,
        },
    )
    write_docbin(expert_path, expert_docs)
    name = record["checkpoint"]
    history.append(
        {
            "iteration": iteration,
            "checkpoint": name,
            "n_labelled": len(labelled) + len(added_ids),
            "dev": record["dev"],
            "dev_sha256": inputs["dev_sha256"],
            "gain": record["gain"],
        }
    )
    state.update(
        model=str(store.pipeline_path(name).relative_to(state_dir)),
        iteration=iteration,
        labelled_ids=state["labelled_ids"] + added_ids,
        pending=None,
        history=history,
    )
    write_state(state_dir, state)
    return record


# -- from a settings file -----------------------------------------------------------------------


def _configured(config_path: Path | str, overrides: dict[str, Any] | None):
    config = load_al_config(config_path, overrides)
    settings = iteration_settings(config)
    if settings.gpu_id >= 0:
        from spacy import util

        util.require_gpu(settings.gpu_id)
    return config, settings


def select_from_config(
    state_dir: Path,
    pool_path: Path,
    config_path: Path | str = DEFAULT_CONFIG,
    overrides: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """``select_for_experts`` with the ``[loop]`` settings of a file (``configs/al.cfg``)."""
    config, settings = _configured(config_path, overrides)
    return select_for_experts(state_dir, pool_path, settings=settings, config=config, **options)


def update_from_config(
    state_dir: Path,
    answers_path: Path,
    answers_format: str,
    cheap_path: Path,
    dev_path: Path,
    config_path: Path | str = DEFAULT_CONFIG,
    overrides: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """``update_from_experts`` with the ``[mix]``, ``[training]`` and ``[hub]`` settings of a
    file (``configs/al.cfg``)."""
    if answers_format not in FORMATS:
        raise HumanLoopError(
            f"--format must be one of {', '.join(FORMATS)}, not {answers_format!r}"
        )
    config, settings = _configured(config_path, overrides)
    return update_from_experts(
        state_dir,
        answers_path,
        answers_format,
        cheap_path,
        dev_path,
        settings=settings,
        hub=hub_settings(config),
        config=config,
        **options,
    )
