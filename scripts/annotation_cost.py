"""LLM vs expert annotation cost per 1,000 sentences, for recorded sets and live runs.

    python -m scripts.annotation_cost --recorded-dir corpus/cheap \
        --run corpus/llm/token_ner_openai.summary.json \
        --output metrics/annotation_cost.json --table metrics/annotation_cost.md

How the tokens are counted and priced: ``nerloop.llm.cost_report``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.io_utils import atomic_write_json, atomic_write_text
from nerloop.llm.cost_report import annotation_cost, cost_markdown


def main(
    recorded_dir: Path = typer.Option(Path("corpus/cheap"), help="Folder of recorded DocBins"),
    runs: list[Path] = typer.Option(
        [],
        "--run",
        exists=True,
        dir_okay=False,
        help="An annotate run summary (*.summary.json) to include (repeatable)",
    ),
    prices_path: Path = typer.Option(
        Path("configs/llm_prices.json"), "--prices", help="Price table and expert cost model"
    ),
    output: Path = typer.Option(Path("metrics/annotation_cost.json"), help="JSON report"),
    table: Path = typer.Option(Path("metrics/annotation_cost.md"), help="Markdown table"),
) -> None:
    """Write the LLM vs expert cost per 1,000 sentences (JSON and a Markdown table)."""
    report = annotation_cost(recorded_dir, runs, prices_path)
    if not report["rows"]:
        msg.warn(f"no recorded sets in {recorded_dir} and no runs given: only the expert model")
    text = cost_markdown(report)
    atomic_write_json(output, report)
    atomic_write_text(table, text)
    msg.good(f"Wrote {output} and {table}")
    print(text)


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
