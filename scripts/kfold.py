"""Run the k-fold expert-budget grid from configs/kfold.cfg (see nerloop.budget)."""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.budget import (
    SATURATION_RULE,
    format_number,
    plan_experiment,
    read_settings,
    run_experiment,
    summary_markdown,
)
from nerloop.cli import config_overrides, run_app
from nerloop.settings import load_settings


def main(
    ctx: typer.Context,
    config_path: Path = typer.Option(Path("configs/kfold.cfg"), "--config", help="Settings file"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the planned runs, train nothing"),
) -> None:
    config = load_settings(config_path, config_overrides(ctx))
    if dry_run:
        specs, grid = plan_experiment(read_settings(config, config_path))
        sizes = ", ".join(str(size) for size in grid["fold_sizes"])
        budgets = ", ".join(f"{pct}% = {n}" for pct, n in grid["budgets"].items())
        msg.info(f"{len(specs)} runs: {grid['k']} folds of {sizes} sentences (pool {grid['pool']})")
        msg.info(f"budgets: {budgets} expert sentences; weights {grid['expert_weights']}")
        return
    summary, report = run_experiment(config, source=config_path)
    msg.info(f"{len(report.computed)} runs computed, {len(report.skipped)} finished runs reused")
    if summary is None:
        for name, error in sorted(report.failed.items()):
            msg.fail(f"{name}: {error}")
        msg.fail(f"{len(report.failed)} runs failed; rerun to retry them (finished runs are kept)")
        raise typer.Exit(1)
    print(summary_markdown(summary))
    saturation = summary["saturation"]
    advice = "no recommended budget (the rule needs at least two budgets)"
    if saturation["recommended_budget_pct"] is not None:
        reached = "reached" if saturation["reached"] else "not reached within the grid"
        advice = (
            f"recommended budget {format_number(saturation['recommended_budget_pct'])}% "
            f"({saturation['recommended_n_expert']} expert sentences, saturation {reached})"
        )
    output = config["paths"]["output"]
    msg.good(f"Wrote {output}/summary.{{json,csv,md}}, f1_curve.png, config.cfg; {advice}")


main.__doc__ = f"""Run the k-fold expert-budget grid: budgets (percent of the cheap set) x folds of
the expert pool, each run mixed and fine-tuned from --paths.init_model (or trained from
--paths.train_config) and scored on dev. Settings: --config (configs/kfold.cfg; the study's GPU
grid: configs/kfold_gpu.cfg), overridden as in spacy train: --grid.folds 2 --grid.budgets 1,2,3
--paths.cheap ... Writes runs/<run>.json (a rerun skips finished runs), summary.json/.csv/.md,
f1_curve.png and config.cfg (the resolved settings) under --paths.output.
Saturation: {SATURATION_RULE}."""


if __name__ == "__main__":
    run_app(main)
