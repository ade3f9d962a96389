"""Build the frozen encoder's feature store for the project's corpora (``nerloop.features``).

    python -m scripts.features configs/tagger_trf_frozen.cfg corpus/train.spacy \
        corpus/dev.spacy corpus/test.spacy --store features
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.features import build_feature_store
from nerloop.io_utils import atomic_write_json


def main(
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training config"),
    docbins: list[Path] = typer.Argument(..., exists=True, help="DocBins to encode"),
    store: Path | None = typer.Option(
        None, "--store", help="The store folder (paths.features; default: the config's)"
    ),
    summary_path: Path | None = typer.Option(None, "--summary", help="Write the summary JSON"),
) -> None:
    """Compute the frozen encoder's features of every sentence the store lacks."""
    overrides = {"paths.features": str(store)} if store is not None else {}
    summary = build_feature_store(config_path, docbins, overrides=overrides)
    if not summary["stores"]:
        msg.info(f"{config_path} has no frozen encoder: no features to compute")
    for store in summary["stores"]:
        msg.good(
            f"{store['store']}: {store['sentences']} sentences "
            f"({store['bytes'] / 2**20:.0f} MiB), {store['computed']} computed in "
            f"{store['seconds']:.0f} s"
        )
    if summary_path is not None:
        atomic_write_json(summary_path, summary)


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
