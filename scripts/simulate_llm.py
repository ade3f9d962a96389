"""Simulate an LLM's labels by corrupting gold labels at stated, seeded rates
(``nerloop.corpus.simulate``): for corpora without recorded LLM answers, e.g. BC5CDR.

    python -m scripts.simulate_llm corpus/bc5cdr/train.spacy corpus/bc5cdr/cheap.spacy \
        --miss-rate 0.3 --wrong-label-rate 0.1 --labels configs/labels_bc5cdr.cfg
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.corpus.simulate import corrupt_labels
from nerloop.io_utils import atomic_write_json, read_docbin, write_docbin


def main(
    gold_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold DocBin"),
    output: Path = typer.Argument(..., help="Writes the simulated cheap DocBin (+ .json report)"),
    miss_rate: float = typer.Option(0.3, help="Probability an entity is missed"),
    wrong_label_rate: float = typer.Option(0.1, help="Probability a kept entity is mislabelled"),
    seed: int = typer.Option(0, help="Seed of the draws"),
    labels: Path | None = typer.Option(None, "--labels", exists=True, help="Label scheme"),
) -> None:
    """Corrupt gold labels into a simulated LLM set (say so wherever its figures appear)."""
    docs, report = corrupt_labels(
        read_docbin(gold_path),
        miss_rate=miss_rate,
        wrong_label_rate=wrong_label_rate,
        seed=seed,
        scheme=labels,
    )
    write_docbin(output, docs)
    atomic_write_json(output.with_suffix(".json"), report)
    msg.good(
        f"{output}: {report['sentences']} sentences, {report.get('missed', 0)} of "
        f"{report.get('gold_entities', 0)} entities missed, {report.get('wrong_label', 0)} "
        "mislabelled (simulated LLM)"
    )


if __name__ == "__main__":
    run_app(main)
