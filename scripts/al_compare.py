"""Compare query strategies: the same active learning loop, from the same initial model, once per
strategy (entropy, the others, and the random baseline).

Writes one PNG with dev F1 against expert sentences added for every strategy on the same axes, and
a table (Markdown and JSON) of the expert sentences each strategy needed to reach a target dev F1
(by default 95% of the gold model's, read from a metrics JSON such as ``metrics/gold.json``) and
their ratio to random. Each strategy's loop runs in its own folder and resumes like ``al_loop``.
Test is never used to compare or choose: only the chosen checkpoint (highest dev F1) of one
strategy is scored on test, and only with ``--evaluate-test``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.al.compare import (
    DEFAULT_STRATEGIES,
    comparison_markdown,
    resolve_target,
    run_comparison,
)
from nerloop.al.loop import (
    LOOP_ERRORS,
    STUDY_SETTINGS,
    settings_from_cli,
    with_input_hashes,
)
from nerloop.mixing import CheapWeightOption, ExpertWeightOption, PoolOption
from nerloop.training import GpuIdOption, LearnRateOption


def main(
    cheap_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Cheap DocBin"),
    gold_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold train DocBin"),
    dev_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold dev DocBin"),
    output_dir: Path = typer.Argument(..., help="One loop folder per strategy"),
    init_model: Path = typer.Option(
        ..., "--init-model", exists=True, file_okay=False, help="The initial model (all start here)"
    ),
    initial_expert_ids: Path | None = typer.Option(
        None,
        "--initial-expert-ids",
        exists=True,
        dir_okay=False,
        help="The init model's expert ids (e.g. corpus/mixed/init_12.json)",
    ),
    strategies: str = typer.Option(
        ",".join(DEFAULT_STRATEGIES), help="Comma-separated strategies (random is the baseline)"
    ),
    gold_metrics: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Metrics JSON of the gold model ({'dev': {'f1'}})"
    ),
    target_fraction: float = typer.Option(0.95, min=0.0, help="Target: this share of gold dev F1"),
    target_f1: float | None = typer.Option(None, help="Or an absolute target dev F1"),
    finetune_epochs: int = typer.Option(STUDY_SETTINGS["finetune_epochs"], min=1),
    batch_to_add: int = typer.Option(STUDY_SETTINGS["batch_to_add"], min=1),
    improvement_threshold: float = typer.Option(STUDY_SETTINGS["improvement_threshold"]),
    min_iterations: int = typer.Option(STUDY_SETTINGS["min_iterations"], min=0),
    max_iterations: int = typer.Option(STUDY_SETTINGS["max_iterations"], min=0),
    seed: int = typer.Option(0, help="Seed (the same for every strategy)"),
    mc_samples: int = typer.Option(10, min=2, help="MC dropout passes (bald)"),
    mc_dropout: float = typer.Option(0.1, min=0.0, max=0.99, help="MC dropout rate (bald)"),
    max_jaccard: float | None = typer.Option(None, min=0.0, max=1.0, help="Diversity rule"),
    pool_sample: int = typer.Option(0, min=0, help="Pool sentences scored per iteration (0: all)"),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="Retrain every iteration"),
    pool: PoolOption = "auto",
    cheap_weight: CheapWeightOption = 1.0,
    expert_weight: ExpertWeightOption = 1.0,
    learn_rate: LearnRateOption = None,
    keep_checkpoints: int = typer.Option(
        2, min=0, help="Pipelines kept per strategy: the last N and the best (0: all)"
    ),
    evaluate_test: Path | None = typer.Option(
        None,
        "--evaluate-test",
        exists=True,
        dir_okay=False,
        help="Score the chosen checkpoint of --chosen-strategy on this test DocBin (once)",
    ),
    chosen_strategy: str = typer.Option("entropy", help="Whose chosen checkpoint goes to test"),
    output: Path | None = typer.Option(None, help="JSON (default OUTPUT_DIR/comparison.json)"),
    table: Path | None = typer.Option(None, help="Markdown (default OUTPUT_DIR/comparison.md)"),
    plot: Path | None = typer.Option(None, help="PNG (default OUTPUT_DIR/comparison.png)"),
    processes: int = typer.Option(
        1, min=1, help="Strategies run at once, each in its own process (CPU: one per core)"
    ),
    gpu_id: GpuIdOption = -1,
) -> None:
    """Run the active learning loop from one initial model with every strategy and compare the
    dev F1 curves, the expert sentences needed to reach the target and their ratio to random."""
    try:
        settings = settings_from_cli(
            cheap_path,
            gold_path,
            dev_path,
            init_model=init_model,
            initial_expert_ids=initial_expert_ids,
            finetune_epochs=finetune_epochs,
            batch_to_add=batch_to_add,
            improvement_threshold=improvement_threshold,
            min_iterations=min_iterations,
            max_iterations=max_iterations,
            seed=seed,
            mc_samples=mc_samples,
            mc_dropout=mc_dropout,
            max_jaccard=max_jaccard,
            pool_sample=pool_sample,
            from_scratch=from_scratch,
            pool=pool,
            cheap_weight=cheap_weight,
            expert_weight=expert_weight,
            learn_rate=learn_rate,
            keep_checkpoints=keep_checkpoints,
            gpu_id=gpu_id,
        )
        result = run_comparison(
            with_input_hashes(settings),
            output_dir,
            [name.strip() for name in strategies.split(",") if name.strip()],
            target=resolve_target(gold_metrics, target_fraction, target_f1),
            evaluate_test=evaluate_test,
            chosen_strategy=chosen_strategy,
            output=output,
            table=table,
            plot=plot,
            processes=processes,
        )
    except LOOP_ERRORS as err:
        msg.fail(str(err), exits=1)
    typer.echo(comparison_markdown(result))


if __name__ == "__main__":
    typer.run(main)
