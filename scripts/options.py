"""Typer option types shared by several CLIs: one spelling for every step that trains or mixes.

The default stays in each signature (``learn_rate: LearnRateOption = None``), so a CLI's help
shows it and a test calling ``main`` directly gets it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# the training overrides (nerloop.training.train_on_docs, finetune)
LearnRateOption = Annotated[
    float | None, typer.Option(help="Constant learning rate (default: config)")
]
DropoutOption = Annotated[float | None, typer.Option(help="Dropout (default: config)")]
BatchWordsOption = Annotated[int | None, typer.Option(help="Words per batch (default: config)")]
GpuIdOption = Annotated[int, typer.Option(help="GPU id, -1 for CPU")]

# the mixing settings (nerloop.mixing.mix_corpus)
PoolOption = Annotated[
    str, typer.Option(help="Expert pool: rest (train minus cheap), cheap (relabel) or auto")
]
CheapWeightOption = Annotated[float, typer.Option(help="Loss weight of the cheap sentences")]
ExpertWeightOption = Annotated[float, typer.Option(help="Loss weight of the expert sentences")]

# the active learning CLIs (al_loop, al_compare): the settings file and the one test evaluation
AlConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", exists=True, dir_okay=False, help="Settings (configs/al_gpu.cfg: the GPU set)"
    ),
]
EvaluateTestOption = Annotated[
    Path | None,
    typer.Option(
        "--evaluate-test",
        exists=True,
        dir_okay=False,
        help="Score the chosen checkpoint on this test DocBin, once, at the end",
    ),
]
