"""The active learning loop: score the expert pool, let the experts label the most uncertain
sentences (their gold labels stand in for the experts), fine-tune, evaluate on dev, repeat until
the gain stalls.

Iteration 0 is the starting point: a trained pipeline (``init_model``, e.g. the model trained on
the cheap set plus the initial expert budget) or one trained from a config on that same set.
Iteration ``i >= 1``:

1. score the sentences of the expert pool not labelled yet (``scripts/al/scoring.py``) with the
   pipeline of iteration ``i - 1``;
2. select ``batch_to_add`` of them (``scripts/al/selection.py``);
3. build the training set (``scripts/mix.py``): the cheap set, with gold labels for the initial
   expert sentences and for every sentence added so far;
4. fine-tune the pipeline of iteration ``i - 1`` on it (warm start), or retrain from the initial
   model or config (``from_scratch``), and score it on dev (entity F1, seqeval accuracy, loss);
5. save the checkpoint ``active_iter_{i}_added_{n}`` and its manifest (``checkpoints.py``).

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

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.vocab import Vocab
from tqdm import tqdm
from wasabi import msg

from nerloop.al.checkpoints import CheckpointStore, ResumeError, checkpoint_name
from nerloop.al.scoring import score_pool
from nerloop.al.selection import EmptyPoolError, select_batch
from nerloop.al.strategies import UnknownStrategyError, make_strategy
from nerloop.corpus import meta
from nerloop.eval.pipeline import evaluate_pipeline, load_pipeline
from nerloop.io_utils import atomic_write_json, input_hashes, read_docbin
from nerloop.mixing import (
    ExpertPoolError,
    budget_from_percent,
    check_expert_ids,
    draw_expert_ids,
    expert_pool,
    mix_corpus,
    read_expert_ids,
    resolve_pool_setting,
)
from nerloop.training import DEV_KEYS, finetune, load_or_init_pipeline

HISTORY_FILE = "history.json"
TEST_METRICS_FILE = "test_metrics.json"
MANIFEST_VERSION = 1
# Settings that only decide when to stop (a rerun may change them and continue) or how fast it
# runs; every other setting is part of the run's fingerprint.
NOT_FINGERPRINTED = (
    "improvement_threshold",
    "min_iterations",
    "max_iterations",
    "scoring_batch_size",
    "keep_checkpoints",
    "gpu_id",
)
# The study's settings (BERT-base + BiLSTM on a GPU), documented as the GPU var set.
STUDY_SETTINGS = {
    "initial_epochs": 5,
    "finetune_epochs": 2,
    "batch_to_add": 10,
    "improvement_threshold": 0.00005,
    "min_iterations": 10,
    "max_iterations": 15,
    "strategy": "entropy",
}
# What the loop's CLIs report in one line (bad inputs or settings) rather than as a traceback.
LOOP_ERRORS = (ExpertPoolError, ResumeError, EmptyPoolError, UnknownStrategyError)


@dataclass(frozen=True)
class LoopSettings:
    """Every setting of an active learning run (JSON-able; recorded in each manifest).

    init_model / init_config: Start from a trained pipeline, or train one from a config on the
        cheap set plus the initial expert sentences (exactly one of them).
    initial_expert_ids: The expert sentences of the starting training set (those the init model
        was trained with).
    initial_epochs: Epochs of the initial training (None: 5 from a config; 0 from a trained
        pipeline, which is then used as it is). Also the epochs of each retraining in
        ``from_scratch`` mode when > 0.
    finetune_epochs: Epochs of each warm-started fine-tuning.
    batch_to_add: Expert sentences added per iteration.
    improvement_threshold / min_iterations / max_iterations: The stopping rule.
    strategy: A name of ``scripts.al.strategies.STRATEGIES``.
    mc_samples / mc_dropout: Monte Carlo dropout for ``bald``.
    max_jaccard: The diversity rule of the selection (None: off).
    pool_sample: Score a seeded random subset of this many pool sentences per iteration (0: the
        whole pool).
    from_scratch: Retrain from the initial model or config each iteration instead of warm start.
    pool / cheap_weight / expert_weight: As in ``scripts/mix.py``.
    learn_rate / dropout / batch_words: Training overrides, as in ``scripts/finetune.py``.
    """

    cheap_path: str
    gold_path: str
    dev_path: str
    init_model: str | None = None
    init_config: str | None = None
    initial_expert_ids: tuple[int, ...] = ()
    initial_epochs: int | None = None
    finetune_epochs: int = 2
    batch_to_add: int = 10
    improvement_threshold: float = 0.00005
    min_iterations: int = 10
    max_iterations: int = 15
    strategy: str = "entropy"
    seed: int = 0
    mc_samples: int = 10
    mc_dropout: float = 0.1
    max_jaccard: float | None = None
    pool_sample: int = 0
    from_scratch: bool = False
    pool: str = "auto"
    cheap_weight: float = 1.0
    expert_weight: float = 1.0
    learn_rate: float | None = None
    dropout: float | None = None
    batch_words: int | None = None
    scoring_batch_size: int = 64
    keep_checkpoints: int = 0
    gpu_id: int = -1
    input_hashes: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if (self.init_model is None) == (self.init_config is None):
            raise ValueError("give exactly one of init_model and init_config")
        positive = {"finetune_epochs": self.finetune_epochs, "batch_to_add": self.batch_to_add}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        for name in ("min_iterations", "max_iterations", "pool_sample", "keep_checkpoints"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.initial_epochs is not None and self.initial_epochs < 0:
            raise ValueError("initial_epochs must not be negative")
        if self.init_config is not None and self.initial_epochs == 0:
            raise ValueError("a pipeline trained from a config needs initial_epochs >= 1")
        make_strategy(self.strategy, mc_samples=self.mc_samples, mc_dropout=self.mc_dropout)

    @property
    def resolved_initial_epochs(self) -> int:
        if self.initial_epochs is not None:
            return self.initial_epochs
        return 0 if self.init_model is not None else STUDY_SETTINGS["initial_epochs"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["initial_expert_ids"] = list(self.initial_expert_ids)
        return data

    def fingerprint(self) -> str:
        """sha256 of everything that decides the selections and the models."""
        data = {k: v for k, v in self.to_dict().items() if k not in NOT_FINGERPRINTED}
        data["initial_epochs"] = self.resolved_initial_epochs
        data["version"] = MANIFEST_VERSION
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


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


def load_corpora(settings: LoopSettings) -> Corpora:
    vocab = Vocab()
    cheap = read_docbin(settings.cheap_path, vocab)
    gold = meta.by_sent_id(read_docbin(settings.gold_path, vocab))
    dev = read_docbin(settings.dev_path, vocab)
    cheap_ids = [meta.sent_id(doc) for doc in cheap]
    setting = resolve_pool_setting(cheap_ids, gold, settings.pool)
    return Corpora(cheap, gold, dev, setting, expert_pool(cheap_ids, gold, setting))


OnCheckpoint = Callable[[Path, dict[str, Any]], Any]


class ActiveLearningRun:
    """One run of the loop in ``output_dir`` (resumed when it holds finished iterations).

    on_checkpoint (Optional[Callable[[Path, dict], Any]]): Called with the pipeline folder and the
        manifest once an iteration is finished (e.g. ``scripts.hub_store.push_to_hub``).
    """

    def __init__(
        self,
        settings: LoopSettings,
        output_dir: Path | str,
        progress: bool = True,
        on_checkpoint: OnCheckpoint | None = None,
    ):
        self.settings = settings
        self.on_checkpoint = on_checkpoint
        self.output_dir = Path(output_dir)
        self.store = CheckpointStore(self.output_dir)
        self.progress = progress
        self.strategy = make_strategy(
            settings.strategy,
            seed=settings.seed,
            mc_samples=settings.mc_samples,
            mc_dropout=settings.mc_dropout,
        )
        self.fingerprint = settings.fingerprint()
        self.corpora = load_corpora(settings)
        self.initial_ids = check_expert_ids(settings.initial_expert_ids, self.corpora.pool_ids)
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
            if manifest["fingerprint"] != self.fingerprint:
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

    @staticmethod
    def entry(manifest: dict[str, Any]) -> dict[str, Any]:
        """The history entry of a manifest (everything but the settings)."""
        return {k: v for k, v in manifest.items() if k not in ("settings", "fingerprint")}

    # -- steps ----------------------------------------------------------------------------------

    def training_docs(self, added_ids: list[int]) -> list[Doc]:
        mixed = mix_corpus(
            self.corpora.cheap,
            list(self.corpora.gold.values()),
            self.initial_ids + added_ids,
            pool=self.corpora.pool_setting,
            cheap_weight=self.settings.cheap_weight,
            expert_weight=self.settings.expert_weight,
        )
        return mixed.docs

    def start_pipeline(self, train_docs: list[Doc]) -> Language:
        s = self.settings
        return load_or_init_pipeline(
            train_docs,
            init_model=Path(s.init_model) if s.init_model else None,
            config_path=Path(s.init_config) if s.init_config else None,
            seed=s.seed,
            gpu_id=s.gpu_id,
        )

    def train(
        self, nlp: Language, train_docs: list[Doc], epochs: int, iteration: int
    ) -> dict[str, float]:
        s = self.settings
        result = finetune(
            nlp,
            train_docs,
            self.corpora.dev,
            epochs=epochs,
            seed=s.seed + iteration,
            learn_rate=s.learn_rate,
            dropout=s.dropout,
            batch_words=s.batch_words,
            eval_every=epochs,
            keep_best=False,
            progress=False,
        )
        return result.last_scores

    def candidates(self, iteration: int) -> list[int]:
        """The pool sentences scored in this iteration (a seeded subset with ``pool_sample``)."""
        remaining = self.remaining_pool()
        size = self.settings.pool_sample
        if not size or size >= len(remaining):
            return remaining
        rng = numpy.random.default_rng([self.settings.seed, iteration, 1])
        return sorted(int(i) for i in rng.choice(remaining, size=size, replace=False))

    def initial_iteration(self) -> tuple[Language, dict[str, Any]]:
        start = time.perf_counter()
        train_docs = self.training_docs([])
        nlp = self.start_pipeline(train_docs)
        epochs = self.settings.resolved_initial_epochs
        if epochs:
            dev = self.train(nlp, train_docs, epochs, iteration=0)
        else:
            scores = evaluate_pipeline(nlp, self.corpora.dev, progress=False)
            dev = {key: float(scores[key]) for key in DEV_KEYS}
        finetune_seconds = time.perf_counter() - start
        record = {
            "iteration": 0,
            "n_added": 0,
            "added_ids": [],
            "all_added_ids": [],
            "selected": [],
            "gain": None,
            "n_train_docs": len(train_docs),
            "initial_epochs": epochs,
            "scoring": None,
            "seconds": {"score": 0.0, "finetune": finetune_seconds},
        }
        return nlp, record | {"dev": dev}

    def next_iteration(self, nlp: Language, iteration: int) -> tuple[Language, dict[str, Any]]:
        s = self.settings
        candidates = self.candidates(iteration)
        scored = score_pool(
            nlp,
            [self.corpora.gold[i] for i in candidates],
            self.strategy,
            round=iteration,
            batch_size=s.scoring_batch_size,
            seed=s.seed + iteration,
            progress=self.progress,
        )
        chosen = select_batch(
            scored.sent_ids, scored.scores, scored.tokens, s.batch_to_add, max_jaccard=s.max_jaccard
        )
        score_of = dict(zip(scored.sent_ids, scored.scores.tolist(), strict=True))
        all_added = self.added_ids + chosen
        train_start = time.perf_counter()
        train_docs = self.training_docs(all_added)
        if s.from_scratch:
            nlp = self.start_pipeline(train_docs)
            epochs = s.resolved_initial_epochs or s.finetune_epochs
        else:
            epochs = s.finetune_epochs
        dev = self.train(nlp, train_docs, epochs, iteration)
        finetune_seconds = time.perf_counter() - train_start
        record = {
            "iteration": iteration,
            "n_added": len(all_added),
            "added_ids": chosen,
            "all_added_ids": all_added,
            "selected": [
                {
                    "sent_id": i,
                    "score": score_of[i],
                    "text": " ".join(t.text for t in self.corpora.gold[i]),
                }
                for i in chosen
            ],
            "gain": dev["f1"] - self.history[-1]["dev"]["f1"],
            "n_train_docs": len(train_docs),
            "epochs": epochs,
            "scoring": scored.stats(),
            "seconds": {"score": scored.seconds, "finetune": finetune_seconds},
        }
        return nlp, record | {"dev": dev}

    def save(self, nlp: Language, record: dict[str, Any], started: float) -> None:
        """Write the checkpoint, then its manifest (the iteration is finished once it exists)."""
        name = checkpoint_name(record["iteration"], record["n_added"])
        save_start = time.perf_counter()
        self.store.save_pipeline(nlp, name, record["dev"])
        record["seconds"]["save"] = time.perf_counter() - save_start
        record["seconds"]["iteration"] = time.perf_counter() - started
        manifest = {
            "version": MANIFEST_VERSION,
            "checkpoint": name,
            **record,
            "n_initial_expert": len(self.initial_ids),
            "n_expert_total": len(self.initial_ids) + record["n_added"],
            "strategy": str(self.strategy),
            "mode": "scratch" if self.settings.from_scratch else "warm",
            "fingerprint": self.fingerprint,
            "settings": self.settings.to_dict(),
        }
        self.store.write_manifest(manifest)
        self.history.append(self.entry(manifest))
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.store.pipeline_path(name), manifest)

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
            started = time.perf_counter()
            nlp, record = self.initial_iteration()
            self.save(nlp, record, started)
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
            iteration = self.history[-1]["iteration"] + 1
            if nlp is None:
                nlp = self.store.load(self.history[-1])
            started = time.perf_counter()
            nlp, record = self.next_iteration(nlp, iteration)
            self.save(nlp, record, started)
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
) -> dict[str, Any]:
    """Run (or resume) the loop in ``output_dir``; returns the history written to
    ``output_dir/history.json``. ``restart`` deletes the folder's checkpoints first;
    ``on_checkpoint`` is called after each finished iteration (see ``ActiveLearningRun``)."""
    output_dir = Path(output_dir)
    if restart and output_dir.exists():
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
        (output_dir / HISTORY_FILE).unlink(missing_ok=True)
    run = ActiveLearningRun(settings, output_dir, progress=progress, on_checkpoint=on_checkpoint)
    return run.run()


def resolve_initial_ids(
    cheap_path: Path,
    gold_path: Path,
    ids_path: Path | None,
    budget_pct: float | None,
    seed: int,
    pool: str,
) -> list[int]:
    """The initial expert ids: read from a file, drawn at a budget, or none."""
    if ids_path is not None and budget_pct is not None:
        raise ExpertPoolError("give --initial-expert-ids or --initial-budget-pct, not both")
    if ids_path is not None:
        return read_expert_ids(ids_path)
    if budget_pct is None:
        return []
    vocab = Vocab()
    cheap_ids = [meta.sent_id(doc) for doc in read_docbin(cheap_path, vocab)]
    gold_ids = [meta.sent_id(doc) for doc in read_docbin(gold_path, vocab)]
    budget = budget_from_percent(budget_pct, len(cheap_ids))
    return draw_expert_ids(expert_pool(cheap_ids, gold_ids, pool), budget, seed)


def settings_from_cli(
    cheap_path: Path,
    gold_path: Path,
    dev_path: Path,
    *,
    seed: int,
    pool: str,
    init_model: Path | None = None,
    init_config: Path | None = None,
    initial_expert_ids: Path | None = None,
    initial_budget_pct: float | None = None,
    **options: Any,
) -> LoopSettings:
    """The settings of a command-line run (``al_loop``, ``al_compare``).

    initial_expert_ids / initial_budget_pct: A file of initial expert ids, or a budget to draw
        them at (see ``resolve_initial_ids``); neither: none.
    options: Every other setting, by its ``LoopSettings`` name (unset: the default).
    RETURNS (LoopSettings): The settings, paths as strings (without ``input_hashes``).
    """
    ids = resolve_initial_ids(
        cheap_path, gold_path, initial_expert_ids, initial_budget_pct, seed, pool
    )
    return LoopSettings(
        cheap_path=str(cheap_path),
        gold_path=str(gold_path),
        dev_path=str(dev_path),
        init_model=str(init_model) if init_model else None,
        init_config=str(init_config) if init_config else None,
        initial_expert_ids=tuple(ids),
        seed=seed,
        pool=pool,
        **options,
    )


def with_input_hashes(settings: LoopSettings) -> LoopSettings:
    """The settings with the sha256 of every input file and of the init model's files, so a
    run never continues on changed data."""
    from dataclasses import replace

    hashes = input_hashes(
        {
            "cheap": settings.cheap_path,
            "gold": settings.gold_path,
            "dev": settings.dev_path,
            "init_model": settings.init_model,
            "init_config": settings.init_config,
        }
    )
    return replace(settings, input_hashes=hashes)


def evaluate_chosen_on_test(
    output_dir: Path | str, test_path: Path | str, batch_size: int = 64
) -> dict[str, Any]:
    """Score the chosen checkpoint (highest dev F1) of a finished run on test, once, and write
    ``test_metrics.json`` beside its history. No other checkpoint is ever scored on test."""
    output_dir = Path(output_dir)
    history = json.loads((output_dir / HISTORY_FILE).read_text(encoding="utf8"))
    chosen = history["chosen"]
    nlp = load_pipeline(CheckpointStore(output_dir).pipeline_path(chosen["checkpoint"]))
    test = evaluate_pipeline(nlp, read_docbin(test_path, nlp.vocab), batch_size, progress=False)
    result = {
        "checkpoint": chosen["checkpoint"],
        "chosen_by": chosen["rule"],
        "strategy": history["strategy_name"],
        "n_expert_total": chosen["n_expert_total"],
        "dev": chosen["dev"],
        "test": test,
        "test_path": str(test_path),
    }
    atomic_write_json(output_dir / TEST_METRICS_FILE, result)
    return result
