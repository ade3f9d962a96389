"""Test F1 at fixed expert budgets, for every strategy of a finished comparison: the share of the
gold model's test F1 that experts reach after relabelling 1%, 2% and 5% of train (the headline
of README "The headline"), against random at the same budgets.

The budgets are fixed before anything is scored, so this is not a choice made on test: each
strategy's checkpoint with exactly that many added sentences is scored once, and its result is
kept beside the checkpoint (``<run>/budget_test/<checkpoint>.json``), so a rerun scores nothing
again. Over several seeds (``[compare] seeds``) each seed's checkpoint is scored and the table
gives the mean and spread.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nerloop.al.checkpoints import open_store
from nerloop.al.compare import _mean_std, seed_dir
from nerloop.al.loop import HISTORY_FILE
from nerloop.errors import NerloopError
from nerloop.eval.pipeline import evaluate_pipeline, load_pipeline
from nerloop.io_utils import atomic_write_json, atomic_write_text, read_docbin

RESULTS_DIR = "budget_test"


class BudgetTestError(NerloopError, ValueError):
    """A budget no checkpoint of a run has, or a comparison that is not finished."""


def _run_dirs(compare_dir: Path, comparison: dict[str, Any]) -> dict[str, list[Path]]:
    seeds = comparison.get("seeds")
    return {
        name: (
            [seed_dir(compare_dir, seed) / name for seed in seeds]
            if seeds
            else [compare_dir / name]
        )
        for name in comparison["strategies"]
    }


def checkpoint_at(run_dir: Path, n_added: int) -> str:
    """The checkpoint of a loop with exactly ``n_added`` added sentences."""
    history = json.loads((run_dir / HISTORY_FILE).read_text(encoding="utf8"))
    for entry in history["iterations"]:
        if entry["n_added"] == n_added:
            return entry["checkpoint"]
    have = [entry["n_added"] for entry in history["iterations"]]
    raise BudgetTestError(
        f"{run_dir}: no checkpoint with {n_added} added sentences (it has {have}); give budgets "
        "that are multiples of [loop] batch_to_add within max_iterations"
    )


def score_checkpoint(run_dir: Path, checkpoint: str, test_path: Path, batch_size: int = 64):
    """Test scores of one checkpoint, computed once and kept beside the run."""
    path = run_dir / RESULTS_DIR / f"{checkpoint}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf8"))
    nlp = load_pipeline(open_store(run_dir).pipeline_path(checkpoint))
    test = evaluate_pipeline(nlp, read_docbin(test_path, nlp.vocab), batch_size, progress=False)
    result = {"checkpoint": checkpoint, "test": test, "test_path": str(test_path)}
    atomic_write_json(path, result)
    return result


def evaluate_budgets(
    compare_dir: Path | str,
    test_path: Path | str,
    budgets: Sequence[int],
    *,
    reference_test_f1: float | None = None,
    reference_name: str = "gold",
    pool_size: int | None = None,
    batch_size: int = 64,
    comparison_path: Path | str | None = None,
) -> dict[str, Any]:
    """Score every strategy's checkpoint at each budget on test; their share of the reference.

    compare_dir (Path): The output folder of a finished ``al-compare`` (``comparison.json``).
    test_path (Path): The gold test DocBin.
    budgets (Sequence[int]): Added expert sentences, each a checkpoint of every run.
    reference_test_f1 (Optional[float]): The gold model's test F1 (the share's denominator).
    reference_name (str): Its name in the table.
    pool_size (Optional[int]): Sentences a budget is a percentage of (train relabelled).
    comparison_path (Optional[Path]): The comparison's JSON when al-compare wrote it elsewhere
        (``--output``; default ``compare_dir/comparison.json``).
    RETURNS (dict): ``rows`` (one per strategy: per budget the test F1 of each seed, their mean
        and spread, and the share of the reference), written by ``write_budget_table``.
    """
    compare_dir = Path(compare_dir)
    comparison_path = Path(comparison_path or compare_dir / "comparison.json")
    if not comparison_path.exists():
        raise BudgetTestError(f"{comparison_path} does not exist: run al-compare first")
    comparison = json.loads(comparison_path.read_text(encoding="utf8"))
    rows = []
    for name, run_dirs in _run_dirs(compare_dir, comparison).items():
        cells = []
        for budget in budgets:
            scores = [
                score_checkpoint(run, checkpoint_at(run, budget), Path(test_path), batch_size)
                for run in run_dirs
            ]
            f1s = [score["test"]["f1"] for score in scores]
            mean, std = _mean_std(f1s)
            cells.append(
                {
                    "n_added": budget,
                    "pct_of_pool": None if not pool_size else 100 * budget / pool_size,
                    "checkpoints": [score["checkpoint"] for score in scores],
                    "test_f1": f1s,
                    "test_f1_mean": mean,
                    "test_f1_std": std,
                    "share_of_reference": (
                        None if not reference_test_f1 else mean / reference_test_f1
                    ),
                }
            )
        rows.append({"strategy": name, "budgets": cells})
    return {
        "compare_dir": str(compare_dir),
        "test_path": str(test_path),
        "seeds": comparison.get("seeds"),
        "reference": {"name": reference_name, "test_f1": reference_test_f1},
        "pool_size": pool_size,
        "rows": rows,
    }


def budget_markdown(result: dict[str, Any]) -> str:
    reference = result["reference"]
    budgets = result["rows"][0]["budgets"] if result["rows"] else []

    def head(cell: dict[str, Any]) -> str:
        pct = f" ({cell['pct_of_pool']:.1f}%)" if cell["pct_of_pool"] is not None else ""
        return f"{cell['n_added']}{pct}"

    lines = [
        "# Test F1 at fixed expert budgets",
        "",
        "Expert sentences added (share of the pool relabelled); test F1"
        + (
            f" and its share of {reference['name']}'s test F1 {reference['test_f1']:.4f}"
            if reference["test_f1"]
            else ""
        )
        + ". Budgets fixed in advance; each checkpoint scored on test once.",
        "",
        "| strategy | " + " | ".join(head(cell) for cell in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    for row in result["rows"]:
        cells = []
        for cell in row["budgets"]:
            text = f"{cell['test_f1_mean']:.4f}"
            if len(cell["test_f1"]) > 1:
                text += f" ± {cell['test_f1_std']:.4f}"
            if cell["share_of_reference"] is not None:
                text += f" ({100 * cell['share_of_reference']:.1f}%)"
            cells.append(text)
        lines.append(f"| {row['strategy']} | " + " | ".join(cells) + " |")
    if result.get("seeds"):
        lines += ["", f"Mean ± standard deviation over seeds {result['seeds']}."]
    return "\n".join(lines) + "\n"


def write_budget_table(result: dict[str, Any], output: Path, table: Path | None = None) -> None:
    atomic_write_json(output, result)
    atomic_write_text(table or Path(output).with_suffix(".md"), budget_markdown(result))
