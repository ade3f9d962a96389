"""scripts/report.py: missing inputs are named with the step that writes them; --strict fails."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from nerloop.report import report
from scripts import report as report_cli


def test_missing_inputs_name_their_step_and_strict_fails(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    distributions = {
        split: {"entity": {"PER": n, "LOC": 2 * n}} for split, n in (("train", 3), ("dev", 1))
    }
    (metrics / "tag_distributions.json").write_text(json.dumps(distributions))
    (metrics / "models.md").write_text("# Models\n\n| model | F1 |\n|---|---|\n| gold | 0.9 |\n")
    output = tmp_path / "reports" / "report.md"
    args = ["--metrics-dir", str(metrics), "--plots-dir", str(metrics / "plots")]
    args += ["--training-dir", str(tmp_path / "training"), "--output", str(output)]
    args += ["--packages-dir", str(tmp_path / "packages")]
    app = typer.Typer()
    app.command()(report_cli.main)
    lenient = CliRunner().invoke(app, args)
    assert lenient.exit_code == 0, lenient.output
    text = output.read_text()
    # what exists is embedded (headings demoted under the report's own) ...
    assert "| PER | 3 | 1 |" in text and "| all | 9 | 3 |" in text
    assert "### Models" in text and "| gold | 0.9 |" in text
    # ... and what does not is named with the step that writes it
    assert "`python -m spacy project run kfold`" in text
    assert "`python -m spacy project run package`" in text
    assert "## Missing inputs" in text
    strict = CliRunner().invoke(app, args + ["--strict"])
    assert strict.exit_code == 1
    assert "inputs missing" in strict.output


def test_al_speed_text_reports_medians() -> None:
    iterations = [{"n_added": 0, "dev": {"f1": 0.3}}]
    for i, (rate, seconds) in enumerate([(800.0, 30.0), (900.0, 28.0), (1000.0, 40.0)], 1):
        iterations.append(
            {
                "n_added": 10 * i,
                "dev": {"f1": 0.3 + 0.01 * i},
                "scoring": {"sentences_per_second": rate},
                "seconds": {"iteration": seconds, "finetune": seconds / 2},
            }
        )
    history = {
        "strategy_name": "entropy",
        "stopped": "max",
        "n_initial_expert": 244,
        "iterations": iterations,
        "chosen": {"checkpoint": "active_iter_3_added_30"},
    }
    text = report.al_speed_text(history)
    assert "3 iterations" in text and "30 expert sentences added to 244" in text
    assert "scoring 900 pool sentences/s" in text and "whole iteration 30.0 s" in text
