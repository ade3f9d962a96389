"""Read the experts' answers back from Label Studio or Prodigy into an expert DocBin.

    python -m scripts.al_import export.json selected.spacy expert.spacy --summary import.json

The whole export is checked against the selected batch first; any problem (with its task id
and sentence id) stops the import with nothing written. Which answer counts, and every check,
is described in ``nerloop.formats.importing``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.formats.common import FROM_NAME, TO_NAME
from nerloop.formats.importing import import_annotations


def main(
    export_path: Path = typer.Argument(
        ..., help="Label Studio JSON export or Prodigy JSONL (prodigy db-out)"
    ),
    selected_path: Path = typer.Argument(..., help="The DocBin that was exported for experts"),
    output_path: Path = typer.Argument(..., help="Expert DocBin to write"),
    export_format: str | None = typer.Option(
        None, "--format", help="labelstudio or prodigy (default: .json / .jsonl)"
    ),
    use_predictions: bool = typer.Option(
        False,
        "--use-predictions",
        help="Label Studio: an unannotated task takes its latest prediction (source=cheap)",
    ),
    annotator: str | None = typer.Option(
        None, help="Annotator name for every Doc (default: the tool's user id)"
    ),
    from_name: str = typer.Option(FROM_NAME, help="Label Studio <Labels> name"),
    to_name: str = typer.Option(TO_NAME, help="Label Studio <Text> name"),
    summary_path: Path | None = typer.Option(None, "--summary", help="Summary JSON to write"),
    labels: Path | None = typer.Option(
        None, "--labels", help="Label scheme file (default: nerloop/schemes/conll2003.cfg)"
    ),
) -> None:
    """Check the experts' answers against the selected batch and write them as a DocBin."""
    summary = import_annotations(
        export_path,
        selected_path,
        output_path,
        export_format,
        use_predictions=use_predictions,
        annotator=annotator,
        labels=labels,
        from_name=from_name,
        to_name=to_name,
        summary_path=summary_path,
    )
    msg.good(
        f"Imported {summary['n_imported']} of {summary['n_selected']} sentences "
        f"({summary['n_entities']} entities) to {output_path}"
    )
    for item in summary["skipped"]:
        msg.warn(f"skipped task {item['task']} (sent_id {item['sent_id']}): {item['reason']}")


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
