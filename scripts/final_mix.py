"""Write the final mix of an active learning run (``nerloop.al.final``): the cheap set with gold
labels for every expert sentence of the run's chosen checkpoint, with the run's pool and weights.

    python -m scripts.final_mix training/llama405b/al/entropy corpus/cheap/llama405b.spacy \
        corpus/train.spacy corpus/mixed/llama405b/final.spacy \
        --summary corpus/mixed/llama405b/final.json
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.al.final import copy_chosen, write_final_mix
from nerloop.cli import fail_on_errors, run_app


def main(
    run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="An al output folder"),
    cheap_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Cheap DocBin"),
    gold_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold train DocBin"),
    output_path: Path = typer.Argument(..., dir_okay=False, help="Mixed DocBin to write"),
    summary_path: Path = typer.Option(..., "--summary", dir_okay=False, help="Provenance JSON"),
    chosen_copy: Path | None = typer.Option(
        None, file_okay=False, help="Also copy the chosen checkpoint's pipeline here (to package)"
    ),
) -> None:
    """Mix the cheap set with the experts of the run's chosen checkpoint."""
    summary = fail_on_errors(write_final_mix)(
        run_dir, cheap_path, gold_path, output_path, summary_path
    )
    run = summary["from_run"]
    msg.good(
        f"Wrote {output_path}: {summary['n_docs']} sentences, {summary['counts']['expert']} expert "
        f"({run['n_initial_expert']} initial + {run['n_added']} added by {run['checkpoint']}), "
        f"cheap weight {run['cheap_weight']}"
    )
    if chosen_copy is not None:
        copied = fail_on_errors(copy_chosen)(run_dir, chosen_copy)
        msg.good(f"Copied {run['checkpoint']} to {copied}")


if __name__ == "__main__":
    run_app(main)
