"""Pick the cheap annotator: entity P/R/F1 of several LLM sources on a gold sample, beside cost.

    python -m scripts.annotate_eval corpus/train.spacy \
        --source configs/llm_token_ner_openai.cfg --source configs/llm_spacy_ner_openai.cfg \
        --source recorded:chatgpt --source recorded:llama405b \
        --n-sentences 200 --seed 0 --output metrics/annotate_eval.json

Every source labels the same seeded gold sample; the scores are described in
``nerloop.llm.evaluation``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.io_utils import atomic_write_json, atomic_write_text, read_docbin
from nerloop.llm.cost import load_prices
from nerloop.llm.evaluation import evaluate_sources, markdown_table

app = typer.Typer(add_completion=False)


@app.command()
def main(
    gold_path: Path = typer.Argument(..., help="Gold DocBin to sample from", exists=True),
    sources: list[str] = typer.Option(
        ..., "--source", "-s", help="A spacy-llm config or recorded:<set> (repeatable)"
    ),
    n_sentences: int = typer.Option(200, min=1, help="Sentences in the sample"),
    seed: int = typer.Option(0, help="Sample seed"),
    output: Path = typer.Option(Path("metrics/annotate_eval.json"), help="JSON report"),
    table: Path | None = typer.Option(
        None, help="Markdown table (default: the report's path with .md)"
    ),
    cache_dir: Path = typer.Option(Path("cache/llm"), help="Answer cache folder"),
    recorded_dir: Path = typer.Option(Path("corpus/cheap"), help="Folder of recorded DocBins"),
    prices_path: Path = typer.Option(
        Path("configs/llm_prices.json"), "--prices", help="Price table and expert cost model"
    ),
    concurrency: int | None = typer.Option(
        None, min=1, help="Prompts in flight (default: each config's own)"
    ),
    labels_path: Path | None = typer.Option(
        None,
        "--labels",
        help="Label scheme file for every source (default: each config's own labels)",
        exists=True,
        dir_okay=False,
    ),
    progress: bool = typer.Option(True, help="Show progress bars"),
) -> None:
    """Score several LLM sources on the same seeded gold sample, beside their cost."""
    gold = read_docbin(gold_path)
    prices = load_prices(prices_path) if prices_path.exists() else None
    report = evaluate_sources(
        gold,
        sources,
        n_sentences=n_sentences,
        seed=seed,
        recorded_dir=recorded_dir,
        cache_dir=cache_dir,
        prices=prices,
        concurrency=concurrency,
        progress=progress,
        labels=labels_path,
    )
    report["gold"] = str(gold_path)
    atomic_write_json(output, report)
    text = markdown_table(report)
    atomic_write_text(table or output.with_suffix(".md"), text)
    msg.good(f"Wrote {output}")
    print(text)


if __name__ == "__main__":
    run_app(app)
