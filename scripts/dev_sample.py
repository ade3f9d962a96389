"""Draw the experts' fixed dev sample of a corpus without gold labels, and the pool that never
holds it (see nerloop.nogold).

    python -m scripts.dev_sample corpus/ingested/train.spacy corpus/annotated/train.spacy \
        corpus/nogold --size 200 --seed 0 --labels configs/labels_x.cfg

The experts label ``OUTPUT/export/`` (Label Studio or Prodigy, pre-annotated with the LLM's
labels); ``scripts/al_import.py`` reads their answers against ``OUTPUT/dev_sample.spacy`` into
the dev DocBin. ``OUTPUT/pool.spacy`` is the cheap training set and the active learning pool.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.nogold import draw_dev_sample


def main(
    corpus_path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="The ingested corpus (every sentence)"
    ),
    annotated_path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="The LLM-labelled sentences of that corpus"
    ),
    output_dir: Path = typer.Argument(..., file_okay=False, help="Folder for the sample, pool"),
    size: int = typer.Option(..., min=1, help="Sentences in the dev sample"),
    seed: int = typer.Option(0, help="Seed of the draw"),
    labels: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Label scheme file (default: CoNLL-2003's)"
    ),
) -> None:
    """Draw a seeded random dev sample for the experts; write it, its exports and the pool."""
    summary = draw_dev_sample(
        corpus_path, annotated_path, output_dir, size, seed=seed, labels=labels
    )
    msg.good(
        f"Dev sample: {summary['size']} of {summary['n_corpus']} sentences "
        f"({summary['n_sample_tokens']} tokens) -> {summary['paths']['dev_sample']}"
    )
    msg.text(f"Pool (cheap set, never the sample): {summary['n_pool']} sentences")
    for name in ("labelstudio_tasks", "labelstudio_config", "prodigy_tasks"):
        msg.text(f"  {summary['paths'][name]}")
    msg.text(f"  {summary['prodigy_command']}")


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
