"""Export a batch of sentences for the experts, pre-annotated by the current model.

    python -m scripts.al_export training/al/model-best selected.spacy batch/

Writes ``labelstudio_tasks.json``, ``labelstudio_config.xml`` and ``prodigy_tasks.jsonl`` into
the output folder (see ``nerloop.formats.export``); ``scripts/al_import.py`` reads the
experts' answers back.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.formats.export import export_batch


def main(
    model_path: Path = typer.Argument(..., help="Trained pipeline folder that pre-annotates"),
    selected_path: Path = typer.Argument(..., help="DocBin of the sentences chosen for experts"),
    output_dir: Path = typer.Argument(..., help="Folder for the Label Studio and Prodigy files"),
    model_version: str | None = typer.Option(
        None, help="Name given to the pre-annotations (default: the model path)"
    ),
    batch_size: int = typer.Option(64, min=1, help="Sentences per forward pass"),
    labels: Path | None = typer.Option(
        None, "--labels", help="Label scheme file (default: nerloop/schemes/conll2003.cfg)"
    ),
) -> None:
    """Write the selected sentences with the model's entities for Label Studio and Prodigy."""
    summary = export_batch(
        model_path, selected_path, output_dir, model_version, labels=labels, batch_size=batch_size
    )
    msg.good(
        f"Exported {summary['n_sentences']} sentences with {summary['n_entities']} "
        f"pre-annotated entities to {output_dir}"
    )
    for path in summary["paths"].values():
        msg.text(f"  {path}")
    msg.text(f"Prodigy: {summary['prodigy_command']}")


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
