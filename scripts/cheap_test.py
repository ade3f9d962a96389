"""Cheap testing: rank models by F1 against LLM labels on held-out sentences, and measure how
well that ranking tracks gold F1 (``nerloop/eval/cheap_testing.py``).

Writes the report JSON (held-out ids, per model scores, correlations), a Markdown table and a
scatter PNG beside it.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.eval.cheap_testing import (
    models_from_specs,
    read_held_out_ids,
    run_cheap_test,
    summary_lines,
    write_report,
)


def main(
    llm_path: Path = typer.Argument(..., help="LLM-labelled sentences (corpus/cheap/<set>.spacy)"),
    output: Path = typer.Argument(..., help="Report JSON; the .md and .png go beside it"),
    model: list[str] = typer.Option(
        [], "--model", "-m", help="NAME=MODEL_PATH@TRAINED_ON[,TRAINED_ON] (DocBins, manifests)"
    ),
    al_run: list[str] = typer.Option(
        [], "--al-run", help="[PREFIX=]DIR: every checkpoint of an AL run (or folder of runs)"
    ),
    al_skip_initial: bool = typer.Option(
        False, help="Leave out each AL run's iteration 0 (a copy of its initial model)"
    ),
    group: list[str] = typer.Option(
        [], "--group", "-g", help="Model-name prefix (cnn for cnn/...) to also track within"
    ),
    gold: Path | None = typer.Option(None, help="Gold labels of the same split (held-out F1)"),
    dev: Path | None = typer.Option(None, help="Gold dev DocBin (dev F1 of every model)"),
    held_out_ids: Path | None = typer.Option(
        None, help="JSON list of held-out ids, or a previous report (default: draw them)"
    ),
    n_held_out: int = typer.Option(1000, help="Sentences to hold out when drawing"),
    seed: int = typer.Option(0, help="Seed of the held-out draw"),
    batch_size: int = typer.Option(64, help="Sentences per forward pass"),
    table: Path | None = typer.Option(None, help="Markdown (default OUTPUT with .md)"),
    plot: Path | None = typer.Option(None, help="PNG (default OUTPUT with .png)"),
) -> None:
    """Score every model against the LLM's labels of sentences none of them trained on (cheap
    F1) and, with --gold/--dev, against gold; report the correlations and the best model."""
    models = models_from_specs(model, al_run, include_initial=not al_skip_initial)
    report = run_cheap_test(
        llm_path,
        models,
        gold_path=gold,
        dev_path=dev,
        held_out_ids=None if held_out_ids is None else read_held_out_ids(held_out_ids),
        n_held_out=n_held_out,
        seed=seed,
        groups=group,
        batch_size=batch_size,
    )
    paths = write_report(report, output, table, plot)
    for line in summary_lines(report):
        msg.info(line)
    msg.good(f"Wrote {', '.join(str(path) for path in paths)}")


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
