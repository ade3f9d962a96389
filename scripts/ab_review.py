"""Blind A/B review of two taggers by people.

    python -m scripts.ab_review build training/a/model-best training/b/model-best \
        corpus/test.spacy review/ --n 200 --seed 0
    python -m scripts.ab_review score review/answers.json review/mapping.json --format labelstudio

``build`` writes Label Studio tasks and config, a Prodigy ``ner.eval-ab``-style JSONL and the
``mapping.json`` kept aside; ``score`` turns the people's choices into A's win rate with a
Wilson 95% interval and a sign test (see ``nerloop.formats.ab_review``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.formats.ab_review import build_ab_review, score_ab_review
from nerloop.formats.common import FORMATS

app = typer.Typer(add_completion=False, help="Blind A/B review of two taggers by people.")


@app.command()
def build(
    model_a: Path = typer.Argument(..., help="First trained pipeline folder (A)"),
    model_b: Path = typer.Argument(..., help="Second trained pipeline folder (B)"),
    corpus_path: Path = typer.Argument(..., help="DocBin of the sentences to sample from"),
    output_dir: Path = typer.Argument(..., help="Folder for the tasks, config and mapping"),
    n: int = typer.Option(100, "--n", min=1, help="Sentences to sample"),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and of the option order"),
    labels: Path | None = typer.Option(
        None, "--labels", help="Label scheme file (default: nerloop/schemes/conll2003.cfg)"
    ),
    skip_identical: bool = typer.Option(
        True,
        "--skip-identical/--keep-identical",
        help="Leave out sentences both models read identically (they are counted)",
    ),
    batch_size: int = typer.Option(64, min=1, help="Sentences per forward pass"),
) -> None:
    """Write blind A/B tasks comparing two models' entities on a seeded sample."""
    summary = build_ab_review(
        model_a,
        model_b,
        corpus_path,
        output_dir,
        n,
        seed=seed,
        labels=labels,
        skip_identical=skip_identical,
        batch_size=batch_size,
    )
    msg.good(
        f"Wrote {summary['n_tasks']} A/B tasks (review {summary['review_id']}) of "
        f"{summary['n_sampled']} sampled sentences; {summary['n_identical']} read identically"
    )
    msg.text(f"Rule: {summary['identical_rule']}")
    for path in summary["paths"].values():
        msg.text(f"  {path}")
    msg.text(f"Prodigy: {summary['prodigy_command']}")
    msg.warn(f"Keep {summary['paths']['mapping']} away from the reviewers")


@app.command()
def score(
    answers_path: Path = typer.Argument(..., help="Label Studio JSON export or Prodigy JSONL"),
    mapping_path: Path = typer.Argument(..., help="The mapping.json that build wrote"),
    answer_format: str = typer.Option(
        ..., "--format", help=f"Format of the answers: {' or '.join(FORMATS)}"
    ),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", help="Folder for ab_score.json and .md (default: the mapping's)"
    ),
) -> None:
    """Score model A against model B from the people's choices."""
    result = score_ab_review(answers_path, mapping_path, answer_format, output_dir)
    rate = result["win_rate"]
    interval = result["wilson_95"]
    msg.good(
        f"A: {result['wins']} wins, {result['losses']} losses, {result['ties']} ties; win rate "
        + (f"{rate:.3f} (Wilson 95% {interval[0]:.3f}-{interval[1]:.3f})" if interval else "n/a")
        + (
            f", sign test p={result['sign_test_p']:.4f}"
            if result["sign_test_p"] is not None
            else ""
        )
    )
    for path in result["paths"].values():
        msg.text(f"  {path}")


if __name__ == "__main__":
    run_app(app)
