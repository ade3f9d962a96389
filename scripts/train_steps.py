"""``spacy train`` for a fixed number of steps, whatever the corpus size and the config.

The LLM-only model trains for a fixed number of optimizer steps (the Llama set has 2,037
sentences: about a dozen batches an epoch). When the config's learning rate is a schedule with
``total_steps`` (and ``warmup_steps``), as in the transformer configs' ``warmup_linear.v1``, the
schedule is stretched over those steps; a constant rate (the CNN and tiny configs) is left as it
is. Plain ``spacy train --training.optimizer.learn_rate.total_steps N`` fails on such configs
("not a section value that can be overridden"). Any other ``--section.key value`` override is
passed on to ``spacy train``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from spacy.cli._util import parse_config_overrides
from spacy.cli.train import train
from wasabi import msg

from nerloop.train_steps import step_overrides


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
    if code is not None:
        from spacy.util import import_file

        import_file("code", code)
    try:
        overrides = step_overrides(config_path, steps, warmup, eval_frequency)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    overrides.update(parse_config_overrides(ctx.args))
    train(config_path, output, use_gpu=gpu_id, overrides=overrides)


app = typer.Typer(add_completion=False)


app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(main)


if __name__ == "__main__":
    app()
