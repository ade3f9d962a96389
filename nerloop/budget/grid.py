"""The k-fold expert-budget experiment: how many expert sentences until the gain saturates?

For each budget (a percentage of the cheap set size) and each of k folds of the expert pool, that
many expert sentences are taken from the fold, mixed into the cheap corpus (``scripts/mix.py``),
and a model is fine-tuned from the LLM-only model (or trained from scratch) and scored on dev:
entity F1, seqeval accuracy and validation loss. Budgets get the mean and standard deviation over
the folds; the saturation point and the recommended starting budget follow from a stated rule.

Each run is independent and its result is one JSON file (``runs/<name>.json``) written atomically
as soon as it finishes, with a fingerprint of everything that determines it, so a rerun skips the
finished runs (and recomputes a run whose settings or inputs changed). Runs go to a local process
pool (spawned processes) or to Ray tasks.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy
import typer
from spacy.tokens import Doc
from spacy.vocab import Vocab
from tqdm import tqdm

from nerloop.corpus import meta
from nerloop.eval.pipeline import read_dev_f1
from nerloop.io_utils import (
    atomic_write_json,
    atomic_write_text,
    input_hashes,
    png_figure,
    read_docbin,
)
from nerloop.mixing import (
    ExpertPoolError,
    budget_from_percent,
    expert_pool,
    mix_corpus,
    resolve_pool_setting,
)
from nerloop.training import (
    finetune,
    load_or_init_pipeline,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUDGETS = (1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 12.0, 15.0, 20.0)
DEFAULT_FOLDS = 5
DEFAULT_EPOCHS = 3
DEFAULT_SATURATION_THRESHOLD = 0.01
STUDY_BUDGET_PCT = 12.0
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
RESULT_VERSION = 1
METRICS = ("f1", "accuracy", "loss")
SATURATION_RULE = (
    "the smallest budget b such that, for every larger budget b' in the grid, the mean dev F1 "
    "gained per 100 extra expert sentences, 100 * (F1(b') - F1(b)) / (n(b') - n(b)), is below "
    "the threshold; the recommended starting budget is that b (the largest budget when no "
    "budget qualifies: then the curve has not saturated within the grid)"
)


# ---------------------------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs besides its own expert sentences (picklable, JSON-able)."""

    cheap_path: str
    gold_path: str
    dev_path: str
    init_model: str | None = None
    config_path: str | None = None
    pool: str = "auto"
    epochs: int = DEFAULT_EPOCHS
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

    def __post_init__(self) -> None:
        if (self.init_model is None) == (self.config_path is None):
            raise ValueError("give exactly one of init_model (fine-tune) and config_path (scratch)")
        if self.select not in ("best", "last"):
            raise ValueError(f"select must be 'best' or 'last', not {self.select!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, not {self.epochs}")

    def fingerprint_data(self) -> dict[str, Any]:
        """The settings that determine a run's result: the inputs by content (``input_hashes``),
        not by path, and neither threads nor the GPU id."""
        data = asdict(self)
        for key in ("cheap_path", "gold_path", "dev_path", "init_model", "config_path"):
            data.pop(key)
        for key in ("threads", "gpu_id"):
            data.pop(key)
        data["mode"] = "finetune" if self.init_model else "scratch"
        return data


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: a budget, a fold, an expert weight and the expert sentences."""

    budget_pct: float
    n_expert: int
    fold: int
    expert_weight: float
    expert_ids: tuple[int, ...]

    @property
    def name(self) -> str:
        name = f"budget_{format_number(self.budget_pct)}_fold_{self.fold}"
        if self.expert_weight != 1.0:
            name += f"_weight_{format_number(self.expert_weight)}"
        return name

    def describe(self) -> dict[str, Any]:
        return {
            "budget_pct": self.budget_pct,
            "n_expert": self.n_expert,
            "fold": self.fold,
            "expert_weight": self.expert_weight,
        }


def format_number(value: float) -> str:
    """``12`` for 12.0, ``2.5`` for 2.5: for file names and tables."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def parse_numbers(text: str) -> list[float]:
    """``"1,2,3.5"`` -> ``[1.0, 2.0, 3.5]``, sorted and without duplicates."""
    try:
        values = sorted({float(item) for item in text.split(",") if item.strip()})
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, not {text!r}") from None
    if not values:
        raise typer.BadParameter("expected at least one number")
    return values


def split_folds(pool_ids: Sequence[int], k: int, seed: int) -> list[list[int]]:
    """Split the pool into ``k`` disjoint folds of nearly equal size that cover it (seeded; the
    order of ``pool_ids`` does not matter). Each fold is sorted."""
    pool = sorted(set(pool_ids))
    if k < 1:
        raise ExpertPoolError(f"the number of folds must be at least 1, not {k}")
    if k > len(pool):
        raise ExpertPoolError(f"cannot split a pool of {len(pool)} sentences into {k} folds")
    order = numpy.random.default_rng(seed).permutation(len(pool))
    return [sorted(pool[int(i)] for i in part) for part in numpy.array_split(order, k)]


def fold_draw_order(fold_ids: Sequence[int], seed: int, fold: int) -> list[int]:
    """The fold's sentences in a seeded random order; a budget of n takes the first n, so the
    draws of one fold are nested (the 2% sentences include the 1% ones), which makes the
    differences between budgets less noisy."""
    ids = sorted(fold_ids)
    order = numpy.random.default_rng([seed, fold]).permutation(len(ids))
    return [ids[int(i)] for i in order]


def plan_grid(
    cheap_ids: Sequence[int],
    gold_ids: Sequence[int],
    *,
    budgets: Sequence[float],
    k: int,
    expert_weights: Sequence[float] = (1.0,),
    seed: int = 0,
    pool: str = "auto",
) -> tuple[list[RunSpec], dict[str, Any]]:
    """All runs of the grid (fold-major) and a description of the pool and folds.

    cheap_ids (Sequence[int]): Sentence ids of the cheap set (budgets are percentages of its size).
    gold_ids (Sequence[int]): Sentence ids of the gold train set.
    budgets (Sequence[float]): Budgets in percent of the cheap set size.
    k (int): Number of folds of the expert pool.
    expert_weights (Sequence[float]): Loss weights of the expert sentences; one run per weight.
    seed (int): Seeds the folds and the draws.
    pool (str): ``rest``, ``cheap`` or ``auto`` (see scripts/mix.py).
    RETURNS (Tuple[List[RunSpec], dict]): The runs and the grid's description.
    """
    setting = resolve_pool_setting(cheap_ids, gold_ids, pool)
    pool_ids = expert_pool(cheap_ids, gold_ids, setting)
    folds = split_folds(pool_ids, k, seed)
    n_cheap = len(set(cheap_ids))
    sizes = {pct: budget_from_percent(pct, n_cheap) for pct in sorted(set(budgets))}
    smallest_fold = min(len(fold) for fold in folds)
    for pct, n in sizes.items():
        if n > smallest_fold:
            raise ExpertPoolError(
                f"a budget of {format_number(pct)}% is {n} sentences, more than the smallest of "
                f"the {k} folds ({smallest_fold} sentences): use fewer folds or smaller budgets"
            )
    if any(not w > 0 for w in expert_weights):
        raise ValueError(f"expert weights must be positive: {list(expert_weights)}")
    specs = []
    for fold, fold_ids in enumerate(folds):
        order = fold_draw_order(fold_ids, seed, fold)
        for pct, n in sizes.items():
            for weight in sorted(set(expert_weights), key=float):
                specs.append(RunSpec(pct, n, fold, float(weight), tuple(sorted(order[:n]))))
    description = {
        "pool": setting,
        "pool_size": len(pool_ids),
        "n_cheap": n_cheap,
        "k": k,
        "fold_sizes": [len(fold) for fold in folds],
        "budgets": {format_number(pct): n for pct, n in sizes.items()},
        "expert_weights": sorted({float(w) for w in expert_weights}),
        "seed": seed,
    }
    return specs, description


# ---------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------


def run_fingerprint(spec: RunSpec, settings: RunSettings) -> str:
    data = {
        "version": RESULT_VERSION,
        "settings": settings.fingerprint_data(),
        "spec": {**spec.describe(), "expert_ids": list(spec.expert_ids)},
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


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


def set_thread_limits(threads: int) -> None:
    """Limit torch's and the BLAS libraries' threads in this process."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            threadpool_limits(threads)


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


def load_finished(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """A finished run's result, or None when missing, unreadable or made with other settings."""
    try:
        result = json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError):
        return None
    if result.get("fingerprint") != fingerprint or "dev" not in result:
        return None
    return result


# ---------------------------------------------------------------------------------------------
# Executors
# ---------------------------------------------------------------------------------------------

OnResult = Callable[[RunSpec, dict[str, Any]], None]
OnFailure = Callable[[RunSpec, BaseException], None]


@contextlib.contextmanager
def _thread_env(threads: int) -> Iterator[dict[str, str]]:
    """Thread limits in the environment that new worker processes inherit."""
    values = {name: str(threads) for name in THREAD_ENV_VARS}
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield values
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_serial(
    specs: Sequence[RunSpec], settings: RunSettings, on_result: OnResult, on_failure: OnFailure
) -> None:
    """Run in this process, one after the other (``--processes 0``)."""
    for spec in specs:
        try:
            result = execute_run(spec, settings)
        except Exception as err:  # noqa: BLE001  (reported, the other runs go on)
            on_failure(spec, err)
        else:
            on_result(spec, result)


def run_local(
    specs: Sequence[RunSpec],
    settings: RunSettings,
    on_result: OnResult,
    on_failure: OnFailure,
    processes: int,
) -> None:
    """Run in ``processes`` spawned worker processes (a ProcessPoolExecutor)."""
    context = multiprocessing.get_context("spawn")
    with (
        _thread_env(settings.threads),
        ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool,
    ):
        futures = {pool.submit(execute_run, spec, settings): spec for spec in specs}
        for future in as_completed(futures):
            spec = futures[future]
            error = future.exception()
            if error is not None:
                on_failure(spec, error)
            else:
                on_result(spec, future.result())


def run_ray(
    specs: Sequence[RunSpec],
    settings: RunSettings,
    on_result: OnResult,
    on_failure: OnFailure,
    processes: int,
    address: str | None = None,
) -> None:
    """Run as Ray tasks of ``settings.threads`` CPUs each: on a new local Ray instance with
    ``processes * threads`` CPUs, or on the cluster at ``address``. The workers import this
    project from its path on the driver (PYTHONPATH), so a cluster needs the project and the
    input files at the same paths on every node (e.g. a shared file system)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError(
            "--executor ray needs Ray: pip install 'ray==2.40.0' (check it keeps torch and numpy)"
        ) from None
    python_path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {"PYTHONPATH": python_path, **{name: str(settings.threads) for name in THREAD_ENV_VARS}}
    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "warning",
        }
        if address:
            options["address"] = address
        else:
            options["num_cpus"] = processes * settings.threads
            options["object_store_memory"] = 256 * 1024 * 1024
        ray.init(**options)
        started = True
    try:
        remote_run = ray.remote(
            num_cpus=settings.threads, max_retries=0, runtime_env={"env_vars": env}
        )(execute_run)
        pending = {remote_run.remote(spec, settings): spec for spec in specs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                spec = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # noqa: BLE001
                    on_failure(spec, err)
                else:
                    on_result(spec, result)
    finally:
        if started:
            ray.shutdown()


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
    executor (str): ``local`` (process pool; ``processes=0`` runs in this process) or ``ray``.
    processes (int): Runs at the same time.
    ray_address (Optional[str]): A Ray cluster address (``executor="ray"``); None starts Ray
        locally.
    progress (bool): Show one progress bar over the grid, with an ETA.
    RETURNS (GridReport): The results of all runs, and what was computed, skipped or failed.
    """
    if executor not in ("local", "ray"):
        raise ValueError(f"executor must be 'local' or 'ray', not {executor!r}")
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
        if not todo:
            pass
        elif executor == "ray":
            run_ray(todo, settings, on_result, on_failure, max(1, processes), ray_address)
        elif processes == 0:
            run_serial(todo, settings, on_result, on_failure)
        else:
            run_local(todo, settings, on_result, on_failure, processes)
    finally:
        bar.close()
    return report


# ---------------------------------------------------------------------------------------------
# Summary, saturation, outputs
# ---------------------------------------------------------------------------------------------


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    array = numpy.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return float(array.mean()), std


def summarise_runs(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (expert weight, budget): n expert sentences and the mean and std over folds of
    dev F1, accuracy and loss, sorted by weight then budget."""
    groups: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault((result["expert_weight"], result["budget_pct"]), []).append(result)
    rows = []
    for (weight, pct), group in sorted(groups.items()):
        group = sorted(group, key=lambda r: r["fold"])
        row: dict[str, Any] = {
            "budget_pct": pct,
            "n_expert": group[0]["n_expert"],
            "expert_weight": weight,
            "n_folds": len(group),
        }
        for metric in METRICS:
            mean, std = _mean_std([r["dev"][metric] for r in group])
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean, std
        row["f1_per_fold"] = [r["dev"]["f1"] for r in group]
        rows.append(row)
    return rows


def find_saturation(
    rows: Sequence[dict[str, Any]], threshold: float = DEFAULT_SATURATION_THRESHOLD
) -> dict[str, Any]:
    """The saturation point of one F1 curve (rows of one expert weight) by ``SATURATION_RULE``.

    rows (Sequence[dict]): ``summarise_runs`` rows with ``budget_pct``, ``n_expert``, ``f1_mean``.
    threshold (float): Dev F1 (0-1 scale) per 100 expert sentences below which more sentences
        are not worth it.
    RETURNS (dict): ``reached``, the saturation and recommended budgets (percent and sentences),
        the gain per 100 sentences of each step of the curve, the rule and the threshold.
    """
    curve = sorted(rows, key=lambda r: (r["n_expert"], r["budget_pct"]))
    steps = [
        {
            "from_budget_pct": a["budget_pct"],
            "to_budget_pct": b["budget_pct"],
            "gain_per_100": (
                100.0 * (b["f1_mean"] - a["f1_mean"]) / (b["n_expert"] - a["n_expert"])
                if b["n_expert"] > a["n_expert"]
                else None
            ),
        }
        for a, b in zip(curve, curve[1:])
    ]
    result: dict[str, Any] = {
        "rule": SATURATION_RULE,
        "threshold_f1_per_100_sentences": threshold,
        "steps": steps,
        "reached": False,
        "saturation_budget_pct": None,
        "saturation_n_expert": None,
        "recommended_budget_pct": None,
        "recommended_n_expert": None,
    }
    if len(curve) < 2:
        result["note"] = "the rule needs at least two budgets: no recommendation"
        return result
    chosen = None
    for i, row in enumerate(curve[:-1]):
        gains = [
            100.0 * (later["f1_mean"] - row["f1_mean"]) / (later["n_expert"] - row["n_expert"])
            for later in curve[i + 1 :]
            if later["n_expert"] > row["n_expert"]
        ]
        if gains and max(gains) < threshold:
            chosen = row
            break
    if chosen is None:
        recommended = curve[-1]
        result["note"] = (
            "no budget qualifies: F1 still gains at least the threshold per 100 sentences up to "
            "the largest budget, so extend the grid"
        )
    else:
        recommended = chosen
        result["reached"] = True
        result["saturation_budget_pct"] = chosen["budget_pct"]
        result["saturation_n_expert"] = chosen["n_expert"]
    result["recommended_budget_pct"] = recommended["budget_pct"]
    result["recommended_n_expert"] = recommended["n_expert"]
    return result


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    columns = ["budget_pct", "n_expert", "expert_weight", "n_folds"] + [
        f"{metric}_{stat}" for metric in METRICS for stat in ("mean", "std")
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row[key] for key in columns})
    return buffer.getvalue()


def _pm(row: dict[str, Any], metric: str, digits: int = 4) -> str:
    return f"{row[f'{metric}_mean']:.{digits}f} ± {row[f'{metric}_std']:.{digits}f}"


def summary_markdown(summary: dict[str, Any]) -> str:
    """The budget table, the saturation point and, with several expert weights, the weights
    table."""
    rows = summary["rows"]
    weights = sorted({row["expert_weight"] for row in rows})
    lines = [
        f"# Expert budget, {summary['grid']['k']}-fold (dev, mean ± std over folds)",
        "",
        "| budget % | expert sentences | expert weight | folds | dev F1 | dev accuracy "
        "| dev loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {format_number(row['budget_pct'])} | {row['n_expert']} | "
            f"{format_number(row['expert_weight'])} | {row['n_folds']} | {_pm(row, 'f1')} | "
            f"{_pm(row, 'accuracy')} | {_pm(row, 'loss', 3)} |"
        )
    references = summary.get("references", {})
    for key, label in (("llm_pure", "LLM-only"), ("gold", "gold")):
        if references.get(key):
            reference = references[key]
            lines.append(f"\n{label} dev F1: {reference['f1']:.4f} ({reference['path']})")
    saturation = summary["saturation"]
    lines += ["", "## Saturation", "", f"Rule: {saturation['rule']}.", ""]
    lines.append(
        f"Threshold: {saturation['threshold_f1_per_100_sentences']} dev F1 per 100 expert "
        f"sentences (curve of expert weight {format_number(saturation['expert_weight'])})."
    )
    if saturation["reached"]:
        lines.append(
            f"Saturation point and recommended starting budget: "
            f"**{format_number(saturation['recommended_budget_pct'])}%** "
            f"({saturation['recommended_n_expert']} expert sentences)."
        )
    else:
        lines.append(f"Saturation not reached: {saturation.get('note', '')}.")
        if saturation["recommended_budget_pct"] is not None:
            lines.append(
                f"Recommended starting budget: "
                f"**{format_number(saturation['recommended_budget_pct'])}%** "
                f"({saturation['recommended_n_expert']} expert sentences)."
            )
    if len(weights) > 1:
        lines += ["", "## Expert weight", ""]
        lines.append(
            "| budget % | expert sentences | expert weight | dev F1 | ΔF1 vs first weight "
            "| dev accuracy | dev loss |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        by_budget: dict[float, list[dict[str, Any]]] = {}
        for row in rows:
            by_budget.setdefault(row["budget_pct"], []).append(row)
        for pct, group in sorted(by_budget.items()):
            group = sorted(group, key=lambda r: r["expert_weight"])
            base = group[0]["f1_mean"]
            for row in group:
                lines.append(
                    f"| {format_number(pct)} | {row['n_expert']} | "
                    f"{format_number(row['expert_weight'])} | {_pm(row, 'f1')} | "
                    f"{row['f1_mean'] - base:+.4f} | {_pm(row, 'accuracy')} | "
                    f"{_pm(row, 'loss', 3)} |"
                )
    return "\n".join(lines) + "\n"


def plot_curve(summary: dict[str, Any], path: Path) -> Path:
    """Dev F1 against expert sentences (mean ± std over folds), with the LLM-only and gold dev
    F1 as horizontal lines and the saturation point as a vertical line; written atomically."""
    rows = summary["rows"]
    n_cheap = summary["grid"]["n_cheap"]
    with png_figure(path) as (_, ax):
        for weight in sorted({row["expert_weight"] for row in rows}):
            curve = sorted(
                (r for r in rows if r["expert_weight"] == weight), key=lambda r: r["n_expert"]
            )
            ax.errorbar(
                [r["n_expert"] for r in curve],
                [r["f1_mean"] for r in curve],
                yerr=[r["f1_std"] for r in curve],
                marker="o",
                capsize=3,
                label=f"cheap + expert (weight {format_number(weight)})",
            )
        references = summary.get("references", {})
        styles = {"llm_pure": ("LLM-only", "--", "tab:red"), "gold": ("all gold", ":", "tab:green")}
        for key, (label, style, color) in styles.items():
            if references.get(key):
                f1 = references[key]["f1"]
                ax.axhline(f1, linestyle=style, color=color, label=f"{label} ({f1:.3f})")
        saturation = summary["saturation"]
        if saturation.get("reached"):
            ax.axvline(
                saturation["saturation_n_expert"],
                color="grey",
                linewidth=0.8,
                label=f"saturation ({format_number(saturation['saturation_budget_pct'])}%)",
            )
        ax.set_xlabel("expert sentences mixed in")
        ax.set_ylabel("dev entity F1 (seqeval)")
        ax.set_title(f"Expert budget, {summary['grid']['k']}-fold mean ± std", pad=12)
        if n_cheap:
            top = ax.secondary_xaxis(
                "top", functions=(lambda n: 100.0 * n / n_cheap, lambda p: p * n_cheap / 100.0)
            )
            top.set_xlabel("% of the cheap set")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    return Path(path)


def build_summary(
    results: Sequence[dict[str, Any]],
    grid: dict[str, Any],
    settings: RunSettings,
    *,
    threshold: float = DEFAULT_SATURATION_THRESHOLD,
    llm_pure: dict[str, Any] | None = None,
    gold: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary JSON: grid, settings, rows per budget, references and the saturation point
    (on the curve of the smallest expert weight)."""
    rows = summarise_runs(results)
    weights = sorted({row["expert_weight"] for row in rows})
    curve_weight = 1.0 if 1.0 in weights else (weights[0] if weights else 1.0)
    saturation = find_saturation([r for r in rows if r["expert_weight"] == curve_weight], threshold)
    saturation["expert_weight"] = curve_weight
    if llm_pure:
        for row in rows:
            row["f1_gain_over_llm_pure"] = row["f1_mean"] - llm_pure["f1"]
    settings_data = asdict(settings)
    settings_data.pop("threads")
    return {
        "grid": grid,
        "settings": settings_data,
        "n_runs": len(results),
        "rows": rows,
        "references": {"llm_pure": llm_pure, "gold": gold},
        "saturation": saturation,
        "recommended_budget_pct": saturation["recommended_budget_pct"],
        "recommended_n_expert": saturation["recommended_n_expert"],
        "seconds_per_run_mean": (
            float(numpy.mean([r["seconds"] for r in results])) if results else None
        ),
    }


def write_outputs(summary: dict[str, Any], output_dir: Path) -> list[Path]:
    """summary.json, summary.csv, summary.md and f1_curve.png under ``output_dir``."""
    return [
        atomic_write_json(output_dir / "summary.json", summary),
        atomic_write_text(output_dir / "summary.csv", rows_to_csv(summary["rows"])),
        atomic_write_text(output_dir / "summary.md", summary_markdown(summary)),
        plot_curve(summary, output_dir / "f1_curve.png"),
    ]


def default_threads(processes: int) -> int:
    """CPU threads per run: the machine's cores shared out between the concurrent runs."""
    return max(1, (os.cpu_count() or 1) // max(1, processes))


def run_experiment(
    cheap_path: Path,
    gold_path: Path,
    dev_path: Path,
    output_dir: Path,
    *,
    init_model: Path | None = None,
    config_path: Path | None = None,
    budgets: Sequence[float] = DEFAULT_BUDGETS,
    k: int = DEFAULT_FOLDS,
    expert_weights: Sequence[float] = (1.0,),
    cheap_weight: float = 1.0,
    pool: str = "auto",
    epochs: int = DEFAULT_EPOCHS,
    eval_every: int | None = None,
    select: str = "last",
    learn_rate: float | None = None,
    dropout: float | None = None,
    batch_words: int | None = None,
    seed: int = 0,
    executor: str = "local",
    processes: int = 2,
    threads: int | None = None,
    ray_address: str | None = None,
    gpu_id: int = -1,
    llm_pure_metrics: Path | None = None,
    gold_metrics: Path | None = None,
    saturation_threshold: float = DEFAULT_SATURATION_THRESHOLD,
    runs_dir: Path | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any] | None, GridReport]:
    """Plan the grid, run what is not finished, and write the summary outputs.

    ``runs_dir`` (default ``output_dir / "runs"``) holds one result file per run; two grids that
    share it reuse each other's finished runs with identical settings (e.g. the expert-weight
    comparison reuses the weight-1 runs of the budget curve).

    RETURNS (Tuple[Optional[dict], GridReport]): The summary (None when a run failed: then no
        summary is written, and a rerun resumes) and the grid report.
    """
    llm_pure = read_dev_f1(llm_pure_metrics)
    gold_reference = read_dev_f1(gold_metrics)
    vocab = Vocab()
    cheap_ids = [meta.sent_id(doc) for doc in read_docbin(cheap_path, vocab)]
    gold_ids = [meta.sent_id(doc) for doc in read_docbin(gold_path, vocab)]
    specs, grid = plan_grid(
        cheap_ids,
        gold_ids,
        budgets=budgets,
        k=k,
        expert_weights=expert_weights,
        seed=seed,
        pool=pool,
    )
    paths = {
        "cheap": str(cheap_path),
        "gold": str(gold_path),
        "dev": str(dev_path),
        "init_model": str(init_model) if init_model else None,
        "config": str(config_path) if config_path else None,
    }
    settings = RunSettings(
        cheap_path=str(cheap_path),
        gold_path=str(gold_path),
        dev_path=str(dev_path),
        init_model=paths["init_model"],
        config_path=paths["config"],
        pool=grid["pool"],
        epochs=epochs,
        eval_every=eval_every,
        select=select,
        learn_rate=learn_rate,
        dropout=dropout,
        batch_words=batch_words,
        cheap_weight=cheap_weight,
        seed=seed,
        threads=threads or default_threads(processes),
        gpu_id=gpu_id,
        input_hashes=input_hashes(paths),
    )
    report = run_grid(
        specs,
        settings,
        runs_dir or output_dir / "runs",
        executor=executor,
        processes=processes,
        ray_address=ray_address,
        progress=progress,
    )
    if report.failed:
        return None, report
    results = [report.results[spec.name] for spec in specs]
    summary = build_summary(
        results,
        grid,
        settings,
        threshold=saturation_threshold,
        llm_pure=llm_pure,
        gold=gold_reference,
    )
    write_outputs(summary, output_dir)
    return summary, report
