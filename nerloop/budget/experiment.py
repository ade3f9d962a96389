"""The k-fold expert-budget experiment from its settings file (``configs/kfold.cfg``).

``read_settings`` checks the sections of the file (``[paths]``, ``[grid]``, ``[mix]``,
``[training]``, ``[executor]``, ``[init]``): an unknown key is an error, not a silently ignored
typo. ``run_experiment`` plans the grid, runs what is not finished, writes the summary outputs
and, beside them, the resolved settings (``config.cfg``), so a result always says how it was made
and rerunning with that file reuses every finished run. ``scripts/init_model.py`` reads the same
file, so the budget settings of the grid and of the init model cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confection import Config
from spacy.vocab import Vocab

from nerloop.budget.plan import RunSpec, parse_numbers, plan_grid
from nerloop.budget.run import SELECT, GridReport, RunSettings, run_grid
from nerloop.budget.summary import build_summary, write_outputs
from nerloop.corpus import meta
from nerloop.errors import SettingsError
from nerloop.eval.pipeline import read_dev_f1
from nerloop.executors import EXECUTORS, default_threads
from nerloop.io_utils import input_hashes, read_docbin
from nerloop.mixing import POOL_SETTINGS
from nerloop.settings import dotted, section, write_resolved

PATHS = (
    "cheap",
    "gold",
    "dev",
    "test",
    "init_model",
    "train_config",
    "output",
    "runs",
    "llm_pure_metrics",
    "gold_metrics",
    "summary",
)
GRID = (
    "budgets",
    "folds",
    "expert_weights",
    "seed",
    "select",
    "eval_every",
    "saturation_threshold",
)
MIX = ("pool", "cheap_weight", "expert_weight")
# [training.overrides]: spaCy [training] settings (see nerloop.training.finetune)
TRAINING = ("epochs", "learn_rate", "dropout", "batch_words", "gpu_id", "overrides")
EXECUTOR = ("executor", "processes", "threads", "address")
INIT = ("budgets", "epochs", "seed", "training_dir", "corpus_dir", "metrics_dir")
SECTIONS = {
    "paths": PATHS,
    "grid": GRID,
    "mix": MIX,
    "training": TRAINING,
    "executor": EXECUTOR,
    "init": INIT,
}
# read by init-model only (nerloop.noisy); the grid leaves it alone
OTHER_SECTIONS = ("noisy",)
MISSING = object()


@dataclass(frozen=True)
class BudgetSettings:
    """The checked settings of ``configs/kfold.cfg`` (see the file for what each one means)."""

    paths: dict[str, Path | None]
    budgets: list[float]
    folds: int
    expert_weights: list[float]
    seed: int
    select: str
    eval_every: int | None
    saturation_threshold: float
    pool: str
    cheap_weight: float
    expert_weight: float
    epochs: int
    learn_rate: float | None
    dropout: float | None
    batch_words: int | None
    gpu_id: int
    executor: str
    processes: int
    threads: int | None
    address: str | None
    init_budgets: list[float]
    init_epochs: int
    init_seed: int
    training_dir: Path
    corpus_dir: Path
    metrics_dir: Path
    spacy_training: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def path(self, name: str, *, exists: bool = True) -> Path:
        """A path of ``[paths]`` that the step needs: set and (for inputs) existing."""
        value = self.paths[name]
        if value is None:
            raise SettingsError(
                f"{_where(self.source)}[paths] {name} is not set: give --paths.{name} PATH"
            )
        if exists and not value.exists():
            raise SettingsError(f"{_where(self.source)}[paths] {name}: {value} does not exist")
        return value

    def optional_path(self, name: str) -> Path | None:
        """A path of ``[paths]`` that may be unset; when set, it must exist."""
        return None if self.paths[name] is None else self.path(name)

    def model_source(self) -> tuple[Path | None, Path | None]:
        """``(init_model, None)`` to fine-tune or ``(None, train_config)`` to train from scratch."""
        init_model, train_config = self.paths["init_model"], self.paths["train_config"]
        if (init_model is None) == (train_config is None):
            raise SettingsError(
                f"{_where(self.source)}set exactly one of --paths.init_model PATH (fine-tune "
                "the LLM-only model) and --paths.train_config PATH (train from scratch, e.g. "
                "configs/tagger_cnn.cfg)"
            )
        if init_model is not None:
            return self.path("init_model"), None
        return None, self.path("train_config")


def _where(source: str) -> str:
    return f"{source}: " if source else ""


def _value(values: dict[str, Any], name: str, key: str, source: str) -> Any:
    value = values.get(key, MISSING)
    if value is MISSING:
        raise SettingsError(f"{_where(source)}[{name}] lacks the setting {key}")
    return value


def _checked(
    values: dict[str, Any],
    name: str,
    key: str,
    kind: type,
    source: str,
    *,
    minimum: float | None = None,
    optional: bool = False,
) -> Any:
    """A number (``int`` or ``float``) or a string setting, checked."""
    value = _value(values, name, key, source)
    if value is None and optional:
        return None
    accepted = {str: str, int: int, float: int | float}[kind]
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise SettingsError(
            f"{_where(source)}[{name}] {key} must be {kind.__name__}, not {value!r}"
        )
    if minimum is not None and value < minimum:
        raise SettingsError(
            f"{_where(source)}[{name}] {key} must be at least {minimum}, not {value!r}"
        )
    return kind(value)


def _choice(
    values: dict[str, Any], name: str, key: str, choices: Sequence[str], source: str
) -> str:
    value = _value(values, name, key, source)
    if value not in choices:
        raise SettingsError(
            f"{_where(source)}[{name}] {key} must be one of {', '.join(choices)}, not {value!r}"
        )
    return value


def _path(value: Any, name: str, key: str, source: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise SettingsError(f"{_where(source)}[{name}] {key} must be a path, not {value!r}")
    return Path(value)


def read_settings(config: Config, source: Path | str = "") -> BudgetSettings:
    """Check the settings of ``configs/kfold.cfg`` (loaded with ``nerloop.settings.load_settings``).

    config (Config): The interpolated settings.
    source (Path | str): The file, for the error messages.
    RETURNS (BudgetSettings): The checked settings.
    """
    source = str(source)
    missing = [name for name in SECTIONS if name not in config]
    if missing:
        raise SettingsError(f"{_where(source)}no [{missing[0]}] section")
    unknown = sorted(set(config) - set(SECTIONS) - set(OTHER_SECTIONS))
    if unknown:
        raise SettingsError(
            f"{_where(source)}unknown sections {', '.join(unknown)}; known: {', '.join(SECTIONS)}"
        )
    values = {name: section(config, name, known, source) for name, known in SECTIONS.items()}
    paths = {
        key: _path(_value(values["paths"], "paths", key, source), "paths", key, source)
        for key in PATHS
    }
    grid, mix, training, executor, init = (
        values[name] for name in ("grid", "mix", "training", "executor", "init")
    )
    init_paths = {
        key: _path(_value(init, "init", key, source), "init", key, source)
        for key in ("training_dir", "corpus_dir", "metrics_dir")
    }
    for key, value in init_paths.items():
        if value is None:
            raise SettingsError(f"{_where(source)}[init] {key} must be a path, not null")
    return BudgetSettings(
        paths=paths,
        budgets=parse_numbers(_value(grid, "grid", "budgets", source), "[grid] budgets"),
        folds=_checked(grid, "grid", "folds", int, source, minimum=1),
        expert_weights=parse_numbers(
            _value(grid, "grid", "expert_weights", source), "[grid] expert_weights"
        ),
        seed=_checked(grid, "grid", "seed", int, source),
        select=_choice(grid, "grid", "select", SELECT, source),
        eval_every=_checked(grid, "grid", "eval_every", int, source, minimum=1, optional=True),
        saturation_threshold=_checked(grid, "grid", "saturation_threshold", float, source),
        pool=_choice(mix, "mix", "pool", POOL_SETTINGS, source),
        cheap_weight=_checked(mix, "mix", "cheap_weight", float, source),
        expert_weight=_checked(mix, "mix", "expert_weight", float, source),
        epochs=_checked(training, "training", "epochs", int, source, minimum=1),
        learn_rate=_checked(training, "training", "learn_rate", float, source, optional=True),
        dropout=_checked(training, "training", "dropout", float, source, optional=True),
        batch_words=_checked(
            training, "training", "batch_words", int, source, minimum=1, optional=True
        ),
        gpu_id=_checked(training, "training", "gpu_id", int, source, minimum=-1),
        spacy_training=dotted(dict(training.get("overrides") or {})),
        executor=_choice(executor, "executor", "executor", EXECUTORS, source),
        processes=_checked(executor, "executor", "processes", int, source, minimum=0),
        threads=_checked(executor, "executor", "threads", int, source, minimum=1, optional=True),
        address=_checked(executor, "executor", "address", str, source, optional=True),
        init_budgets=parse_numbers(_value(init, "init", "budgets", source), "[init] budgets"),
        init_epochs=_checked(init, "init", "epochs", int, source, minimum=1),
        init_seed=_checked(init, "init", "seed", int, source),
        training_dir=init_paths["training_dir"],
        corpus_dir=init_paths["corpus_dir"],
        metrics_dir=init_paths["metrics_dir"],
        source=source,
    )


def resolved_config(config: Config, settings: BudgetSettings) -> Config:
    """The settings as they were used: the lists of numbers parsed (``"1,2"`` -> ``[1.0, 2.0]``)."""
    resolved = config.copy()
    resolved["grid"]["budgets"] = list(settings.budgets)
    resolved["grid"]["expert_weights"] = list(settings.expert_weights)
    resolved["init"]["budgets"] = list(settings.init_budgets)
    return resolved


def plan_experiment(settings: BudgetSettings) -> tuple[list[RunSpec], dict[str, Any]]:
    """The grid's runs and its description (pool, folds, budgets) from the settings."""
    vocab = Vocab()
    cheap_ids = [meta.sent_id(doc) for doc in read_docbin(settings.path("cheap"), vocab)]
    gold_ids = [meta.sent_id(doc) for doc in read_docbin(settings.path("gold"), vocab)]
    return plan_grid(
        cheap_ids,
        gold_ids,
        budgets=settings.budgets,
        k=settings.folds,
        expert_weights=settings.expert_weights,
        seed=settings.seed,
        pool=settings.pool,
    )


def run_experiment(
    config: Config, *, source: Path | str = "", progress: bool = True
) -> tuple[dict[str, Any] | None, GridReport]:
    """Plan the grid, run what is not finished, and write the summary outputs and the resolved
    settings (``config.cfg``) under ``[paths] output``.

    ``[paths] runs`` (default ``<output>/runs``) holds one result file per run; two grids that
    share it reuse each other's finished runs with identical settings (e.g. the expert-weight
    comparison reuses the weight-1 runs of the budget curve).

    config (Config): The settings (``configs/kfold.cfg`` with overrides, see ``load_settings``).
    source (Path | str): The settings file, for the error messages.
    progress (bool): Show a progress bar over the grid.
    RETURNS (Tuple[Optional[dict], GridReport]): The summary (None when a run failed: then no
        summary is written, and a rerun resumes) and the grid report.
    """
    settings = read_settings(config, source)
    cheap, gold, dev = (settings.path(name) for name in ("cheap", "gold", "dev"))
    output_dir = settings.path("output", exists=False)
    init_model, train_config = settings.model_source()
    llm_pure = read_dev_f1(settings.optional_path("llm_pure_metrics"))
    gold_reference = read_dev_f1(settings.optional_path("gold_metrics"))
    specs, grid = plan_experiment(settings)
    paths = {
        "cheap": str(cheap),
        "gold": str(gold),
        "dev": str(dev),
        "init_model": str(init_model) if init_model else None,
        "config": str(train_config) if train_config else None,
    }
    run_settings = RunSettings(
        cheap_path=paths["cheap"],
        gold_path=paths["gold"],
        dev_path=paths["dev"],
        init_model=paths["init_model"],
        config_path=paths["config"],
        pool=grid["pool"],
        epochs=settings.epochs,
        eval_every=settings.eval_every,
        select=settings.select,
        learn_rate=settings.learn_rate,
        dropout=settings.dropout,
        batch_words=settings.batch_words,
        cheap_weight=settings.cheap_weight,
        seed=settings.seed,
        threads=settings.threads or default_threads(settings.processes),
        gpu_id=settings.gpu_id,
        input_hashes=input_hashes(paths),
        training=settings.spacy_training,
    )
    write_resolved(resolved_config(config, settings), output_dir)
    report = run_grid(
        specs,
        run_settings,
        settings.paths["runs"] or output_dir / "runs",
        executor=settings.executor,
        processes=settings.processes,
        ray_address=settings.address,
        progress=progress,
    )
    if report.failed:
        return None, report
    summary = build_summary(
        [report.results[spec.name] for spec in specs],
        grid,
        run_settings,
        threshold=settings.saturation_threshold,
        llm_pure=llm_pure,
        gold=gold_reference,
    )
    write_outputs(summary, output_dir)
    return summary, report
