"""Read the experts' answers back from Label Studio or Prodigy into an expert DocBin.

The output holds the selected Docs (original tokens and metadata) that the experts answered, with
their entities as ``doc.ents``, ``source="expert"`` and ``annotator`` set. Before anything is
written the whole export is checked against the selected batch; every problem is collected and
reported with its task id and sentence id, and a single problem stops the import with nothing
written (:class:`ImportValidationError`):

- a task whose ``sent_id`` is missing or not in the selected batch, or whose text (or tokens)
  differ from the selected sentence;
- a selected sentence with no task, or a sentence with two or more tasks;
- a span that does not start and end on token boundaries (surrounding whitespace is trimmed
  first), overlaps another span, has a ``text`` that differs from the text at its offsets, or whose
  Prodigy token indices disagree with its character offsets;
- a label outside the known labels, or a Label Studio result with several labels or with
  ``from_name``/``to_name`` other than the labeling config's.

Which answer counts:

- Label Studio (JSON export): the latest annotation that was not cancelled (by ``updated_at``,
  then ``created_at``, then ``id``). A task whose annotations were all cancelled (skipped in the
  UI), or that has none, is left out and listed as skipped; with ``use_predictions`` a task
  without a usable annotation takes its latest prediction instead (recorded with
  ``source="cheap"`` and ``annotator="model:<model_version>"``: no expert saw it).
  Result items of other types than ``labels`` (e.g. a comment box) are ignored.
- Prodigy (``prodigy db-out`` JSONL): ``accept`` gives the spans; ``reject`` (the expert marked
  the sentence as unusable) and ``ignore`` (skipped) leave the sentence out, listed as skipped.

Label Studio's ``<Text>`` offsets count UTF-16 code units in the browser; for text with characters
outside the Basic Multilingual Plane they differ from Python's and show up as misaligned spans.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.formats.common import (
    FROM_NAME,
    TO_NAME,
)
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
) -> None:
    """Check the experts' answers against the selected batch and write them as a DocBin."""
    try:
        summary = import_annotations(
            export_path,
            selected_path,
            output_path,
            export_format,
            use_predictions=use_predictions,
            annotator=annotator,
            from_name=from_name,
            to_name=to_name,
            summary_path=summary_path,
        )
    except (ValueError, FileNotFoundError) as err:  # ImportValidationError is a ValueError
        msg.fail(str(err), exits=1)
    msg.good(
        f"Imported {summary['n_imported']} of {summary['n_selected']} sentences "
        f"({summary['n_entities']} entities) to {output_path}"
    )
    for item in summary["skipped"]:
        msg.warn(f"skipped task {item['task']} (sent_id {item['sent_id']}): {item['reason']}")


if __name__ == "__main__":
    typer.run(main)
