"""Screenshot Label Studio's labeling view with a model's pre-annotations (for the docs).

    python -m scripts.ls_screenshot docs/labelstudio_preannotations.png
        --browser-python /tmp/shotvenv/bin/python --chromium /usr/bin/chromium

Needs Label Studio's venv (.ci/labelstudio.sh), a venv with playwright (python -m venv
/tmp/shotvenv && /tmp/shotvenv/bin/pip install playwright) and a Chromium (apt-get install -y
chromium, or without --chromium: /tmp/shotvenv/bin/playwright install chromium). See
``nerloop.labelstudio.screenshot``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.labelstudio.screenshot import take_screenshot


def main(
    output: Path = typer.Argument(..., dir_okay=False, help="PNG to write"),
    dev: Path = typer.Option(
        Path("corpus/dev.spacy"), exists=True, dir_okay=False, help="Gold DocBin of the examples"
    ),
    model: Path = typer.Option(
        Path("training/llama405b/init_12/model-best"),
        exists=True,
        file_okay=False,
        help="Pipeline whose predictions are the pre-annotations",
    ),
    browser_python: Path = typer.Option(
        Path("/tmp/shotvenv/bin/python"), help="Python of the venv with playwright"
    ),
    chromium: Path | None = typer.Option(
        None, help="Chromium binary (default: playwright's own download)"
    ),
    labels: Path | None = typer.Option(None, exists=True, dir_okay=False, help="Label scheme"),
    venv: Path | None = typer.Option(None, help="Label Studio's venv (.ci/labelstudio.sh)"),
    n_tasks: int = typer.Option(3, help="Tasks to import"),
    width: int = typer.Option(1280, help="Viewport width"),
    height: int = typer.Option(800, help="Viewport height"),
) -> None:
    """Start Label Studio on loopback, import pre-annotated tasks, screenshot the first one."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    shot = take_screenshot(
        output,
        dev,
        model,
        browser_python,
        chromium=chromium,
        labels=labels,
        venv=venv,
        n_tasks=n_tasks,
        width=width,
        height=height,
    )
    msg.good(
        f"Label Studio {shot['release']}: task {shot['task_ids'][0]} of project "
        f"{shot['project']} with {len(shot['predicted'])} pre-annotated regions -> {output}"
    )
    msg.text(f"predicted: {shot['predicted']}; drawn: {shot['drawn']}")


if __name__ == "__main__":
    run_app(main)
