"""Write ``reports/report.md``: every table and plot of the study in one Markdown file.

It gathers what the workflow's steps wrote under ``metrics/`` (tag distributions, LLM label
quality and cost, the model table and comparison, the expert-budget curve and weights, the init
models, the active learning curves and speed) and names the packaged model. Plots are copied next
to the report (``reports/plots/``) so the folder can be shared as it is. A missing input is not
an error: its section says which ``spacy project run`` step writes it.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.labels import load_scheme
from nerloop.report.report import ReportInputs, build_report


def main(
    metrics_dir: Path = typer.Option(Path("metrics"), help="The metrics folder"),
    plots_dir: Path = typer.Option(Path("metrics/plots"), help="The plots folder"),
    training_dir: Path = typer.Option(Path("training"), help="The training folder"),
    packages_dir: Path = typer.Option(Path("packages"), help="Where spacy package wrote"),
    cheap_set: str = typer.Option("llama405b", help="The cheap set of the experiments"),
    al_strategy: str = typer.Option("entropy", help="The strategy of the al step"),
    package_name: str = typer.Option("nerloop_conll", help="spacy package --name"),
    package_version: str = typer.Option("0.1.0", help="spacy package --version"),
    output: Path = typer.Option(Path("reports/report.md"), help="The report"),
    strict: bool = typer.Option(False, "--strict", help="Fail when an input is missing"),
    labels: Path | None = typer.Option(
        None, "--labels", help="Label scheme file (default: nerloop/schemes/conll2003.cfg)"
    ),
) -> None:
    """Write the study report (Markdown with its plots beside it)."""
    inputs = ReportInputs(
        metrics_dir, plots_dir, training_dir, packages_dir, cheap_set, al_strategy,
        package_name, package_version, load_scheme(labels),
    )  # fmt: skip
    report = build_report(inputs, output)
    report.write()
    if report.missing:
        message = f"{output}: {len(report.missing)} inputs missing: " + ", ".join(report.missing)
        if strict:
            msg.fail(message, exits=1)
        msg.warn(message)
    msg.good(f"Wrote {output} ({len(report.plots)} plots)")


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
