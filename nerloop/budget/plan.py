"""The k-fold grid's plan: folds of the expert pool, nested draws per budget, one spec per run.

For each budget (a percentage of the cheap set size) and each of k folds of the expert pool, that
many expert sentences are taken from the fold; the draws of one fold are nested across budgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy

from nerloop.errors import SettingsError
from nerloop.mixing import (
    ExpertPoolError,
    budget_from_percent,
    expert_pool,
    resolve_pool_setting,
)

STUDY_BUDGET_PCT = 12.0


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


def parse_numbers(value: str | float | Sequence[float], name: str = "value") -> list[float]:
    """``"1,2,3.5"``, ``[1, 2, 3.5]`` or a single number -> ``[1.0, 2.0, 3.5]``, sorted and
    without duplicates (a setting in a config file or a ``--grid.budgets 1,2`` override).

    value (str | float | Sequence[float]): Comma-separated numbers, a list or one number.
    name (str): The setting's name, for the error message.
    RETURNS (List[float]): The numbers.
    """
    error = SettingsError(f"{name}: expected comma-separated numbers, not {value!r}")
    if isinstance(value, str):
        items: list[Any] = [item for item in value.split(",") if item.strip()]
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        items = [value]
    if any(isinstance(item, bool) for item in items):
        raise error
    try:
        values = sorted({float(item) for item in items})
    except (TypeError, ValueError):
        raise error from None
    if not values:
        raise SettingsError(f"{name}: expected at least one number")
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
        raise SettingsError(f"expert weights must be positive: {list(expert_weights)}")
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
