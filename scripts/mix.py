"""Mix expert (gold) labels into a cheap LLM-labelled corpus.

One training DocBin comes out: the chosen expert sentences carry their gold labels, every other
sentence of the cheap set its cheap labels, and no sentence occurs twice. Each Doc records where its
labels came from (``source``: ``cheap`` or ``expert``) and its loss ``weight``.

Two settings of the study are covered by the expert *pool* (the sentences experts may label):

- ``rest``: the pool is the gold train set minus the cheap set, and expert sentences are added to
  the cheap set (the Llama-3.1-405B set: 2,037 cheap sentences, a pool of 12,004).
- ``cheap``: the pool is the cheap set itself, and experts relabel a subset of it, whose cheap
  version is replaced (the ChatGPT set, which covers all of train).
- ``auto`` picks ``cheap`` when the cheap set covers every gold train sentence, else ``rest``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.mixing import (
    CheapWeightOption,
    ExpertPoolError,
    ExpertWeightOption,
    PoolOption,
    mix_files,
    read_expert_ids,
)


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
    try:
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
    except ExpertPoolError as err:
        msg.fail(str(err), exits=1)
    counts = summary["counts"]
    msg.good(
        f"Wrote {output_path}: {summary['n_docs']} sentences, {counts['cheap']} cheap, "
        f"{counts['expert']} expert ({summary['n_replaced']} replaced), pool "
        f"{summary['pool']} of {summary['pool_size']}"
    )


if __name__ == "__main__":
    typer.run(main)
