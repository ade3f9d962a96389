"""Score pool sentences by model uncertainty: one JSONL row per sentence, most uncertain first.

python -m scripts.score MODEL POOL.spacy --strategy entropy --output scores.jsonl
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.al.score_file import score_file
from nerloop.al.strategies import STRATEGIES
from nerloop.cli import run_app


def main(
    model_path: Path = typer.Argument(..., exists=True, file_okay=False, help="Trained pipeline"),
    pool_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Pool DocBin"),
    strategy: str = typer.Option(
        "entropy", "--strategy", "-s", help=f"One of: {', '.join(STRATEGIES)}"
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Scores JSONL to write"),
    stats: Path | None = typer.Option(None, "--stats", help="Also write the throughput JSON"),
    seed: int = typer.Option(0, help="Seed (random baseline, MC dropout)"),
    mc_samples: int = typer.Option(10, min=2, help="MC dropout passes (bald)"),
    mc_dropout: float = typer.Option(0.1, min=0.0, max=0.99, help="MC dropout rate (bald)"),
    batch_size: int = typer.Option(64, min=1, help="Sentences per forward pass"),
    top_tokens: int = typer.Option(3, min=0, help="Most uncertain tokens listed per sentence"),
    limit: int = typer.Option(0, min=0, help="Score only the first N sentences (0: all)"),
) -> None:
    """Write a score per pool sentence (sent_id, rank, score, tokens, predicted tags, the most
    uncertain tokens with their entropies), most uncertain first, and report the throughput."""
    scored = score_file(
        model_path,
        pool_path,
        output,
        strategy_name=strategy,
        stats_path=stats,
        seed=seed,
        mc_samples=mc_samples,
        mc_dropout=mc_dropout,
        batch_size=batch_size,
        top_tokens=top_tokens,
        limit=limit,
    )
    info = scored.stats()
    msg.good(
        f"Wrote {output}: {info['n_sentences']} sentences scored with {scored.strategy} in "
        f"{info['seconds']:.1f} s ({info['sentences_per_second']:.1f} sentences/s)"
    )


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
