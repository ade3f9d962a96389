"""Compare query strategies: the same active learning loop, from the same initial model, once per
strategy (entropy, the others, and the random baseline).

Writes one PNG with dev F1 against expert sentences added for every strategy on the same axes, and
a table (Markdown and JSON) of the expert sentences and tokens each strategy needed to reach a
target dev F1 (by default 95% of the gold model's, read from a metrics JSON such as
``metrics/gold.json``) and their ratio to random, and of those needed to reach 90% and 95% of the
gold model's dev F1 (``GOLD_FRACTIONS``) whatever the target. Each strategy's loop runs in its
own folder and resumes like ``al_loop``. Test is never used to compare or choose: only the
chosen checkpoint (highest dev F1) of one strategy is scored on test, and only with
``--evaluate-test``. The strategies' loops run through ``nerloop.executors.run_tasks``
(``[executor] executor``: local processes, serial or Ray, as in the k-fold grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from confection import Config
from tqdm import tqdm
from wasabi import msg

from nerloop.al.loop import evaluate_chosen_on_test, run_loop
from nerloop.al.settings import (
    LoopSettings,
    compare_settings,
    input_path,
    load_al_config,
    loop_settings,
    with_input_hashes,
    with_strategy,
)
from nerloop.al.strategies import STRATEGIES, UnknownStrategyError
from nerloop.eval.pipeline import read_dev_f1
from nerloop.executors import run_tasks
from nerloop.io_utils import atomic_write_json, atomic_write_text, png_figure
from nerloop.settings import write_resolved

DEFAULT_STRATEGIES = tuple(STRATEGIES)
RANDOM = "random"
# The shares of the gold model's dev F1 every comparison reports the effort to reach.
GOLD_FRACTIONS = (0.9, 0.95)


def fraction_name(fraction: float) -> str:
    """``90pct`` for 0.9: the suffix of a row's ``sentences_to_…`` and ``tokens_to_…`` keys."""
    return f"{100 * fraction:g}pct"


def _effort_to_reach(history: dict[str, Any], target_f1: float, key: str) -> int | None:
    for entry in history["iterations"]:
        if entry["dev"]["f1"] >= target_f1:
            return None if entry.get(key) is None else int(entry[key])
    return None


def sentences_to_reach(history: dict[str, Any], target_f1: float) -> int | None:
    """Expert sentences added (by the loop) at the first iteration whose dev F1 reaches
    ``target_f1``; None when no iteration does."""
    return _effort_to_reach(history, target_f1, "n_added")


def tokens_to_reach(history: dict[str, Any], target_f1: float) -> int | None:
    """The tokens of the expert sentences added at the first iteration whose dev F1 reaches
    ``target_f1``; None when no iteration does (or the history predates token counts)."""
    return _effort_to_reach(history, target_f1, "n_added_tokens")


def curve_area(history: dict[str, Any]) -> float:
    """Mean dev F1 over the iterations (a learning-curve area, 0 when there are none)."""
    values = [entry["dev"]["f1"] for entry in history["iterations"]]
    return sum(values) / len(values) if values else 0.0


def _ratio(needed: int | None, random_needed: int | None) -> float | None:
    return needed / random_needed if needed is not None and random_needed else None


def compare_histories(
    histories: dict[str, dict[str, Any]],
    target_f1: float | None,
    gold_f1: float | None = None,
) -> list[dict[str, Any]]:
    """One row per strategy: sentences and tokens needed to reach the target, their ratios to
    random, the sentences and tokens needed to reach each share of ``GOLD_FRACTIONS`` of the gold
    model's dev F1 (``sentences_to_90pct``, ``tokens_to_90pct``, ...; None without ``gold_f1``
    or when not reached), the final and best dev F1, the learning-curve area and the speed.

    histories (Dict[str, dict]): Each strategy's loop history.
    target_f1 (Optional[float]): The target dev F1 (None: no target).
    gold_f1 (Optional[float]): The gold model's dev F1 (None: no share of it is reported).
    RETURNS (List[dict]): The rows, in the order of ``histories``.
    """
    targets = {"target": target_f1}
    targets |= {
        fraction_name(fraction): None if gold_f1 is None else fraction * gold_f1
        for fraction in GOLD_FRACTIONS
    }
    needed = {
        (name, unit, target): None if f1 is None else reach(history, f1)
        for name, history in histories.items()
        for unit, reach in (("sentences", sentences_to_reach), ("tokens", tokens_to_reach))
        for target, f1 in targets.items()
    }
    rows = []
    for name, history in histories.items():
        iterations = history["iterations"]
        later = iterations[1:]
        sentences = needed[name, "sentences", "target"]
        tokens = needed[name, "tokens", "target"]
        effort_to_fractions = {
            f"{unit}_to_{fraction_name(fraction)}": needed[name, unit, fraction_name(fraction)]
            for fraction in GOLD_FRACTIONS
            for unit in ("sentences", "tokens")
        }
        rows.append(
            {
                "strategy": name,
                "description": history["strategy"],
                "n_initial_expert": history["n_initial_expert"],
                "iterations": len(later),
                "stopped": history["stopped"],
                "final_n_added": iterations[-1]["n_added"],
                "final_n_added_tokens": iterations[-1].get("n_added_tokens"),
                "final_dev_f1": iterations[-1]["dev"]["f1"],
                "best_dev_f1": history["chosen"]["dev"]["f1"],
                "best_checkpoint": history["chosen"]["checkpoint"],
                "curve_area": curve_area(history),
                "sentences_to_target": sentences,
                "ratio_to_random": _ratio(sentences, needed.get((RANDOM, "sentences", "target"))),
                "tokens_to_target": tokens,
                "tokens_ratio_to_random": _ratio(tokens, needed.get((RANDOM, "tokens", "target"))),
                **effort_to_fractions,
                "seconds_per_iteration": (
                    sum(e["seconds"]["iteration"] for e in later) / len(later) if later else None
                ),
                "scoring_sentences_per_second": (
                    sum(e["scoring"]["sentences_per_second"] for e in later) / len(later)
                    if later
                    else None
                ),
            }
        )
    return rows


# Row keys averaged over seeds, and the expert efforts among them (a seed that never reaches
# a target has no effort: the mean is over the seeds that did, and their count is kept).
MEAN_KEYS = (
    "iterations",
    "final_n_added",
    "final_n_added_tokens",
    "final_dev_f1",
    "best_dev_f1",
    "curve_area",
    "seconds_per_iteration",
    "scoring_sentences_per_second",
)
EFFORT_KEYS = (
    "sentences_to_target",
    "tokens_to_target",
    "ratio_to_random",
    "tokens_ratio_to_random",
    *(f"{unit}_to_{fraction_name(f)}" for f in GOLD_FRACTIONS for unit in ("sentences", "tokens")),
)


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    variance = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return mean, variance**0.5


def aggregate_seeds(rows_by_seed: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per strategy over several seeds: the mean of each of ``MEAN_KEYS`` and
    ``EFFORT_KEYS`` with its sample standard deviation (``<key>_std``); for the efforts, the
    mean is over the seeds that reached the target and ``<key>_reached`` counts them.
    Ratios to random are averaged per seed (each seed's strategy against the same seed's random).

    rows_by_seed (Dict[int, List[dict]]): ``compare_histories`` rows of each seed.
    RETURNS (List[dict]): The rows, in the strategies' order, with ``n_seeds`` and ``seeds``.
    """
    seeds = list(rows_by_seed)
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for seed in seeds:
        for row in rows_by_seed[seed]:
            by_strategy.setdefault(row["strategy"], []).append(row)
    out = []
    for name, rows in by_strategy.items():
        merged: dict[str, Any] = {
            "strategy": name,
            "description": rows[0]["description"],
            "n_initial_expert": rows[0]["n_initial_expert"],
            "n_seeds": len(rows),
            "seeds": seeds,
            "stopped": [row["stopped"] for row in rows],
            "best_checkpoint": [row["best_checkpoint"] for row in rows],
        }
        for key in (*MEAN_KEYS, *EFFORT_KEYS):
            values = [row[key] for row in rows if row.get(key) is not None]
            merged[key], merged[f"{key}_std"] = _mean_std(values)
            if key in EFFORT_KEYS:
                merged[f"{key}_reached"] = len(values)
        out.append(merged)
    return out


def _number(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _reached(value: int | None) -> str:
    return "not reached" if value is None else str(value)


def _cell(row: dict[str, Any], key: str, digits: int = 4) -> str:
    """A table cell: the value, or over seeds the mean ± standard deviation (and for an
    effort how many seeds reached it)."""
    effort = key in EFFORT_KEYS
    value = row.get(key)
    if "n_seeds" not in row:
        if effort and not key.startswith(("ratio", "tokens_ratio")):
            return _reached(value)
        return _number(value, digits)
    if value is None:
        return f"not reached (0/{row['n_seeds']})" if effort else "–"
    digits = 0 if key.startswith(("sentences", "tokens_to", "final_n", "iterations")) else digits
    text = f"{value:.{digits}f} ± {row[f'{key}_std']:.{digits}f}"
    if effort:
        text += f" ({row[f'{key}_reached']}/{row['n_seeds']})"
    return text


def comparison_markdown(result: dict[str, Any]) -> str:
    target = result["target"]
    lines = ["# Active learning: query strategies compared (dev)", ""]
    if target["f1"] is not None:
        lines.append(f"Target: dev F1 ≥ {target['f1']:.4f} ({target['description']}).")
    else:
        lines.append("No target given: only the curves are compared.")
    lines += [
        "",
        "| strategy | sentences added to reach the target | tokens | ratio to random (sentences) "
        "| ratio to random (tokens) | iterations | added (sentences) | added (tokens) "
        "| final dev F1 | best dev F1 | mean dev F1 over iterations | s / iteration "
        "| scoring sentences/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        if "n_seeds" in row:
            counts = [_cell(row, key) for key in ("iterations", "final_n_added")]
            counts.append(_cell(row, "final_n_added_tokens"))
        else:
            counts = [str(row["iterations"]), str(row["final_n_added"])]
            counts.append(_reached(row["final_n_added_tokens"]))
        cells = [
            _cell(row, "sentences_to_target"),
            _cell(row, "tokens_to_target"),
            _cell(row, "ratio_to_random", 2),
            _cell(row, "tokens_ratio_to_random", 2),
            *counts,
            _cell(row, "final_dev_f1"),
            _cell(row, "best_dev_f1"),
            _cell(row, "curve_area"),
            _cell(row, "seconds_per_iteration", 1),
            _cell(row, "scoring_sentences_per_second", 1),
        ]
        lines.append(f"| {row['strategy']} | " + " | ".join(cells) + " |")
    reference = target.get("reference")
    if reference is not None:
        names = [fraction_name(fraction) for fraction in GOLD_FRACTIONS]
        shares = " | ".join(
            f"{100 * f:g}% ({f * reference['f1']:.4f}): sentences | tokens" for f in GOLD_FRACTIONS
        )
        lines += [
            "",
            f"Expert effort to reach a share of {reference['model']}'s dev F1 "
            f"{reference['f1']:.4f}:",
            "",
            f"| strategy | {shares} |",
            "|---|" + "---:|---:|" * len(names),
        ]
        for row in result["rows"]:
            cells = " | ".join(
                f"{_cell(row, f'sentences_to_{name}')} | {_cell(row, f'tokens_to_{name}')}"
                for name in names
            )
            lines.append(f"| {row['strategy']} | {cells} |")
    if result.get("seeds"):
        seeds = ", ".join(str(seed) for seed in result["seeds"])
        lines += [
            "",
            f"Mean ± sample standard deviation over {len(result['seeds'])} seeds ({seeds}); an "
            "effort is averaged over the seeds that reached its target (their count in "
            "brackets), a ratio to random per seed against the same seed's random run.",
        ]
    lines += [
        "",
        f"Every strategy starts from the same model with {result['n_initial_expert']} initial "
        "expert sentences; 'sentences added' counts the sentences the loop added on top, "
        "'tokens' their tokens (the experts' effort).",
    ]
    if result.get("test"):
        test = result["test"]
        lines.append(
            f"\nChosen checkpoint ({test['strategy']}, {test['checkpoint']}, by dev F1): "
            f"test F1 {test['test']['f1']:.4f}, dev F1 {test['dev']['f1']:.4f}."
        )
    return "\n".join(lines) + "\n"


def plot_comparison(
    histories: dict[str, dict[str, Any]], path: Path, target_f1: float | None = None
) -> Path:
    """Dev F1 against expert sentences added, one line per strategy; written atomically."""
    with png_figure(path) as (_, ax):
        for name, history in histories.items():
            points = [(e["n_added"], e["dev"]["f1"]) for e in history["iterations"]]
            style = {"linestyle": "--", "color": "black"} if name == RANDOM else {}
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=name, **style)
        if target_f1 is not None:
            ax.axhline(target_f1, color="grey", linestyle=":", label=f"target ({target_f1:.3f})")
        ax.set_xlabel("expert sentences added by active learning")
        ax.set_ylabel("dev entity F1 (seqeval)")
        ax.set_title("Active learning: query strategies")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    return Path(path)


def resolve_target(
    gold_metrics: Path | None, target_fraction: float, target_f1: float | None
) -> dict[str, Any]:
    """The target dev F1 (``f1``, None when there is none), its ``description``, and with a
    gold model's metrics its ``reference`` (``model``, ``f1``, ``path``) and the dev F1 of each
    share of ``GOLD_FRACTIONS`` (``fractions``: ``{"90pct": ..., "95pct": ...}``).

    gold_metrics (Optional[Path]): The gold model's metrics JSON (``{"dev": {"f1": ...}}``).
    target_fraction (float): The target as a share of the gold model's dev F1.
    target_f1 (Optional[float]): An absolute target instead (the reference is still read).
    RETURNS (dict): The target.
    """
    reference = read_dev_f1(gold_metrics)
    if target_f1 is not None:
        target: dict[str, Any] = {"f1": target_f1, "description": "given"}
    elif reference is None:
        return {"f1": None, "description": "none"}
    else:
        target = {
            "f1": target_fraction * reference["f1"],
            "description": f"{100 * target_fraction:g}% of {reference['model']}'s dev F1 "
            f"{reference['f1']:.4f} ({reference['path']})",
        }
    if reference is not None:
        target["reference"] = reference
        target["fractions"] = {
            fraction_name(fraction): fraction * reference["f1"] for fraction in GOLD_FRACTIONS
        }
    return target


@dataclass(frozen=True)
class StrategyRun:
    """One strategy's loop: its settings and its folder (picklable, for any executor)."""

    name: str
    settings: LoopSettings
    output_dir: Path
    progress: bool = False


def run_strategy(task: StrategyRun) -> dict[str, Any]:
    """Run (or resume) one strategy's loop; its history."""
    return run_loop(task.settings, task.output_dir, progress=task.progress)


def run_strategies(
    settings: LoopSettings,
    output_dir: Path,
    strategies: Sequence[str],
    *,
    processes: int = 1,
    executor: str = "local",
    threads: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run (or resume) the loop once per strategy, each in ``output_dir/<strategy>``, through
    ``nerloop.executors.run_tasks``.

    processes (int): Strategies run at the same time (``local``: spawned processes with
        ``cores / processes`` threads each; the CPU tagger trains on one core, so 2 processes use
        a 2-core machine fully). 1, or ``executor="serial"``, runs them one after the other in
        this process.
    executor / threads / address: As in ``run_tasks`` (``ray`` for a cluster).
    RETURNS (Dict[str, dict]): The history of each strategy, in the order given.
    """
    runs = {
        name: (replace(settings, strategy=name), Path(output_dir) / name) for name in strategies
    }
    return _run_loops(
        runs, processes=processes, executor=executor, threads=threads, address=address,
        progress=progress,
    )  # fmt: skip


def seed_dir(output_dir: Path, seed: int) -> Path:
    """The folder of one seed's loops in a comparison over several seeds."""
    return Path(output_dir) / f"seed_{seed}"


def run_seeded_strategies(
    settings: LoopSettings,
    output_dir: Path,
    strategies: Sequence[str],
    seeds: Sequence[int],
    *,
    processes: int = 1,
    executor: str = "local",
    threads: int | None = None,
    address: str | None = None,
    progress: bool = True,
) -> dict[int, dict[str, dict[str, Any]]]:
    """Run (or resume) the loop once per strategy and seed, each in
    ``output_dir/seed_<seed>/<strategy>`` with ``[loop] seed`` set (training, the random
    baseline, MC dropout and the pool sample follow it; the init model is the same), all
    through one ``run_tasks`` call so that every loop can run at once.

    RETURNS (Dict[int, Dict[str, dict]]): Each seed's history of each strategy.
    """
    runs = {
        f"{name}@{seed}": (
            replace(settings, strategy=name, seed=seed),
            seed_dir(output_dir, seed) / name,
        )
        for seed in seeds
        for name in strategies
    }
    done = _run_loops(
        runs, processes=processes, executor=executor, threads=threads, address=address,
        progress=progress,
    )  # fmt: skip
    return {seed: {name: done[f"{name}@{seed}"] for name in strategies} for seed in seeds}


def _run_loops(
    runs: dict[str, tuple[LoopSettings, Path]],
    *,
    processes: int,
    executor: str,
    threads: int | None,
    address: str | None,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    in_process = executor == "serial" or (executor == "local" and processes <= 1)
    tasks = [
        StrategyRun(name, loop_settings_, folder, progress and in_process)
        for name, (loop_settings_, folder) in runs.items()
    ]
    done: dict[str, dict[str, Any]] = {}
    failed: list[tuple[str, BaseException]] = []
    bar = tqdm(total=len(tasks), desc="strategies", unit="loop", disable=not progress)

    def on_result(task: StrategyRun, history: dict[str, Any]) -> None:
        done[task.name] = history
        last = history["iterations"][-1]
        bar.write(
            f"{task.name}: {len(history['iterations']) - 1} iterations, stopped: "
            f"{history['stopped']}, dev F1 {last['dev']['f1']:.4f} with {last['n_added']} added"
        )
        bar.update(1)

    def on_failure(task: StrategyRun, error: BaseException) -> None:
        msg.warn(f"strategy {task.name} failed: {error}")
        failed.append((task.name, error))

    with bar:
        run_tasks(
            run_strategy,
            tasks,
            on_result,
            on_failure,
            executor=executor,
            processes=processes,
            threads=threads,
            address=address,
        )
    if failed:
        raise failed[0][1]
    return {name: done[name] for name in runs}


def run_comparison(
    settings: LoopSettings,
    output_dir: Path,
    strategies: Sequence[str],
    *,
    target: dict[str, Any],
    evaluate_test: Path | None = None,
    chosen_strategy: str = "entropy",
    output: Path | None = None,
    table: Path | None = None,
    plot: Path | None = None,
    progress: bool = True,
    processes: int = 1,
    executor: str = "local",
    threads: int | None = None,
    address: str | None = None,
    config: Config | None = None,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the loop once per strategy, then write the JSON, table and plot.

    config (Optional[Config]): The resolved settings, written to ``output_dir/config.cfg`` and,
        with each strategy's ``[loop] strategy``, to each strategy's folder.
    seeds (Optional[Sequence[int]]): Run every strategy once per seed
        (``output_dir/seed_<seed>/<strategy>``); the rows are then the mean and spread over the
        seeds (``aggregate_seeds``), ``per_seed`` keeps each seed's rows and curves, and the
        test score is that of the chosen strategy's first seed. None: once, with the loop's seed.
    """
    if seeds is not None:
        return _run_seeded_comparison(
            settings, output_dir, strategies, list(seeds), target=target,
            evaluate_test=evaluate_test, chosen_strategy=chosen_strategy, output=output,
            table=table, plot=plot, progress=progress, processes=processes, executor=executor,
            threads=threads, address=address, config=config,
        )  # fmt: skip
    _check_strategies(strategies, chosen_strategy, evaluate_test)
    if config is not None:
        write_resolved(config, output_dir)
        for name in strategies:
            write_resolved(with_strategy(config, name), Path(output_dir) / name)
    histories = run_strategies(
        settings,
        output_dir,
        strategies,
        processes=processes,
        executor=executor,
        threads=threads,
        address=address,
        progress=progress,
    )
    result: dict[str, Any] = {
        "strategies": list(strategies),
        "target": target,
        "n_initial_expert": next(iter(histories.values()))["n_initial_expert"],
        "settings": {k: v for k, v in settings.to_dict().items() if k != "strategy"},
        "rows": compare_histories(
            histories, target["f1"], (target.get("reference") or {}).get("f1")
        ),
        "curves": _curves(histories),
        "test": None,
    }
    if evaluate_test is not None:
        result["test"] = evaluate_chosen_on_test(output_dir / chosen_strategy, evaluate_test)
    atomic_write_json(output or output_dir / "comparison.json", result)
    atomic_write_text(table or output_dir / "comparison.md", comparison_markdown(result))
    plot_comparison(histories, plot or output_dir / "comparison.png", target["f1"])
    return result


def _check_strategies(strategies: Sequence[str], chosen: str, evaluate_test: Path | None) -> None:
    if not strategies:
        raise UnknownStrategyError("give at least one strategy")
    for name in strategies:
        if name not in STRATEGIES:
            raise UnknownStrategyError(f"unknown strategy {name!r}; choose from {list(STRATEGIES)}")
    if evaluate_test is not None and chosen not in strategies:
        raise UnknownStrategyError(f"[compare] chosen_strategy {chosen!r} is not compared")


def _curves(histories: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [
            {
                "n_added": e["n_added"],
                "n_added_tokens": e.get("n_added_tokens"),
                "dev": e["dev"],
                "checkpoint": e["checkpoint"],
            }
            for e in history["iterations"]
        ]
        for name, history in histories.items()
    }


def _run_seeded_comparison(
    settings: LoopSettings,
    output_dir: Path,
    strategies: Sequence[str],
    seeds: list[int],
    *,
    target: dict[str, Any],
    evaluate_test: Path | None,
    chosen_strategy: str,
    output: Path | None,
    table: Path | None,
    plot: Path | None,
    progress: bool,
    processes: int,
    executor: str,
    threads: int | None,
    address: str | None,
    config: Config | None,
) -> dict[str, Any]:
    _check_strategies(strategies, chosen_strategy, evaluate_test)
    if config is not None:
        write_resolved(config, output_dir)
        for seed in seeds:
            for name in strategies:
                seeded = with_strategy(config, name)
                seeded["loop"]["seed"] = seed
                write_resolved(seeded, seed_dir(output_dir, seed) / name)
    histories = run_seeded_strategies(
        settings, output_dir, strategies, seeds, processes=processes, executor=executor,
        threads=threads, address=address, progress=progress,
    )  # fmt: skip
    gold_f1 = (target.get("reference") or {}).get("f1")
    rows_by_seed = {
        seed: compare_histories(histories[seed], target["f1"], gold_f1) for seed in seeds
    }
    first = histories[seeds[0]]
    result: dict[str, Any] = {
        "strategies": list(strategies),
        "seeds": seeds,
        "target": target,
        "n_initial_expert": next(iter(first.values()))["n_initial_expert"],
        "settings": {k: v for k, v in settings.to_dict().items() if k not in ("strategy", "seed")},
        "rows": aggregate_seeds(rows_by_seed),
        "per_seed": {
            str(seed): {"rows": rows_by_seed[seed], "curves": _curves(histories[seed])}
            for seed in seeds
        },
        "test": None,
    }
    if evaluate_test is not None:
        chosen_dir = seed_dir(output_dir, seeds[0]) / chosen_strategy
        result["test"] = evaluate_chosen_on_test(chosen_dir, evaluate_test)
        result["test"]["seed"] = seeds[0]
    atomic_write_json(output or output_dir / "comparison.json", result)
    atomic_write_text(table or output_dir / "comparison.md", comparison_markdown(result))
    plot_seeded_comparison(histories, plot or output_dir / "comparison.png", target["f1"])
    return result


def plot_seeded_comparison(
    histories: dict[int, dict[str, dict[str, Any]]], path: Path, target_f1: float | None = None
) -> Path:
    """Mean dev F1 over seeds against expert sentences added, one line per strategy with a band
    from the lowest to the highest seed (up to the shortest seed's run); written atomically."""
    seeds = list(histories)
    strategies = list(histories[seeds[0]])
    with png_figure(path) as (_, ax):
        for name in strategies:
            runs = [histories[seed][name]["iterations"] for seed in seeds]
            length = min(len(run) for run in runs)
            added = [runs[0][i]["n_added"] for i in range(length)]
            f1 = [[run[i]["dev"]["f1"] for run in runs] for i in range(length)]
            mean = [sum(values) / len(values) for values in f1]
            style = {"linestyle": "--", "color": "black"} if name == RANDOM else {}
            (line,) = ax.plot(added, mean, marker="o", markersize=3, label=name, **style)
            low, high = [min(v) for v in f1], [max(v) for v in f1]
            ax.fill_between(added, low, high, alpha=0.15, color=line.get_color())
        if target_f1 is not None:
            ax.axhline(target_f1, color="grey", linestyle=":", label=f"target ({target_f1:.3f})")
        ax.set_xlabel("expert sentences added by active learning")
        ax.set_ylabel(f"dev entity F1 (mean of {len(seeds)} seeds, band: min-max)")
        ax.set_title("Active learning: query strategies over seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    return Path(path)


def run_comparison_from_config(
    config_path: Path | str,
    output_dir: Path | str,
    overrides: dict[str, Any] | None = None,
    *,
    evaluate_test: Path | None = None,
    output: Path | None = None,
    table: Path | None = None,
    plot: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the comparison with the settings of a file (``configs/al.cfg``: the loop's sections
    and ``[compare]``) and overrides; the resolved settings go to ``output_dir/config.cfg``."""
    config = load_al_config(config_path, overrides)
    settings = with_input_hashes(loop_settings(config))
    compare = compare_settings(config)
    gold_metrics = input_path(dict(config.get("paths", {})), "gold_metrics")
    return run_comparison(
        settings,
        Path(output_dir),
        compare.strategies,
        target=resolve_target(
            Path(gold_metrics) if gold_metrics else None, compare.target_fraction, compare.target_f1
        ),
        evaluate_test=evaluate_test,
        chosen_strategy=compare.chosen_strategy,
        output=output,
        table=table,
        plot=plot,
        progress=progress,
        processes=compare.processes,
        executor=compare.executor,
        threads=compare.threads,
        address=compare.address,
        config=config,
        seeds=compare.seeds,
    )
