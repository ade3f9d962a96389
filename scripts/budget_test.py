"""Test F1 at fixed expert budgets for every strategy of a finished al-compare, and its share of
the gold model's test F1 (``nerloop.al.budget_test``): the headline's 1%, 2% and 5%.

    python -m scripts.budget_test training/chatgpt/headline corpus/test.spacy \
        metrics/chatgpt/headline.json --budgets 141,282,705 --reference metrics/gold_exp.json \
        --pool corpus/cheap/chatgpt.spacy --comparison metrics/chatgpt/headline_compare.json
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from spacy.tokens import DocBin
from wasabi import msg

from nerloop.al.budget_test import budget_markdown, evaluate_budgets, write_budget_table
from nerloop.cli import fail_on_errors, run_app


def main(
    compare_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="al-compare output"),
    test_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold test DocBin"),
    output: Path = typer.Argument(..., dir_okay=False, help="JSON to write (and .md beside it)"),
    budgets: str = typer.Option(..., help="Added expert sentences, comma-separated"),
    reference: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="The gold model's metrics JSON (its test F1)"
    ),
    pool: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="The pool DocBin (budgets as its percentage)"
    ),
    comparison: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="al-compare's JSON if not in COMPARE_DIR"
    ),
) -> None:
    """Score each strategy's checkpoint at each budget on test, once."""
    try:
        sizes = [int(value) for value in budgets.split(",") if value.strip()]
    except ValueError:
        msg.fail(f"--budgets must be integers separated by commas, not {budgets!r}", exits=1)
    reference_f1, reference_name = None, "gold"
    if reference is not None:
        data = json.loads(reference.read_text(encoding="utf8"))
        reference_f1, reference_name = data["test"]["f1"], data.get("model", reference.stem)
    pool_size = len(DocBin().from_disk(pool)) if pool is not None else None
    result = fail_on_errors(evaluate_budgets)(
        compare_dir,
        test_path,
        sizes,
        reference_test_f1=reference_f1,
        reference_name=reference_name,
        pool_size=pool_size,
        comparison_path=comparison,
    )
    write_budget_table(result, output)
    typer.echo(budget_markdown(result))
    msg.good(f"Wrote {output} and {output.with_suffix('.md')}")


if __name__ == "__main__":
    run_app(main)
