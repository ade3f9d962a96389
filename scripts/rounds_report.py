"""The dev F1 of every round of a human active learning run beside the experts' effort in
sentences and tokens (see nerloop.nogold.rounds_report).

    python -m scripts.rounds_report training/nogold/al reports/nogold_rounds.json \
        --dev corpus/nogold/dev.spacy --markdown reports/nogold_rounds.md \
        --final-model training/nogold/model-final
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.nogold import write_rounds_report


def main(
    state_dir: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="State folder of scripts/al_human.py"
    ),
    output_path: Path = typer.Argument(..., dir_okay=False, help="JSON report to write"),
    dev_path: Path | None = typer.Option(
        None, "--dev", exists=True, dir_okay=False, help="The experts' dev DocBin (its effort)"
    ),
    markdown_path: Path | None = typer.Option(
        None, "--markdown", dir_okay=False, help="Markdown table to write"
    ),
    final_model_dir: Path | None = typer.Option(
        None, "--final-model", file_okay=False, help="Copy the final model here"
    ),
    choose: str = typer.Option(
        "best", help="The final model: best (dev F1 on the experts' dev sample) or last"
    ),
) -> None:
    """Report dev F1 and expert effort per round; optionally copy the final model."""
    report = write_rounds_report(
        state_dir,
        output_path,
        dev_path=dev_path,
        markdown_path=markdown_path,
        final_model_dir=final_model_dir,
        choose=choose,
    )
    rows = [
        (
            row["round"],
            f"{row['dev_f1']:.4f}",
            row["sentences"],
            row["tokens"],
            row["expert_sentences"],
            row["expert_tokens"],
        )
        for row in report["rounds"]
    ]
    header = ("round", "dev F1", "sentences", "tokens", "expert sentences", "expert tokens")
    msg.table(rows, header=header, aligns=("r",) * len(header))
    if report["pending"] is not None:
        msg.warn(f"iteration {report['pending']} is selected and waits for the experts")
    chosen = report["chosen"]
    msg.good(
        f"Wrote {output_path}; the final model is round {chosen['round']} "
        f"(dev F1 {chosen['dev_f1']:.4f}, {chosen['rule']}): {report['final_model']}"
    )


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
