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
from typing import Any

from spacy.util import load_config

from nerloop.errors import SettingsError


def step_overrides(
    config_path: Path, steps: int, warmup: int, eval_frequency: int | None = None
) -> dict[str, Any]:
    """The overrides that train ``config_path`` for ``steps`` optimizer steps.

    RETURNS (Dict[str, Any]): ``training.max_epochs`` 0 and ``training.max_steps``; the
        schedule's ``total_steps`` and ``warmup_steps`` when the learning rate is a schedule
        that has them; ``training.eval_frequency`` when given.
    """
    if steps < 1:
        raise SettingsError(f"steps must be at least 1, not {steps}")
    if not 0 <= warmup < steps:
        raise SettingsError(f"warmup must be in [0, steps), not {warmup} (steps {steps})")
    config = load_config(config_path, interpolate=False)
    overrides: dict[str, Any] = {"training.max_epochs": 0, "training.max_steps": steps}
    rate = config["training"]["optimizer"].get("learn_rate")
    if isinstance(rate, dict):
        if "total_steps" in rate:
            overrides["training.optimizer.learn_rate.total_steps"] = steps
        if "warmup_steps" in rate:
            overrides["training.optimizer.learn_rate.warmup_steps"] = warmup
    if eval_frequency is not None:
        overrides["training.eval_frequency"] = eval_frequency
    return overrides


def train_steps(
    config_path: Path,
    output: Path,
    steps: int,
    warmup: int = 0,
    eval_frequency: int | None = None,
    code: Path | None = None,
    gpu_id: int = -1,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Run ``spacy train`` on ``config_path`` for exactly ``steps`` optimizer steps.

    config_path (Path): the training config.
    output (Path): the output folder (model-best, model-last).
    steps (int): optimizer steps; warmup (int): warmup steps, for schedules that have them.
    eval_frequency (int | None): steps between dev scores (default: the config's).
    code (Path | None): a Python file with registrations, imported first (``--code``).
    gpu_id (int): GPU id, -1 for CPU.
    overrides (dict | None): further ``section.key`` overrides, applied last.
    """
    from spacy.cli.train import train
    from spacy.util import import_file

    if code is not None:
        import_file("code", code)
    settings = step_overrides(config_path, steps, warmup, eval_frequency)
    settings.update(overrides or {})
    train(config_path, output, use_gpu=gpu_id, overrides=settings)
