"""``spacy train`` for a fixed number of steps, whatever the corpus size and the config.

    python -m scripts.train_steps configs/tagger_trf_cpu.cfg --code components/bio_ner.py \
        --output training/x --steps 240 --warmup 24 --paths.train corpus/train.spacy

A learning-rate schedule with ``total_steps`` is stretched over the steps (see
``nerloop.train_steps``); any other ``--section.key value`` is passed on to ``spacy train``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from nerloop.cli import OVERRIDES_CONTEXT, config_overrides, run_app
from nerloop.train_steps import train_steps


def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training config"),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder (model-best, -last)"),
    steps: int = typer.Option(..., min=1, help="Optimizer steps"),
    warmup: int = typer.Option(0, min=0, help="Warmup steps (schedules that have them)"),
    eval_frequency: int | None = typer.Option(None, min=1, help="Steps between dev scores"),
    code: Path | None = typer.Option(None, "--code", "-c", help="Python file with registrations"),
    gpu_id: int = typer.Option(-1, help="GPU id, -1 for CPU"),
) -> None:
    """Train for exactly --steps steps (extra --section.key value arguments are overrides)."""
    overrides = config_overrides(ctx)
    train_steps(config_path, output, steps, warmup, eval_frequency, code, gpu_id, overrides)


app = typer.Typer(add_completion=False)
app.command(context_settings=OVERRIDES_CONTEXT)(main)

if __name__ == "__main__":
    run_app(app)
