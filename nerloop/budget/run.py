"""One run of the k-fold grid, and the grid's runs through ``nerloop.executors``.

Each run is independent and its result is one JSON file (``runs/<name>.json``) written atomically
as soon as it finishes, with a fingerprint of everything that determines it, so a rerun skips the
finished runs (and recomputes a run whose settings or inputs changed). Runs go to
``nerloop.executors.run_tasks``: in this process, to spawned worker processes or to Ray tasks.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from spacy.tokens import Doc
from spacy.vocab import Vocab
from tqdm import tqdm

from nerloop.budget.plan import RunSpec
from nerloop.errors import SettingsError
from nerloop.executors import EXECUTORS, run_tasks, set_thread_limits
from nerloop.fingerprint import fingerprint
from nerloop.io_utils import atomic_write_json, read_docbin
from nerloop.mixing import mix_corpus
from nerloop.training import finetune, load_or_init_pipeline

RESULT_VERSION = 1
SELECT = ("best", "last")


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs besides its own expert sentences (picklable, JSON-able)."""

    cheap_path: str
    gold_path: str
    dev_path: str
    init_model: str | None = None
    config_path: str | None = None
    pool: str = "auto"
    epochs: int = 3
    eval_every: int | None = None
    select: str = "last"
    learn_rate: float | None = None
    dropout: float | None = None
    batch_words: int | None = None
    cheap_weight: float = 1.0
    seed: int = 0
    threads: int = 1
    gpu_id: int = -1
    input_hashes: dict[str, str] = field(default_factory=dict, compare=False)
    # spaCy [training] overrides (``[training]`` of configs/kfold.cfg beyond our own keys)
    training: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if (self.init_model is None) == (self.config_path is None):
            raise SettingsError(
                "give exactly one of init_model (fine-tune) and config_path (scratch)"
            )
        if self.select not in SELECT:
            raise SettingsError(f"select must be 'best' or 'last', not {self.select!r}")
        if self.epochs < 1:
            raise SettingsError(f"epochs must be at least 1, not {self.epochs}")

    def fingerprint_data(self) -> dict[str, Any]:
        """The settings that determine a run's result: the inputs by content (``input_hashes``),
        not by path, and neither threads nor the GPU id. spaCy [training] overrides count only
        when there are some, so runs made before they existed keep their fingerprints."""
        data = asdict(self)
        for key in ("cheap_path", "gold_path", "dev_path", "init_model", "config_path"):
            data.pop(key)
        for key in ("threads", "gpu_id"):
            data.pop(key)
        if not data["training"]:
            data.pop("training")
        data["mode"] = "finetune" if self.init_model else "scratch"
        return data


def run_fingerprint(spec: RunSpec, settings: RunSettings) -> str:
    """The fingerprint of a run's result: its spec, its expert sentences and the settings."""
    data = {
        "version": RESULT_VERSION,
        "settings": settings.fingerprint_data(),
        "spec": {**spec.describe(), "expert_ids": list(spec.expert_ids)},
    }
    return fingerprint(data)


@lru_cache(maxsize=2)
def _load_corpora(
    cheap_path: str, gold_path: str, dev_path: str, stamp: tuple
) -> tuple[list[Doc], list[Doc], list[Doc]]:
    """The three DocBins, read once per process (the stamp invalidates changed files)."""
    vocab = Vocab()
    return (
        read_docbin(cheap_path, vocab),
        read_docbin(gold_path, vocab),
        read_docbin(dev_path, vocab),
    )


def _file_stamp(*paths: str) -> tuple:
    return tuple((p, os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths)


def execute_run(spec: RunSpec, settings: RunSettings) -> dict[str, Any]:
    """Mix, train and score one run; returns its result (the caller writes it)."""
    start = time.perf_counter()
    set_thread_limits(settings.threads)
    paths = (settings.cheap_path, settings.gold_path, settings.dev_path)
    cheap, gold, dev = _load_corpora(*paths, _file_stamp(*paths))
    mixed = mix_corpus(
        cheap,
        gold,
        spec.expert_ids,
        pool=settings.pool,
        cheap_weight=settings.cheap_weight,
        expert_weight=spec.expert_weight,
    )
    seed = settings.seed + spec.fold
    nlp = load_or_init_pipeline(
        mixed.docs,
        init_model=Path(settings.init_model) if settings.init_model else None,
        config_path=Path(settings.config_path) if settings.config_path else None,
        seed=seed,
        gpu_id=settings.gpu_id,
    )
    trained = finetune(
        nlp,
        mixed.docs,
        dev,
        epochs=settings.epochs,
        seed=seed,
        learn_rate=settings.learn_rate,
        dropout=settings.dropout,
        batch_words=settings.batch_words,
        eval_every=settings.eval_every or (1 if settings.select == "best" else settings.epochs),
        keep_best=False,
        progress=False,
        training=dict(settings.training),
    )
    epoch = trained.best_epoch if settings.select == "best" else trained.last_epoch
    return {
        "name": spec.name,
        "fingerprint": run_fingerprint(spec, settings),
        **spec.describe(),
        "seed": seed,
        "selected_epoch": epoch,
        "select": settings.select,
        "dev": trained.scores(epoch),
        "history": trained.history,
        "counts": mixed.summary["counts"],
        "n_replaced": mixed.summary["n_replaced"],
        "n_train_docs": len(mixed.docs),
        "seconds": time.perf_counter() - start,
        "expert_ids": list(spec.expert_ids),
    }


def load_finished(path: Path, expected: str) -> dict[str, Any] | None:
    """A finished run's result, or None when missing, unreadable or made with other settings."""
    try:
        result = json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError):
        return None
    if result.get("fingerprint") != expected or "dev" not in result:
        return None
    return result


@dataclass
class GridReport:
    """What ``run_grid`` did: results by run name, and which runs were computed or skipped."""

    results: dict[str, dict[str, Any]]
    computed: list[str]
    skipped: list[str]
    failed: dict[str, str]


def run_grid(
    specs: Sequence[RunSpec],
    settings: RunSettings,
    runs_dir: Path,
    *,
    executor: str = "local",
    processes: int = 2,
    ray_address: str | None = None,
    progress: bool = True,
) -> GridReport:
    """Run every spec whose result file is missing or stale; write each result as it comes.

    specs (Sequence[RunSpec]): The grid (see ``plan_grid``).
    settings (RunSettings): Shared run settings.
    runs_dir (Path): One ``<run name>.json`` per run.
    executor (str): ``local`` (spawned processes), ``serial`` (this process) or ``ray``; see
        ``nerloop.executors.run_tasks``.
    processes (int): Runs at the same time (``local`` with 0 or 1 runs in this process).
    ray_address (Optional[str]): A Ray cluster address (``executor="ray"``); None starts Ray
        locally.
    progress (bool): Show one progress bar over the grid, with an ETA.
    RETURNS (GridReport): The results of all runs, and what was computed, skipped or failed.
    """
    if executor not in EXECUTORS:
        raise SettingsError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError("two runs of the grid have the same name")
    results: dict[str, dict[str, Any]] = {}
    todo: list[RunSpec] = []
    for spec in specs:
        finished = load_finished(runs_dir / f"{spec.name}.json", run_fingerprint(spec, settings))
        if finished is None:
            todo.append(spec)
        else:
            results[spec.name] = finished
    report = GridReport(results, [], sorted(results), {})
    bar = tqdm(
        total=len(specs), initial=len(results), desc="k-fold grid", unit="run", disable=not progress
    )

    def on_result(spec: RunSpec, result: dict[str, Any]) -> None:
        atomic_write_json(runs_dir / f"{spec.name}.json", result)
        results[spec.name] = result
        report.computed.append(spec.name)
        bar.set_postfix_str(f"{spec.name}: F1 {result['dev']['f1']:.4f}")
        bar.update(1)

    def on_failure(spec: RunSpec, error: BaseException) -> None:
        report.failed[spec.name] = f"{type(error).__name__}: {error}"
        bar.write(f"run {spec.name} failed: {type(error).__name__}: {error}")
        bar.update(1)

    try:
        if todo:
            run_tasks(
                partial(execute_run, settings=settings),
                todo,
                on_result,
                on_failure,
                executor=executor,
                processes=processes,
                threads=settings.threads,
                address=ray_address,
            )
    finally:
        bar.close()
    return report
