"""The active learning loop: score the expert pool, let the experts label the most uncertain
sentences (their gold labels stand in for the experts), fine-tune, evaluate on dev, repeat until
the gain stalls.

Iteration 0 is the starting point: a trained pipeline (``init_model``, e.g. the model trained on
the cheap set plus the initial expert budget) or one trained from a config on that same set.
Iteration ``i >= 1``:

1. score the sentences of the expert pool not labelled yet with the pipeline of iteration
   ``i - 1`` (``nerloop.al.iteration.select``; with the cheap set's LLM labels when the pool is
   the cheap set and the strategy reads them, as ``llm-disagreement`` does);
2. select ``batch_to_add`` of them: sentences, or sentences up to ``batch_to_add`` tokens with
   ``budget_unit = "tokens"``;
3. build the training set (``nerloop.al.iteration.update``): the cheap set, with gold labels
   for the initial expert sentences and for every sentence added so far;
4. fine-tune the pipeline of iteration ``i - 1`` on it (warm start), or retrain from the initial
   model or config (``from_scratch``), and score it on dev (entity F1, seqeval accuracy, loss);
5. save the checkpoint ``active_iter_{i}_added_{n}`` and its manifest (``checkpoints.py``).

Steps 1-5 are the iteration the loop with real experts (``nerloop.al.human``) runs as well.

Every history entry counts the experts' effort in sentences (``n_added``, ``n_expert_total``)
and in tokens (``n_added_tokens``, ``n_expert_tokens_total``), from the added ids; each
manifest's ``selected`` holds every chosen sentence's ``n_tokens``.

The loop stops after iteration ``i`` when ``i >= min_iterations`` and the dev F1 gained over
iteration ``i - 1`` is below ``improvement_threshold``, when ``i == max_iterations``, or when the
pool is used up. The *chosen* checkpoint is the one with the highest dev F1 (the earliest on ties);
only it is ever scored on test, and only when asked.

Everything that decides a selection is seeded (the fine-tuning of iteration ``i`` with
``seed + i``; MC dropout and the random baseline with the seed and ``i``), so a run that is killed
and started again continues from its last finished iteration and makes the selections the
uninterrupted run would have made.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
from confection import Config
from spacy.language import Language
from spacy.tokens import Doc
from spacy.vocab import Vocab
from tqdm import tqdm
from wasabi import msg

from nerloop.al import iteration as al_iteration
from nerloop.al.checkpoints import (
    CheckpointStore,
    HubMirroredStore,
    OnCheckpoint,
    ResumeError,
    open_store,
)
from nerloop.al.settings import (
    STUDY_SETTINGS,
    LoopSettings,
    hub_settings,
    load_al_config,
    loop_settings,
    with_input_hashes,
)
from nerloop.al.strategies import no_llm_labels
from nerloop.corpus import meta
from nerloop.eval.pipeline import evaluate_pipeline, load_pipeline
from nerloop.hub import HubSettings
from nerloop.io_utils import atomic_write_json, read_docbin
from nerloop.mixing import check_expert_ids, expert_pool, resolve_pool_setting
from nerloop.settings import write_resolved
from nerloop.training import load_or_init_pipeline

__all__ = ["STUDY_SETTINGS", "LoopSettings", "run_loop", "stop_reason", "with_input_hashes"]

HISTORY_FILE = "history.json"
TEST_METRICS_FILE = "test_metrics.json"


def stop_reason(
    history: list[dict[str, Any]],
    *,
    improvement_threshold: float,
    min_iterations: int,
    max_iterations: int,
    pool_left: int | None = None,
) -> str | None:
    """Why the loop stops after the last entry of ``history`` (None: it goes on).

    history (List[dict]): Per finished iteration, ``iteration`` and ``gain`` (the dev F1 gained
        over the iteration before; None for iteration 0).
    RETURNS (Optional[str]): ``"gain below threshold"``, ``"max iterations"``,
        ``"pool exhausted"`` or None.
    """
    last = history[-1]
    iteration = last["iteration"]
    if iteration >= 1 and iteration >= min_iterations and last["gain"] < improvement_threshold:
        return "gain below threshold"
    if iteration >= max_iterations:
        return "max iterations"
    if pool_left == 0:
        return "pool exhausted"
    return None


def chosen_checkpoint(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The entry with the highest dev F1 (the earliest on ties): never chosen by test."""
    return max(history, key=lambda entry: (entry["dev"]["f1"], -entry["iteration"]))


@dataclass
class Corpora:
    cheap: list[Doc]
    gold: dict[int, Doc]
    dev: list[Doc]
    pool_setting: str
    pool_ids: list[int]

    def n_tokens(self, sent_ids: list[int]) -> int:
        """The tokens of these sentences: what the experts label."""
        return sum(len(self.gold[i]) for i in sent_ids)


def load_corpora(settings: LoopSettings) -> Corpora:
    vocab = Vocab()
    cheap = read_docbin(settings.cheap_path, vocab)
    gold = meta.by_sent_id(read_docbin(settings.gold_path, vocab))
    dev = read_docbin(settings.dev_path, vocab)
    cheap_ids = [meta.sent_id(doc) for doc in cheap]
    setting = resolve_pool_setting(cheap_ids, gold, settings.pool)
    return Corpora(cheap, gold, dev, setting, expert_pool(cheap_ids, gold, setting))


class ActiveLearningRun:
    """One run of the loop in ``output_dir`` (resumed when it holds finished iterations).

    store (Optional[CheckpointStore]): Where the checkpoints go (default: a local store in
        ``output_dir``; ``open_store`` with a Hub repo mirrors each one there).
    """

    def __init__(
        self,
        settings: LoopSettings,
        output_dir: Path | str,
        progress: bool = True,
        on_checkpoint: OnCheckpoint | None = None,
        store: CheckpointStore | None = None,
    ) -> None:
        self.settings = settings
        self.output_dir = Path(output_dir)
        self.store = store or open_store(self.output_dir, on_checkpoint=on_checkpoint)
        self.progress = progress
        self.strategy = settings.make_strategy()
        self.fingerprint = settings.fingerprint()
        self.corpora = load_corpora(settings)
        self.initial_ids = check_expert_ids(settings.initial_expert_ids, self.corpora.pool_ids)
        if self.strategy.needs_llm_tags and self.corpora.pool_setting != "cheap":
            raise no_llm_labels(self.strategy)
        self.history: list[dict[str, Any]] = []

    # -- state ----------------------------------------------------------------------------------

    @property
    def added_ids(self) -> list[int]:
        return list(self.history[-1]["all_added_ids"]) if self.history else []

    def remaining_pool(self) -> list[int]:
        taken = set(self.initial_ids) | set(self.added_ids)
        return [i for i in self.corpora.pool_ids if i not in taken]

    def resume(self) -> None:
        """Read the finished iterations, after removing what an interrupted one left behind."""
        removed = self.store.remove_unfinished()
        if removed:
            names = ", ".join(path.name for path in removed)
            msg.warn(f"Removed what an interrupted iteration left behind: {names}")
        manifests = self.store.manifests()
        previous: list[int] = []
        for manifest in manifests:
            if manifest.get("fingerprint") != self.fingerprint:
                raise ResumeError(
                    f"{self.store.folder} holds a run with other settings or inputs (iteration "
                    f"{manifest['iteration']}): use another output folder, or --restart"
                )
            added = list(manifest["added_ids"])
            if manifest["all_added_ids"] != previous + added:
                raise ResumeError(f"{manifest['checkpoint']}: the added ids do not add up")
            previous = previous + added
        if len(set(previous)) != len(previous) or set(previous) & set(self.initial_ids):
            raise ResumeError(f"{self.store.folder}: a sentence was added twice")
        self.history = [self.entry(manifest) for manifest in manifests]

    def entry(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """The history entry of a manifest: everything but the settings, with the experts'
        effort in tokens (``n_added_tokens``, ``n_expert_tokens_total``)."""
        entry = {k: v for k, v in manifest.items() if k not in ("settings", "fingerprint")}
        entry["n_added_tokens"] = self.corpora.n_tokens(manifest["all_added_ids"])
        initial_tokens = self.corpora.n_tokens(self.initial_ids)
        entry["n_expert_tokens_total"] = initial_tokens + entry["n_added_tokens"]
        return entry

    # -- steps ----------------------------------------------------------------------------------

    def expert_docs(self, added_ids: list[int]) -> list[Doc]:
        """The 'experts' answers': the gold Docs of the initial and the added sentences."""
        return [self.corpora.gold[i] for i in self.initial_ids + added_ids]

    def start_pipeline(self, train_docs: list[Doc]) -> Language:
        s = self.settings
        return load_or_init_pipeline(
            train_docs,
            init_model=Path(s.init_model) if s.init_model else None,
            config_path=Path(s.init_config) if s.init_config else None,
            seed=s.seed,
            gpu_id=s.gpu_id,
        )

    def candidates(self, iteration: int) -> list[int]:
        """The pool sentences scored in this iteration (a seeded subset with ``pool_sample``)."""
        remaining = self.remaining_pool()
        size = self.settings.pool_sample
        if not size or size >= len(remaining):
            return remaining
        rng = numpy.random.default_rng([self.settings.seed, iteration, 1])
        return sorted(int(i) for i in rng.choice(remaining, size=size, replace=False))

    def record(self, mode: str, from_model: str | None) -> dict[str, Any]:
        """The manifest keys every iteration of this run shares."""
        s = self.settings
        return {
            "strategy": str(self.strategy),
            "mode": mode,
            "from_model": from_model,
            "inputs": {"cheap": s.cheap_path, "gold": s.gold_path, "dev": s.dev_path},
            "fingerprint": self.fingerprint,
            "settings": s.to_dict(),
        }

    def initial_iteration(self) -> tuple[Language, dict[str, Any]]:
        started = time.perf_counter()
        s = self.settings
        return al_iteration.update(
            self.store,
            self.start_pipeline,
            self.expert_docs([]),
            self.corpora.cheap,
            self.corpora.dev,
            s,
            iteration=0,
            added_ids=[],
            all_added_ids=[],
            n_initial_expert=len(self.initial_ids),
            previous_f1=None,
            epochs=s.resolved_initial_epochs,
            started=started,
            record=self.record("initial", s.init_model or s.init_config),
        )

    def next_iteration(self, nlp: Language, number: int) -> tuple[Language, dict[str, Any]]:
        started = time.perf_counter()
        s = self.settings
        candidates = self.candidates(number)
        llm_docs = None
        if self.strategy.needs_llm_tags:  # the pool is the cheap set (checked at the start)
            cheap = meta.by_sent_id(self.corpora.cheap)
            llm_docs = [cheap[i] for i in candidates]
        chosen = al_iteration.select(
            nlp,
            [self.corpora.gold[i] for i in candidates],
            self.strategy,
            s.batch_to_add,
            iteration=number,
            seed=s.seed,
            max_jaccard=s.max_jaccard,
            batch_size=s.scoring_batch_size,
            progress=self.progress,
            budget_unit=s.budget_unit,
            llm_docs=llm_docs,
        )
        all_added = self.added_ids + chosen.sent_ids
        if s.from_scratch:
            model, epochs, mode = self.start_pipeline, s.resolved_initial_epochs, "scratch"
            epochs = epochs or s.finetune_epochs
        else:
            model, epochs, mode = nlp, s.finetune_epochs, "warm"
        return al_iteration.update(
            self.store,
            model,
            self.expert_docs(all_added),
            self.corpora.cheap,
            self.corpora.dev,
            s,
            iteration=number,
            added_ids=chosen.sent_ids,
            all_added_ids=all_added,
            n_initial_expert=len(self.initial_ids),
            previous_f1=self.history[-1]["dev"]["f1"],
            epochs=epochs,
            score_seconds=chosen.scored.seconds,
            started=started,
            record={
                "selected": chosen.selected(),
                "scoring": chosen.scored.stats(),
                **self.record(mode, self.history[-1]["checkpoint"]),
            },
        )

    def stop(self) -> str | None:
        s = self.settings
        return stop_reason(
            self.history,
            improvement_threshold=s.improvement_threshold,
            min_iterations=s.min_iterations,
            max_iterations=s.max_iterations,
            pool_left=len(self.remaining_pool()),
        )

    def summary(self, stopped: str | None) -> dict[str, Any]:
        chosen = chosen_checkpoint(self.history)
        return {
            "strategy": str(self.strategy),
            "strategy_name": self.settings.strategy,
            "fingerprint": self.fingerprint,
            "settings": self.settings.to_dict(),
            "n_initial_expert": len(self.initial_ids),
            "pool": {"setting": self.corpora.pool_setting, "size": len(self.corpora.pool_ids)},
            "stopped": stopped,
            "chosen": {
                "checkpoint": chosen["checkpoint"],
                "iteration": chosen["iteration"],
                "rule": "highest dev F1 (earliest on ties)",
                "path": str(self.store.pipeline_path(chosen["checkpoint"])),
                "n_added": chosen["n_added"],
                "n_expert_total": chosen["n_expert_total"],
                "n_added_tokens": chosen["n_added_tokens"],
                "n_expert_tokens_total": chosen["n_expert_tokens_total"],
                "dev": chosen["dev"],
            },
            "final": self.history[-1]["checkpoint"],
            "iterations": [
                {k: v for k, v in entry.items() if k not in ("all_added_ids", "selected")}
                for entry in self.history
            ],
        }

    def prune(self) -> None:
        keep_last = self.settings.keep_checkpoints
        if not keep_last:
            return
        keep = {entry["checkpoint"] for entry in self.history[-keep_last:]}
        keep.add(chosen_checkpoint(self.history)["checkpoint"])
        self.store.prune(keep)

    def run(self) -> dict[str, Any]:
        """Resume, run iterations until the stopping rule says stop, write the history."""
        if self.settings.gpu_id >= 0:
            from spacy import util

            util.require_gpu(self.settings.gpu_id)
        self.resume()
        nlp: Language | None = None
        if not self.history:
            nlp, record = self.initial_iteration()
            self.history.append(self.entry(record))
        else:
            msg.info(f"Resuming after {self.history[-1]['checkpoint']}")
        s = self.settings
        bar = tqdm(
            total=max(s.max_iterations, self.history[-1]["iteration"]),
            initial=self.history[-1]["iteration"],
            desc=f"active learning ({s.strategy})",
            unit="iter",
            disable=not self.progress,
        )
        stopped = self.stop()
        while stopped is None:
            number = self.history[-1]["iteration"] + 1
            if nlp is None:
                nlp = self.store.load(self.history[-1])
            nlp, record = self.next_iteration(nlp, number)
            self.history.append(self.entry(record))
            self.prune()
            atomic_write_json(self.output_dir / HISTORY_FILE, self.summary(None))
            bar.update(1)
            bar.set_postfix(dev_f1=f"{record['dev']['f1']:.4f}", added=record["n_added"])
            stopped = self.stop()
        bar.close()
        summary = self.summary(stopped)
        atomic_write_json(self.output_dir / HISTORY_FILE, summary)
        return summary


def run_loop(
    settings: LoopSettings,
    output_dir: Path | str,
    *,
    progress: bool = True,
    restart: bool = False,
    on_checkpoint: OnCheckpoint | None = None,
    hub: HubSettings | None = None,
    config: Config | None = None,
) -> dict[str, Any]:
    """Run (or resume) the loop in ``output_dir``; returns the history written to
    ``output_dir/history.json``.

    restart (bool): Delete the folder's checkpoints first.
    on_checkpoint (Optional[Callable[[Path, dict], Any]]): Called after each finished iteration
        with the pipeline folder and the manifest.
    hub (Optional[HubSettings]): Also push every checkpoint to its own branch of this repo; the
        token is checked before anything is written, and the checkpoints of an earlier
        interrupted run that never reached the Hub are pushed first.
    config (Optional[Config]): The resolved settings, written to ``output_dir/config.cfg``.
    """
    output_dir = Path(output_dir)
    store = open_store(output_dir, hub, on_checkpoint)
    if restart and output_dir.exists():
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
        (output_dir / HISTORY_FILE).unlink(missing_ok=True)
    run = ActiveLearningRun(settings, output_dir, progress=progress, store=store)
    if config is not None:
        write_resolved(config, output_dir)
    if isinstance(store, HubMirroredStore) and not restart:
        store.catch_up()
    return run.run()


def run_from_config(
    config_path: Path | str,
    output_dir: Path | str,
    overrides: dict[str, Any] | None = None,
    *,
    restart: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the loop with the settings of a file (``configs/al.cfg``) and overrides;
    the resolved settings are written to ``output_dir/config.cfg``, the history returned."""
    config = load_al_config(config_path, overrides)
    settings = with_input_hashes(loop_settings(config))
    hub = hub_settings(config)
    return run_loop(
        settings, output_dir, progress=progress, restart=restart, hub=hub, config=config
    )


def evaluate_chosen_on_test(
    output_dir: Path | str, test_path: Path | str, batch_size: int = 64
) -> dict[str, Any]:
    """Score the chosen checkpoint (highest dev F1) of a finished run on test, once, and write
    ``test_metrics.json`` beside its history. No other checkpoint is ever scored on test."""
    output_dir = Path(output_dir)
    history = json.loads((output_dir / HISTORY_FILE).read_text(encoding="utf8"))
    chosen = history["chosen"]
    nlp = load_pipeline(open_store(output_dir).pipeline_path(chosen["checkpoint"]))
    test = evaluate_pipeline(nlp, read_docbin(test_path, nlp.vocab), batch_size, progress=False)
    result = {
        "checkpoint": chosen["checkpoint"],
        "chosen_by": chosen["rule"],
        "strategy": history["strategy_name"],
        "n_expert_total": chosen["n_expert_total"],
        "n_expert_tokens_total": chosen.get("n_expert_tokens_total"),
        "dev": chosen["dev"],
        "test": test,
        "test_path": str(test_path),
    }
    atomic_write_json(output_dir / TEST_METRICS_FILE, result)
    return result
