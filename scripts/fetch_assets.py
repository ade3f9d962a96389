"""Fetch the project's input files (CoNLL-2003, recorded LLM annotations) into ``assets/``.

Each asset in ``project.yml`` has a ``dest`` under ``assets/``, the public ``url`` it comes from
(absent for local-only files), its ``checksum`` (md5, what ``spacy project assets`` checks) and its
``sha256``. When the environment variable ``NERLOOP_DATA_DIR`` names a folder, files are copied
from there (same sub-layout as ``assets/``); otherwise they are downloaded. Both checksums are
verified either way, and a file is only moved into place once verified.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.corpus.assets import DATA_DIR_ENV, fetch_assets


def main(
    project_dir: Path = typer.Option(Path("."), help="Project root holding project.yml"),
    timeout: float = typer.Option(60.0, help="Download timeout per request, in seconds"),
) -> None:
    """Copy (from $NERLOOP_DATA_DIR) or download every asset, verifying its checksums."""
    data_dir_value = os.environ.get(DATA_DIR_ENV)
    data_dir = Path(data_dir_value).resolve() if data_dir_value else None
    if data_dir is not None:
        if not data_dir.is_dir():
            msg.fail(f"{DATA_DIR_ENV}={data_dir_value} is not a folder", exits=1)
        msg.info(f"Copying assets from {DATA_DIR_ENV}={data_dir}")
    else:
        msg.info(f"{DATA_DIR_ENV} is not set: downloading assets from their public origin")
    fetch_assets(project_dir, data_dir, timeout)


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
