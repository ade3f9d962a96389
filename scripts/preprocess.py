"""Convert CoNLL-2003 and the recorded LLM sets to DocBins in ``corpus/``.

Everything is read, converted and checked in memory first; files are written only when every
input converted cleanly, each one atomically, so a bad input leaves nothing new in ``corpus/``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.corpus.preprocess import preprocess
from nerloop.corpus.recorded_sets import RECORDED_SETS


def main(
    assets_dir: Path = typer.Argument(..., help="Folder with conll2003/ and llm_annotations/"),
    output_dir: Path = typer.Argument(..., help="Output folder for the .spacy files"),
    recorded: str = typer.Option(
        ",".join(RECORDED_SETS), help="Comma-separated recorded LLM sets to convert"
    ),
    labels: Path | None = typer.Option(
        None, "--labels", help="Label scheme file (default: nerloop/schemes/conll2003.cfg)"
    ),
) -> None:
    """Convert CoNLL-2003 to corpus/{train,dev,test}.spacy and each recorded LLM set to
    corpus/cheap/<name>.spacy, with a report of counts and repairs."""
    names = [name.strip() for name in recorded.split(",") if name.strip()]
    report = preprocess(assets_dir, output_dir, names, labels=labels)
    for split, stats in report["splits"].items():
        msg.good(f"{split}: {stats['sentences']:,} sentences, {stats['entities']:,} entities")
    for name, stats in report["cheap"].items():
        msg.good(
            f"cheap/{name}: {stats['sentences']:,} sentences, {stats['entities']:,} entities, "
            f"{stats['repaired_invalid_continuations']} I- repaired, "
            f"{stats['dropped_garbage_tags']} garbage tags dropped"
        )


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
