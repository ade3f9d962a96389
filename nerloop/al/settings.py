"""The settings of active learning, read from one file (``configs/al.cfg``) by ``al``
(``scripts/al_loop.py``), ``al-compare`` (``scripts/al_compare.py``) and ``al_human``
(``scripts/al_human.py``), so the three cannot drift apart.

Sections (``configs/al.cfg`` documents every key and holds the study's defaults):

- ``[paths]``: the simulated loop's inputs (cheap, gold, dev DocBins, the init model or config,
  the initial expert ids, the gold model's metrics for al-compare's target);
- ``[loop]``: the strategy, the batch and its unit (sentences or tokens), the stopping rule,
  seeds, pruning, the device;
- ``[mix]``: the expert pool setting and the loss weights of the training set;
- ``[training]``: epochs and optimiser settings of each fine-tuning, and ``[training.overrides]``,
  spaCy ``[training]`` settings passed to ``nerloop.training.finetune``;
- ``[compare]``: the strategies al-compare runs, its executor and its target;
- ``[hub]``: the Hub repo every checkpoint is pushed to (never a token: only the name of the
  environment variable that holds it).

Override any key the spaCy way: ``python -m scripts.al_loop configs/al.cfg OUT
--loop.batch_to_add 5``. Every run writes the resolved settings beside its results
(``config.cfg``, ``nerloop.settings.write_resolved``).
"""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from confection import Config
from spacy.vocab import Vocab

from nerloop.al.selection import BUDGET_UNITS
from nerloop.al.strategies import STRATEGIES, QueryStrategy, make_strategy
from nerloop.corpus import meta
from nerloop.errors import SettingsError
from nerloop.executors import EXECUTORS
from nerloop.fingerprint import fingerprint, path_fingerprint
from nerloop.hub import HubSettings
from nerloop.io_utils import read_docbin
from nerloop.mixing import (
    ExpertPoolError,
    budget_from_percent,
    draw_expert_ids,
    expert_pool,
    read_expert_ids,
)
from nerloop.settings import dotted, load_settings, section

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "al.cfg"
MANIFEST_VERSION = 2
# The study's settings (BERT-base + BiLSTM on a GPU; configs/al_gpu.cfg holds the whole set).
STUDY_SETTINGS = {
    "initial_epochs": 5,
    "finetune_epochs": 2,
    "batch_to_add": 10,
    "improvement_threshold": 0.00005,
    "min_iterations": 10,
    "max_iterations": 15,
    "strategy": "entropy",
}
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
# Settings added after runs were recorded, with their defaults: fingerprinted only when set to
# something else, so a run recorded before them keeps its fingerprint and resumes.
FINGERPRINTED_WHEN_CHANGED = {"budget_unit": "sentences", "sentence_overhead_tokens": 2.0}

PATHS_KEYS = ("cheap", "gold", "dev", "init_model", "init_config", "initial_expert_ids")
PATHS_KEYS += ("gold_metrics",)
LOOP_KEYS = (
    "strategy",
    "batch_to_add",
    "budget_unit",
    "sentence_overhead_tokens",
    "improvement_threshold",
    "min_iterations",
    "max_iterations",
    "keep_checkpoints",
    "pool_sample",
    "seed",
    "from_scratch",
    "initial_budget_pct",
    "mc_samples",
    "mc_dropout",
    "max_jaccard",
    "scoring_batch_size",
    "gpu_id",
)
MIX_KEYS = ("pool", "cheap_weight", "expert_weight")
TRAINING_KEYS = ("initial_epochs", "finetune_epochs", "learn_rate", "dropout", "batch_words")
TRAINING_KEYS += ("overrides",)
COMPARE_KEYS = ("strategies", "target_fraction", "target_f1", "chosen_strategy", "seeds")
# the same [executor] section as configs/kfold.cfg (nerloop.executors.run_tasks)
EXECUTOR_KEYS = ("executor", "processes", "threads", "address")
HUB_KEYS = ("repo", "token_env", "endpoint", "private")
SECTIONS = {
    "paths": PATHS_KEYS,
    "loop": LOOP_KEYS,
    "mix": MIX_KEYS,
    "training": TRAINING_KEYS,
    "compare": COMPARE_KEYS,
    "executor": EXECUTOR_KEYS,
    "hub": HUB_KEYS,
}


def _accepts(hint: Any, value: Any) -> bool:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return True
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option in (str, bool) and isinstance(value, option):
            return True
        if option not in (int, float, str, bool, type(None)):
            return True  # containers are checked where they are used
    return False


def check_types(settings: Any) -> None:
    """Refuse a setting of the wrong type (``batch_to_add = "10"``) with a SettingsError."""
    hints = typing.get_type_hints(type(settings))
    for item in fields(settings):
        value = getattr(settings, item.name)
        hint = hints[item.name]
        if not _accepts(hint, value):
            expected = hint.__name__ if isinstance(hint, type) else str(hint)
            raise SettingsError(f"{item.name} must be {expected}, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class IterationSettings:
    """What one iteration of active learning needs, simulated or with real experts.

    strategy: A name of ``nerloop.al.strategies.STRATEGIES``.
    batch_to_add: The budget of each iteration's batch, in ``budget_unit``.
    budget_unit: ``sentences`` (``batch_to_add`` sentences per batch) or ``tokens`` (sentences
        whose tokens add up to at most ``batch_to_add``, filled greedily by score).
    sentence_overhead_tokens: The per-sentence reading overhead, in tokens, of
        ``entropy-per-token``.
    seed: Seeds MC dropout, the random baseline and the fine-tuning of iteration ``i``
        (``seed + i``).
    mc_samples / mc_dropout: Monte Carlo dropout for ``bald``.
    max_jaccard: The diversity rule of the selection (None: off).
    scoring_batch_size: Sentences per scoring pass.
    finetune_epochs: Epochs of each warm-started fine-tuning.
    learn_rate / dropout / batch_words: Training overrides, as in ``scripts/finetune.py``.
    training_overrides: spaCy ``[training]`` settings for each fine-tuning.
    cheap_weight / expert_weight: Loss weights of the cheap and the expert sentences.
    gpu_id: GPU id, -1 for CPU.
    """

    strategy: str = "entropy"
    batch_to_add: int = 10
    budget_unit: str = "sentences"
    sentence_overhead_tokens: float = 2.0
    seed: int = 0
    mc_samples: int = 10
    mc_dropout: float = 0.1
    max_jaccard: float | None = None
    scoring_batch_size: int = 64
    finetune_epochs: int = 2
    learn_rate: float | None = None
    dropout: float | None = None
    batch_words: int | None = None
    training_overrides: dict[str, Any] = field(default_factory=dict)
    cheap_weight: float = 1.0
    expert_weight: float = 1.0
    gpu_id: int = -1

    def __post_init__(self) -> None:
        check_types(self)
        positive = {"finetune_epochs": self.finetune_epochs, "batch_to_add": self.batch_to_add}
        positive |= {"scoring_batch_size": self.scoring_batch_size}
        for name, value in positive.items():
            if value < 1:
                raise SettingsError(f"{name} must be at least 1, not {value}")
        if not self.cheap_weight >= 0:  # 0: learn from the experts alone (see mix_corpus)
            raise SettingsError(f"cheap_weight must be 0 or more, not {self.cheap_weight}")
        if not self.expert_weight > 0:
            raise SettingsError(f"expert_weight must be positive, not {self.expert_weight}")
        if self.mc_samples < 2:
            raise SettingsError(f"mc_samples must be at least 2, not {self.mc_samples}")
        if not 0.0 <= self.mc_dropout < 1.0:
            raise SettingsError(f"mc_dropout must be in [0, 1), not {self.mc_dropout}")
        if self.max_jaccard is not None and not 0.0 <= self.max_jaccard <= 1.0:
            raise SettingsError(f"max_jaccard must be in [0, 1], not {self.max_jaccard}")
        if not isinstance(self.training_overrides, dict):
            raise SettingsError("training_overrides must be a mapping of spaCy [training] keys")
        if self.budget_unit not in BUDGET_UNITS:
            raise SettingsError(
                f"budget_unit must be one of {', '.join(BUDGET_UNITS)}, not {self.budget_unit!r}"
            )
        self.make_strategy()

    def make_strategy(self) -> QueryStrategy:
        """The query strategy, seeded."""
        return make_strategy(
            self.strategy,
            seed=self.seed,
            mc_samples=self.mc_samples,
            mc_dropout=self.mc_dropout,
            sentence_overhead_tokens=self.sentence_overhead_tokens,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class LoopSettings(IterationSettings):
    """Every setting of a simulated active learning run (JSON-able; recorded in each manifest).

    cheap_path / gold_path / dev_path: The cheap, gold train and gold dev DocBins.
    init_model / init_config: Start from a trained pipeline, or train one from a config on the
        cheap set plus the initial expert sentences (exactly one of them).
    initial_expert_ids: The expert sentences of the starting training set (those the init model
        was trained with).
    initial_epochs: Epochs of the initial training (None: 5 from a config; 0 from a trained
        pipeline, which is then used as it is). Also the epochs of each retraining in
        ``from_scratch`` mode when > 0.
    improvement_threshold / min_iterations / max_iterations: The stopping rule.
    pool_sample: Score a seeded random subset of this many pool sentences per iteration (0: the
        whole pool).
    from_scratch: Retrain from the initial model or config each iteration instead of warm start.
    pool: The expert pool, as in ``scripts/mix.py``.
    keep_checkpoints: Keep only the last N pipelines and the best one (0: keep all).
    """

    cheap_path: str
    gold_path: str
    dev_path: str
    init_model: str | None = None
    init_config: str | None = None
    initial_expert_ids: tuple[int, ...] = ()
    initial_epochs: int | None = None
    improvement_threshold: float = 0.00005
    min_iterations: int = 10
    max_iterations: int = 15
    pool_sample: int = 0
    from_scratch: bool = False
    pool: str = "auto"
    keep_checkpoints: int = 0
    input_hashes: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.init_model is None) == (self.init_config is None):
            raise SettingsError("give exactly one of init_model and init_config")
        for name in ("min_iterations", "max_iterations", "pool_sample", "keep_checkpoints"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative")
        if self.initial_epochs is not None and self.initial_epochs < 0:
            raise SettingsError("initial_epochs must not be negative")
        if self.init_config is not None and self.initial_epochs == 0:
            raise SettingsError("a pipeline trained from a config needs initial_epochs >= 1")

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
        for key, default in FINGERPRINTED_WHEN_CHANGED.items():
            if data[key] == default:
                del data[key]
        data["initial_epochs"] = self.resolved_initial_epochs
        data["version"] = MANIFEST_VERSION
        return fingerprint(data)


@dataclass(frozen=True)
class CompareSettings:
    """al-compare's own settings: which strategies, how they run, what they must reach.

    strategies: The strategies compared (``random`` is the baseline).
    processes / executor / threads / address: As in ``nerloop.executors.run_tasks``.
    target_fraction / target_f1: The target dev F1: this share of the gold model's, or absolute.
    chosen_strategy: Whose chosen checkpoint is scored on test (``--evaluate-test``).
    seeds: Run every strategy once per seed (``[loop] seed`` set to each) and report the mean
        and spread (None: once, with the loop's seed).
    """

    strategies: tuple[str, ...] = tuple(STRATEGIES)
    processes: int = 1
    executor: str = "local"
    threads: int | None = None
    address: str | None = None
    target_fraction: float = 0.95
    target_f1: float | None = None
    chosen_strategy: str = "entropy"
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_types(self)
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise SettingsError(f"[compare] seeds must be distinct and not empty: {self.seeds}")
        if not self.strategies:
            raise SettingsError("[compare] strategies: give at least one strategy")
        unknown = [name for name in self.strategies if name not in STRATEGIES]
        if unknown:
            known = ", ".join(STRATEGIES)
            raise SettingsError(f"[compare] unknown strategies {unknown}; known: {known}")
        if self.executor not in EXECUTORS:
            raise SettingsError(f"[executor] executor must be one of {', '.join(EXECUTORS)}")
        if self.processes < 1:
            raise SettingsError(f"[executor] processes must be at least 1, not {self.processes}")


# -- reading the file ---------------------------------------------------------------------------


def load_al_config(
    path: Path | str = DEFAULT_CONFIG, overrides: dict[str, Any] | None = None
) -> Config:
    """Read an active learning settings file with overrides, refusing unknown keys.

    path (Path | str): The settings file (``configs/al.cfg``).
    overrides (dict | None): Dotted keys (``{"loop.batch_to_add": 5}``).
    RETURNS (Config): The interpolated settings.
    """
    config = load_settings(path, overrides, required=("loop", "mix", "training"))
    unknown = sorted(set(config) - set(SECTIONS))
    if unknown:
        raise SettingsError(f"{path}: unknown sections {unknown}; known: {list(SECTIONS)}")
    for name, known in SECTIONS.items():
        section(config, name, known, path)
    return config


def _dataclass_values(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in values.items() if key in names}


def iteration_settings(config: Config) -> IterationSettings:
    """The settings of one iteration (the human loop's): ``[loop]``, ``[mix]``, ``[training]``."""
    return IterationSettings(**_dataclass_values(IterationSettings, _flat(config)))


def _flat(config: Config) -> dict[str, Any]:
    training = dict(config.get("training", {}))
    overrides = dotted(dict(training.pop("overrides", None) or {}))
    values = {**config.get("loop", {}), **config.get("mix", {}), **training}
    values["training_overrides"] = overrides
    return values


def input_path(paths: dict[str, Any], key: str, required: bool = False) -> str | None:
    """``[paths] key`` checked to exist (None when unset and not required)."""
    value = paths.get(key)
    if value in (None, ""):
        if required:
            raise SettingsError(f"[paths] {key} is not set: give it with --paths.{key} PATH")
        return None
    if not Path(value).exists():
        raise SettingsError(f"[paths] {key}: {value} does not exist")
    return str(value)


def loop_settings(config: Config) -> LoopSettings:
    """The simulated loop's settings from ``[paths]``, ``[loop]``, ``[mix]`` and ``[training]``;
    the initial expert ids are read from ``[paths] initial_expert_ids`` or drawn at
    ``[loop] initial_budget_pct`` (seeded)."""
    paths = dict(config.get("paths", {}))
    values = _flat(config)
    cheap = input_path(paths, "cheap", required=True)
    gold = input_path(paths, "gold", required=True)
    ids_path = input_path(paths, "initial_expert_ids")
    ids = resolve_initial_ids(
        Path(cheap),
        Path(gold),
        Path(ids_path) if ids_path else None,
        values.get("initial_budget_pct"),
        values.get("seed", 0),
        values.get("pool", "auto"),
    )
    return LoopSettings(
        cheap_path=cheap,
        gold_path=gold,
        dev_path=input_path(paths, "dev", required=True),
        init_model=input_path(paths, "init_model"),
        init_config=input_path(paths, "init_config"),
        initial_expert_ids=tuple(ids),
        **_dataclass_values(LoopSettings, values),
    )


def compare_settings(config: Config) -> CompareSettings:
    """al-compare's ``[compare]`` and ``[executor]`` sections (``strategies``: a list or a
    comma-separated string)."""
    values = {**dict(config.get("compare", {})), **dict(config.get("executor", {}))}
    strategies = values.get("strategies", tuple(STRATEGIES))
    if isinstance(strategies, str):
        strategies = [name.strip() for name in strategies.split(",") if name.strip()]
    values["strategies"] = tuple(strategies)
    seeds = values.get("seeds")
    if isinstance(seeds, str):
        seeds = [seed.strip() for seed in seeds.split(",") if seed.strip()]
    elif isinstance(seeds, int):
        seeds = [seeds]
    if seeds is not None:
        try:
            seeds = tuple(int(seed) for seed in seeds)
        except (TypeError, ValueError):
            raise SettingsError(f"[compare] seeds must be integers, not {seeds!r}") from None
    values["seeds"] = seeds
    return CompareSettings(**values)


def hub_settings(config: Config) -> HubSettings | None:
    """The ``[hub]`` repo every checkpoint is pushed to (None without a repo)."""
    values = dict(config.get("hub", {}))
    repo = values.pop("repo", None)
    if not repo:
        return None
    values = {key: value for key, value in values.items() if value is not None}
    try:
        return HubSettings(repo, **values)
    except ValueError as err:
        raise SettingsError(f"[hub] {err}") from None


def with_strategy(config: Config, strategy: str) -> Config:
    """A copy of the settings with ``[loop] strategy`` set (each of al-compare's loops)."""
    copy = config.copy()
    copy["loop"]["strategy"] = strategy
    return copy


# -- inputs -------------------------------------------------------------------------------------


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
        raise ExpertPoolError("give [paths] initial_expert_ids or [loop] initial_budget_pct")
    if ids_path is not None:
        return read_expert_ids(ids_path)
    if budget_pct is None:
        return []
    vocab = Vocab()
    cheap_ids = [meta.sent_id(doc) for doc in read_docbin(cheap_path, vocab)]
    gold_ids = [meta.sent_id(doc) for doc in read_docbin(gold_path, vocab)]
    budget = budget_from_percent(budget_pct, len(cheap_ids))
    return draw_expert_ids(expert_pool(cheap_ids, gold_ids, pool), budget, seed)


def with_input_hashes(settings: LoopSettings) -> LoopSettings:
    """The settings with the sha256 of every input file and of the init model's files, so a
    run never continues on changed data."""
    inputs = {
        "cheap": settings.cheap_path,
        "gold": settings.gold_path,
        "dev": settings.dev_path,
        "init_model": settings.init_model,
        "init_config": settings.init_config,
    }
    hashes = {key: path_fingerprint(path) for key, path in inputs.items() if path is not None}
    return replace(settings, input_hashes=hashes)
