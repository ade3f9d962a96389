"""Active learning with real experts, one iteration at a time: select -> export -> people
annotate -> import -> fine-tune (see ``nerloop/al/human.py`` for the state folder).

The settings are those of the simulated loop (``configs/al.cfg``: ``[loop]`` for select,
``[mix]``, ``[training]`` and ``[hub]`` for update), overridden the spaCy way
(``--loop.strategy margin --training.finetune_epochs 1``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.al.human import select_from_config, update_from_config
from nerloop.al.settings import DEFAULT_CONFIG
from nerloop.cli import OVERRIDES_CONTEXT, config_overrides, fail_on_errors, run_app
from nerloop.formats.common import FORMATS

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])
ConfigOption = typer.Option(DEFAULT_CONFIG, "--config", exists=True, dir_okay=False)
ProgressOption = typer.Option(True, help="Show progress bars")
LabelsOption = typer.Option(
    None,
    "--labels",
    exists=True,
    dir_okay=False,
    help="Label scheme (default: the labels the current model tags)",
)


@app.command(context_settings=OVERRIDES_CONTEXT)
def select(
    ctx: typer.Context,
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
    exclude: Path | None = typer.Option(
        None,
        "--exclude",
        exists=True,
        dir_okay=False,
        help="First use: DocBin of sentences never to select (the experts' fixed dev sample)",
    ),
    labels: Path | None = LabelsOption,
    config_path: Path = ConfigOption,
    progress: bool = ProgressOption,
) -> None:
    """Score the unlabelled pool with the current model, choose a batch, export it for experts."""
    overrides = fail_on_errors(config_overrides)(ctx)
    pending = fail_on_errors(select_from_config)(
        state_dir,
        pool_path,
        config_path,
        overrides,
        model=model,
        initial_experts=initial_experts,
        exclude=exclude,
        labels=labels,
        progress=progress,
    )
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


@app.command(context_settings=OVERRIDES_CONTEXT)
def update(
    ctx: typer.Context,
    state_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="State folder"),
    answers_path: Path = typer.Option(
        ..., "--answers", exists=True, dir_okay=False, help="Label Studio JSON or Prodigy JSONL"
    ),
    answers_format: str = typer.Option(..., "--format", help=" or ".join(FORMATS)),
    cheap_path: Path = typer.Option(
        ..., "--cheap", exists=True, dir_okay=False, help="Cheap DocBin to mix the experts into"
    ),
    dev_path: Path = typer.Option(..., "--dev", exists=True, dir_okay=False, help="Gold dev"),
    annotator: str | None = typer.Option(
        None, help="Annotator name for every Doc (default: the tool's user id)"
    ),
    labels: Path | None = LabelsOption,
    config_path: Path = ConfigOption,
    progress: bool = ProgressOption,
) -> None:
    """Import the experts' answers, fine-tune the current model, score it on dev, save it."""
    overrides = fail_on_errors(config_overrides)(ctx)
    manifest = fail_on_errors(update_from_config)(
        state_dir,
        answers_path,
        answers_format,
        cheap_path,
        dev_path,
        config_path,
        overrides,
        annotator=annotator,
        labels=labels,
        progress=progress,
    )
    for item in manifest["skipped"]:
        msg.warn(f"skipped task {item['task']} (sent_id {item['sent_id']}): {item['reason']}")
    msg.good(
        f"Iteration {manifest['iteration']}: {len(manifest['added_ids'])} expert sentences "
        f"added ({manifest['n_added']} in all), saved {manifest['checkpoint']}"
    )
    msg.text(f"dev F1 {manifest['dev']['f1']:.4f} (gain {manifest['gain']:+.4f})")


if __name__ == "__main__":
    run_app(app)
