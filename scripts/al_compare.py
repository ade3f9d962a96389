"""Compare query strategies: the same active learning loop, from the same initial model, once per
strategy (entropy, the others, and the random baseline).

Writes one PNG with dev F1 against expert sentences added for every strategy on the same axes, and
a table (Markdown and JSON) of the expert sentences each strategy needed to reach a target dev F1
(by default 95% of the gold model's) and their ratio to random. The settings are those of the
``al`` step (``configs/al.cfg``) plus its ``[compare]`` section; see ``nerloop/al/compare.py``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from nerloop.al.compare import comparison_markdown, run_comparison_from_config
from nerloop.al.settings import DEFAULT_CONFIG
from nerloop.cli import OVERRIDES_CONTEXT, config_overrides, fail_on_errors, run_app
from scripts.options import AlConfigOption, EvaluateTestOption


def main(
    ctx: typer.Context,
    output_dir: Path = typer.Argument(..., help="One loop folder per strategy"),
    config_path: AlConfigOption = DEFAULT_CONFIG,
    evaluate_test: EvaluateTestOption = None,
    output: Path | None = typer.Option(None, help="JSON (default OUTPUT_DIR/comparison.json)"),
    table: Path | None = typer.Option(None, help="Markdown (default OUTPUT_DIR/comparison.md)"),
    plot: Path | None = typer.Option(None, help="PNG (default OUTPUT_DIR/comparison.png)"),
) -> None:
    """Run the active learning loop from one initial model with every strategy of
    compare.strategies and compare the dev F1 curves, the expert sentences needed to reach the
    target and their ratio to random. Overrides the spaCy way: --paths.init_model MODEL
    --compare.strategies entropy,random --executor.processes 2 --loop.batch_to_add 5 ..."""
    overrides = fail_on_errors(config_overrides)(ctx)
    result = fail_on_errors(run_comparison_from_config)(
        config_path,
        output_dir,
        overrides,
        evaluate_test=evaluate_test,
        output=output,
        table=table,
        plot=plot,
    )
    typer.echo(comparison_markdown(result))


app = typer.Typer(add_completion=False)
app.command(context_settings=OVERRIDES_CONTEXT)(main)

if __name__ == "__main__":
    run_app(app)
