"""Read your own corpus (text, JSONL, CoNLL columns, Label Studio, DocBins) into one DocBin of
sentence Docs with sentence ids, checked against the label scheme (see nerloop.corpus.ingest).

    python -m scripts.ingest INPUT... OUTPUT.spacy --format conll --labels configs/labels_x.cfg
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.corpus.ingest import DEFAULT_SENTENCIZER, FORMATS, TAG_SCHEMES, TEXT_MODES, ingest
from nerloop.labels import load_scheme


def main(
    paths: list[Path] = typer.Argument(
        ..., metavar="PATH", help="Input files or folders, then the output .spacy (last)"
    ),
    format: str = typer.Option("auto", help=f"Input format: {', '.join(FORMATS)}"),
    labels: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Label scheme file (default: CoNLL-2003's)"
    ),
    lang: str = typer.Option("en", help="Language whose tokenizer splits text into tokens"),
    sentencizer: str = typer.Option(
        DEFAULT_SENTENCIZER, help="'sentencizer' or an installed pipeline, e.g. en_core_web_sm"
    ),
    text_mode: str = typer.Option("doc-per-file", help=f"Plain text: {', '.join(TEXT_MODES)}"),
    tag_scheme: str = typer.Option("auto", help=f"Tags: {', '.join(TAG_SCHEMES)}"),
    tag_names: str | None = typer.Option(
        None, help="Names of integer tag ids: O,B-X,I-X,... or a file with one tag a line"
    ),
    strict: bool = typer.Option(False, help="Refuse IOB2 I- tags without B- (else repaired)"),
    keep_unannotated: bool = typer.Option(
        False, help="Ingest Label Studio tasks without annotation as unlabelled sentences"
    ),
    split: str = typer.Option("train", help="The split metadata of every sentence"),
) -> None:
    """Ingest INPUT... into OUTPUT.spacy (one Doc per sentence) and print the counts."""
    if len(paths) < 2:
        msg.fail("Give at least one input and the output .spacy file", exits=1)
    *inputs, output = paths
    names: list[str] | Path | None = None
    if tag_names is not None:
        names = Path(tag_names) if Path(tag_names).is_file() else tag_names.split(",")
    summary = ingest(
        inputs,
        output,
        format=format,
        scheme=load_scheme(labels),
        lang=lang,
        sentencizer=sentencizer,
        text_mode=text_mode,
        tag_scheme=tag_scheme,
        tag_names=names,
        strict=strict,
        keep_unannotated=keep_unannotated,
        split=split,
    )
    msg.good(
        f"{summary.output}: {summary.sentences:,} sentences ({summary.labelled_sentences:,} "
        f"labelled) in {summary.documents:,} documents from {summary.files} files, "
        f"{summary.tokens:,} tokens"
    )
    rows = [(label, f"{count:,}") for label, count in sorted(summary.entities.items())]
    if rows:
        msg.table(rows, header=("label", "entities"), aligns=("l", "r"))
    for reason, count in sorted(summary.skipped.items()):
        msg.info(f"skipped: {count:,} {reason}")


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
