"""Active learning with real experts, one iteration at a time: select -> export -> people
annotate -> import -> fine-tune.

A state folder holds everything of a run::

    STATE/state.json                         start model, current model, labelled sent_ids,
                                             the pending iteration, the dev history
    STATE/expert.spacy                       every expert-labelled Doc so far (the experts' labels)
    STATE/iter_{i}/selected.spacy            the batch chosen in iteration i (no entities)
    STATE/iter_{i}/selection.json            its scores, words and most uncertain tokens
    STATE/iter_{i}/export/                   Label Studio tasks + config, Prodigy JSONL
    STATE/iter_{i}/answers.spacy             the experts' answers of iteration i (imported)
    STATE/iter_{i}/import_summary.json
    STATE/checkpoints/active_iter_{i}_added_{n}/ (+ .json manifest)  the fine-tuned pipelines

``select`` scores the pool sentences not labelled yet with the current model (the last
checkpoint, or the start model), picks a batch (``scripts/al/selection.py``) and exports it
(``scripts/al_export.py``). ``update`` imports the answers (``scripts/al_import.py``; an invalid
file stops everything with nothing written), trains the current model warm on the cheap set with
the expert sentences replacing or adding to it, scores it on dev and saves the checkpoint.

``state.json`` is written last by both commands: it is the commit point. Everything else is
written atomically before it and is simply redone when a command is run again after a crash
(``expert.spacy`` only ever keeps the sentences ``state.json`` records as labelled, plus the
batch being committed).
"""

from __future__ import annotations

from pathlib import Path

import typer
from spacy import util
from wasabi import msg

from nerloop.al.human import CLI_ERRORS, select_for_experts, update_from_experts
from nerloop.al.strategies import STRATEGIES
from nerloop.formats.common import FORMATS
from nerloop.mixing import (
    CheapWeightOption,
    ExpertWeightOption,
)
from nerloop.training import (
    BatchWordsOption,
    DropoutOption,
    GpuIdOption,
    LearnRateOption,
)

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def select(
    state_dir: Path = typer.Argument(..., file_okay=False, help="State folder of the run"),
    pool_path: Path = typer.Option(
        ..., "--pool", exists=True, dir_okay=False, help="DocBin of the sentences to choose from"
    ),
    model: Path | None = typer.Option(
        None, "--model", file_okay=False, help="Start model (needed on first use)"
    ),
    initial_experts: Path | None = typer.Option(
        None,
        "--initial-experts",
        exists=True,
        dir_okay=False,
        help="First use: DocBin of the expert Docs the start model was trained with",
    ),
    strategy: str = typer.Option("entropy", help=f"One of {', '.join(STRATEGIES)}"),
    batch_to_add: int = typer.Option(10, min=1, help="Sentences to give the experts"),
    seed: int = typer.Option(0, help="Seeds MC dropout, the random baseline and fine-tuning"),
    max_jaccard: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Pass over sentences too similar to a chosen one"
    ),
    gpu_id: GpuIdOption = -1,
    progress: bool = typer.Option(True, help="Show progress bars"),
) -> None:
    """Score the unlabelled pool with the current model, choose a batch, export it for experts."""
    if gpu_id >= 0:
        util.require_gpu(gpu_id)
    try:
        pending = select_for_experts(
            state_dir,
            pool_path,
            model=model,
            initial_experts=initial_experts,
            strategy_name=strategy,
            batch_to_add=batch_to_add,
            seed=seed,
            max_jaccard=max_jaccard,
            progress=progress,
        )
    except CLI_ERRORS as err:
        msg.fail(str(err), exits=1)
    msg.good(
        f"Iteration {pending['iteration']}: {len(pending['selected_ids'])} sentences chosen "
        f"with {pending['strategy']}"
    )
    for path in pending["export"].values():
        msg.text(f"  {path}")
    msg.text(
        f"When the experts are done: python -m scripts.al_human update {state_dir} "
        "--answers FILE --format labelstudio|prodigy --cheap CHEAP.spacy --dev DEV.spacy"
    )


@app.command()
def update(
    state_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="State folder"),
    answers_path: Path = typer.Option(
        ..., "--answers", exists=True, dir_okay=False, help="Label Studio JSON or Prodigy JSONL"
    ),
    answers_format: str = typer.Option(..., "--format", help=" or ".join(FORMATS)),
    cheap_path: Path = typer.Option(
        ..., "--cheap", exists=True, dir_okay=False, help="Cheap DocBin to mix the experts into"
    ),
    dev_path: Path = typer.Option(..., "--dev", exists=True, dir_okay=False, help="Gold dev"),
    finetune_epochs: int = typer.Option(2, min=1, help="Epochs of the warm fine-tuning"),
    cheap_weight: CheapWeightOption = 1.0,
    expert_weight: ExpertWeightOption = 1.0,
    learn_rate: LearnRateOption = None,
    dropout: DropoutOption = None,
    batch_words: BatchWordsOption = None,
    annotator: str | None = typer.Option(
        None, help="Annotator name for every Doc (default: the tool's user id)"
    ),
    gpu_id: GpuIdOption = -1,
    progress: bool = typer.Option(True, help="Show progress bars"),
) -> None:
    """Import the experts' answers, fine-tune the current model, score it on dev, save it."""
    if answers_format not in FORMATS:
        msg.fail(f"--format must be one of {', '.join(FORMATS)}, not {answers_format!r}", exits=1)
    if gpu_id >= 0:
        util.require_gpu(gpu_id)
    try:
        manifest = update_from_experts(
            state_dir,
            answers_path,
            answers_format,
            cheap_path,
            dev_path,
            finetune_epochs=finetune_epochs,
            cheap_weight=cheap_weight,
            expert_weight=expert_weight,
            learn_rate=learn_rate,
            dropout=dropout,
            batch_words=batch_words,
            annotator=annotator,
            progress=progress,
        )
    except CLI_ERRORS as err:
        msg.fail(str(err), exits=1)
    for item in manifest["skipped"]:
        msg.warn(f"skipped task {item['task']} (sent_id {item['sent_id']}): {item['reason']}")
    msg.good(
        f"Iteration {manifest['iteration']}: {len(manifest['added_ids'])} expert sentences "
        f"added ({manifest['n_added']} in all), saved {manifest['checkpoint']}"
    )
    msg.text(f"dev F1 {manifest['dev']['f1']:.4f} (gain {manifest['gain']:+.4f})")


if __name__ == "__main__":
    app()
