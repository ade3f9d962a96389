"""Export a batch of sentences for the experts, pre-annotated by the current model.

The model runs on copies of the selected Docs that keep the original tokens, so every
pre-annotated entity falls on token boundaries and comes back aligned. Three files are written
into the output folder (each atomically):

- ``labelstudio_tasks.json``: Label Studio tasks (``data``: ``text``, ``sent_id``, ``tokens``;
  ``predictions``: the model's entities, with ``score`` the least confident token's top tag
  probability, so the Data Manager can sort the most doubtful sentences first);
- ``labelstudio_config.xml``: the labeling config those tasks are meant for;
- ``prodigy_tasks.jsonl``: the same sentences as Prodigy ``ner.manual`` tasks (``text``,
  ``tokens``, ``spans``, ``meta.sent_id``), e.g.
  ``prodigy ner.manual DATASET blank:en prodigy_tasks.jsonl --label PER,LOC,ORG,MISC``.

Experts then correct the pre-annotations instead of starting from nothing; ``scripts/al_import.py``
reads their answers back.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.formats.common import (
    SelectedBatchError,
)
from nerloop.formats.export import ExportError, export_batch


def main(
    model_path: Path = typer.Argument(..., help="Trained pipeline folder that pre-annotates"),
    selected_path: Path = typer.Argument(..., help="DocBin of the sentences chosen for experts"),
    output_dir: Path = typer.Argument(..., help="Folder for the Label Studio and Prodigy files"),
    model_version: str | None = typer.Option(
        None, help="Name given to the pre-annotations (default: the model path)"
    ),
    batch_size: int = typer.Option(64, min=1, help="Sentences per forward pass"),
) -> None:
    """Write the selected sentences with the model's entities for Label Studio and Prodigy."""
    try:
        summary = export_batch(
            model_path, selected_path, output_dir, model_version, batch_size=batch_size
        )
    except (ExportError, SelectedBatchError, FileNotFoundError) as err:
        msg.fail(str(err), exits=1)
    msg.good(
        f"Exported {summary['n_sentences']} sentences with {summary['n_entities']} "
        f"pre-annotated entities to {output_dir}"
    )
    for path in summary["paths"].values():
        msg.text(f"  {path}")


if __name__ == "__main__":
    typer.run(main)
