"""Compare two taggers on one fixed gold set: per-type F1, difference, paired bootstrap CI.

The gold set is fixed for every model (the test split by default); it must never be a set chosen
by active learning. The bootstrap resamples sentences with replacement and recomputes both
models' micro F1 on the same resample, so the interval is for the paired difference.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.eval.compare import compare_models, comparison_table
from nerloop.io_utils import atomic_write_json, atomic_write_text


def main(
    model_a: Path = typer.Argument(..., help="First pipeline folder (the baseline)"),
    model_b: Path = typer.Argument(..., help="Second pipeline folder"),
    gold_path: Path = typer.Argument(..., help="The fixed gold DocBin (e.g. corpus/test.spacy)"),
    output: Path = typer.Option(
        ..., "--output", "-o", help="JSON output; a .md table goes beside it"
    ),
    name_a: str = typer.Option("a", help="Display name of model A"),
    name_b: str = typer.Option("b", help="Display name of model B"),
    n_resamples: int = typer.Option(1000, help="Bootstrap resamples"),
    seed: int = typer.Option(0, help="Bootstrap seed"),
    labels: Path | None = typer.Option(
        None, "--labels", help="Label scheme file (default: nerloop/schemes/conll2003.cfg)"
    ),
) -> None:
    """Per-type F1 of two models on one gold set, the difference and its paired bootstrap CI."""
    result = compare_models(model_a, model_b, gold_path, n_resamples, seed, labels=labels)
    result.update({"name_a": name_a, "name_b": name_b})
    atomic_write_json(output, result)
    table = comparison_table(result, name_a, name_b)
    atomic_write_text(output.with_suffix(".md"), table)
    print(table)
    msg.good(f"Wrote {output}")


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
