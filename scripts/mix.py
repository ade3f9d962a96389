"""Mix expert (gold) labels into a cheap LLM-labelled corpus: one training DocBin.

    python -m scripts.mix corpus/cheap/llama405b.spacy corpus/train.spacy mixed.spacy \
        --summary mixed.json --budget-pct 12

Expert sentences carry their gold labels, every other cheap sentence its cheap labels; the
expert pool settings (``rest``, ``cheap``, ``auto``) are explained in ``nerloop.mixing``.
``--noisy downweight|relabel|droptypes --judge-model PATH`` then lets a trained tagger judge the
cheap labels (``nerloop.noisy``) and writes its report beside the corpus (``mixed.noisy.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.mixing import read_expert_ids
from nerloop.noisy import NoisySettings, mix_files_noisy
from scripts.options import CheapWeightOption, ExpertWeightOption, PoolOption

# the noisy-label settings (nerloop.noisy.NoisySettings)
NoisyOption = Annotated[
    str,
    typer.Option(
        "--noisy", help="Cheap labels after mixing: none, downweight, relabel or droptypes"
    ),
]
NoisyThresholdOption = Annotated[
    float, typer.Option("--noisy-threshold", help="The judge's confidence that counts")
]
NoisyFloorOption = Annotated[
    float, typer.Option("--noisy-floor", help="downweight: the smallest weight factor")
]
NoisyAggregateOption = Annotated[
    str,
    typer.Option("--noisy-aggregate", help="downweight: mean or max confidence where tags differ"),
]


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
    noisy: NoisyOption = "none",
    noisy_threshold: NoisyThresholdOption = 0.9,
    noisy_floor: NoisyFloorOption = 0.1,
    noisy_aggregate: NoisyAggregateOption = "mean",
    judge_model: Path | None = typer.Option(
        None,
        "--judge-model",
        exists=True,
        file_okay=False,
        help="Trained bio_ner pipeline that judges the cheap labels (e.g. the LLM-only model)",
    ),
) -> None:
    """Write a training DocBin with gold labels for the expert sentences and cheap labels for the
    rest (never both for one sentence), each Doc with its source and weight; with --noisy, a
    judge model then down-weights or relabels cheap sentences (report: <output>.noisy.json)."""
    settings = NoisySettings(
        method=noisy, threshold=noisy_threshold, floor=noisy_floor, aggregate=noisy_aggregate
    )
    summary = mix_files_noisy(
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
        noisy=settings,
        judge_model=judge_model,
        progress=True,
    )
    counts = summary["counts"]
    msg.good(
        f"Wrote {output_path}: {summary['n_docs']} sentences, {counts['cheap']} cheap, "
        f"{counts['expert']} expert ({summary['n_replaced']} replaced), pool "
        f"{summary['pool']} of {summary['pool_size']}"
    )
    if "noisy" in summary:
        noisy_summary = summary["noisy"]
        msg.good(
            f"{settings}: {noisy_summary['n_changed']} cheap sentences changed, report "
            f"{noisy_summary['report']}"
        )


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
