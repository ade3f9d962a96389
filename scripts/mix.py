"""Mix expert (gold) labels into a cheap LLM-labelled corpus: one training DocBin.

    python -m scripts.mix corpus/cheap/llama405b.spacy corpus/train.spacy mixed.spacy \
        --summary mixed.json --budget-pct 12

Expert sentences carry their gold labels, every other cheap sentence its cheap labels; the
expert pool settings (``rest``, ``cheap``, ``auto``) are explained in ``nerloop.mixing``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.mixing import mix_files, read_expert_ids
from scripts.options import CheapWeightOption, ExpertWeightOption, PoolOption


def main(
    cheap_path: Path = typer.Argument(..., help="Cheap DocBin, e.g. corpus/cheap/llama405b.spacy"),
    gold_path: Path = typer.Argument(..., help="Gold train DocBin (corpus/train.spacy)"),
    output_path: Path = typer.Argument(..., help="Mixed training DocBin to write"),
    summary_path: Path = typer.Option(
        ..., "--summary", help="Provenance summary JSON (counts per source, expert ids)"
    ),
    expert_ids_path: Path | None = typer.Option(
        None,
        "--expert-ids",
        exists=True,
        dir_okay=False,
        help="File of expert sentence ids: JSON list, JSON with 'expert_ids', or plain text",
    ),
    budget: int | None = typer.Option(None, min=0, help="Draw this many expert sentences"),
    budget_pct: float | None = typer.Option(
        None, min=0.0, help="Draw this percentage of the cheap set size"
    ),
    seed: int = typer.Option(0, help="Seed of the expert draw"),
    pool: PoolOption = "auto",
    cheap_weight: CheapWeightOption = 1.0,
    expert_weight: ExpertWeightOption = 1.0,
) -> None:
    """Write a training DocBin with gold labels for the expert sentences and cheap labels for the
    rest (never both for one sentence), each Doc with its source and weight."""
    summary = mix_files(
        cheap_path,
        gold_path,
        output_path,
        summary_path,
        expert_ids=read_expert_ids(expert_ids_path) if expert_ids_path else None,
        budget=budget,
        budget_pct=budget_pct,
        seed=seed,
        pool=pool,
        cheap_weight=cheap_weight,
        expert_weight=expert_weight,
    )
    counts = summary["counts"]
    msg.good(
        f"Wrote {output_path}: {summary['n_docs']} sentences, {counts['cheap']} cheap, "
        f"{counts['expert']} expert ({summary['n_replaced']} replaced), pool "
        f"{summary['pool']} of {summary['pool_size']}"
    )


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
