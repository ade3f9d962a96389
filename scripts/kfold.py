"""The k-fold expert-budget experiment: how many expert sentences until the gain saturates?

For each budget (a percentage of the cheap set size) and each of k folds of the expert pool, that
many expert sentences are taken from the fold, mixed into the cheap corpus (``scripts/mix.py``),
and a model is fine-tuned from the LLM-only model (or trained from scratch) and scored on dev:
entity F1, seqeval accuracy and validation loss. Budgets get the mean and standard deviation over
the folds; the saturation point and the recommended starting budget follow from a stated rule.

Each run is independent and its result is one JSON file (``runs/<name>.json``) written atomically
as soon as it finishes, with a fingerprint of everything that determines it, so a rerun skips the
finished runs (and recomputes a run whose settings or inputs changed). Runs go to a local process
pool (spawned processes) or to Ray tasks.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.budget.grid import (
    DEFAULT_BUDGETS,
    DEFAULT_EPOCHS,
    DEFAULT_FOLDS,
    DEFAULT_SATURATION_THRESHOLD,
    SATURATION_RULE,
    format_number,
    parse_numbers,
    run_experiment,
    summary_markdown,
)
from nerloop.mixing import (
    CheapWeightOption,
    ExpertPoolError,
    PoolOption,
)
from nerloop.training import (
    BatchWordsOption,
    DropoutOption,
    GpuIdOption,
    LearnRateOption,
)


def main(
    cheap_path: Path = typer.Argument(..., exists=True, help="Cheap DocBin (corpus/cheap/*.spacy)"),
    gold_path: Path = typer.Argument(..., exists=True, help="Gold train DocBin"),
    dev_path: Path = typer.Argument(..., exists=True, help="Gold dev DocBin"),
    output_dir: Path = typer.Argument(
        ..., help="Writes runs/, summary.{json,csv,md} and f1_curve.png"
    ),
    init_model: Path | None = typer.Option(
        None, "--init-model", exists=True, file_okay=False, help="Fine-tune this pipeline"
    ),
    from_scratch: bool = typer.Option(
        False, "--from-scratch", help="Train a fresh pipeline from --config in every run"
    ),
    config_path: Path = typer.Option(
        Path("configs/tagger_cnn.cfg"), "--config", help="Training config for --from-scratch"
    ),
    budgets: str = typer.Option(
        ",".join(format_number(b) for b in DEFAULT_BUDGETS),
        help="Budgets in percent of the cheap set size, comma-separated",
    ),
    folds: int = typer.Option(DEFAULT_FOLDS, min=1, help="Folds of the expert pool"),
    expert_weights: str = typer.Option("1", help="Expert loss weights, comma-separated"),
    cheap_weight: CheapWeightOption = 1.0,
    pool: PoolOption = "auto",
    epochs: int = typer.Option(DEFAULT_EPOCHS, min=1, help="Epochs per run"),
    eval_every: int | None = typer.Option(
        None, min=1, help="Score dev every N epochs (default: 1 with --select best, else last only)"
    ),
    select: str = typer.Option("last", help="Report the 'last' epoch or the 'best' on dev"),
    learn_rate: LearnRateOption = None,
    dropout: DropoutOption = None,
    batch_words: BatchWordsOption = None,
    seed: int = typer.Option(0, help="Seed of the folds, the draws and the training"),
    executor: str = typer.Option("local", help="local (process pool) or ray"),
    processes: int = typer.Option(
        2, min=0, help="Runs at the same time (local: 0 runs in this process)"
    ),
    threads: int | None = typer.Option(
        None, min=1, help="CPU threads per run (default: cores // processes)"
    ),
    ray_address: str | None = typer.Option(
        None, help="Ray cluster address (default: start Ray locally)"
    ),
    gpu_id: GpuIdOption = -1,
    llm_pure_metrics: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Metrics JSON of the LLM-only model (dev F1 line)"
    ),
    gold_metrics: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Metrics JSON of the gold model (dev F1 line)"
    ),
    saturation_threshold: float = typer.Option(
        DEFAULT_SATURATION_THRESHOLD, help="Dev F1 per 100 expert sentences that still pays"
    ),
    runs_dir: Path | None = typer.Option(
        None, help="Run results folder (default: OUTPUT_DIR/runs); grids sharing it reuse runs"
    ),
) -> None:
    if from_scratch == (init_model is not None):
        msg.fail("Give --init-model PATH (fine-tune) or --from-scratch (with --config)", exits=1)
    if from_scratch and not config_path.exists():
        msg.fail(f"--config {config_path} does not exist", exits=1)
    if select not in ("last", "best"):
        msg.fail(f"--select must be 'last' or 'best', not {select!r}", exits=1)
    try:
        summary, report = run_experiment(
            cheap_path,
            gold_path,
            dev_path,
            output_dir,
            init_model=init_model,
            config_path=config_path if from_scratch else None,
            budgets=parse_numbers(budgets),
            k=folds,
            expert_weights=parse_numbers(expert_weights),
            cheap_weight=cheap_weight,
            pool=pool,
            epochs=epochs,
            eval_every=eval_every,
            select=select,
            learn_rate=learn_rate,
            dropout=dropout,
            batch_words=batch_words,
            seed=seed,
            executor=executor,
            processes=processes,
            threads=threads,
            ray_address=ray_address,
            gpu_id=gpu_id,
            llm_pure_metrics=llm_pure_metrics,
            gold_metrics=gold_metrics,
            saturation_threshold=saturation_threshold,
            runs_dir=runs_dir,
        )
    except ExpertPoolError as err:
        msg.fail(str(err), exits=1)
    msg.info(f"{len(report.computed)} runs computed, {len(report.skipped)} finished runs reused")
    if summary is None:
        for name, error in sorted(report.failed.items()):
            msg.fail(f"{name}: {error}")
        msg.fail(f"{len(report.failed)} runs failed; rerun to retry them (finished runs are kept)")
        raise typer.Exit(1)
    print(summary_markdown(summary))
    saturation = summary["saturation"]
    if saturation["recommended_budget_pct"] is None:
        advice = "no recommended budget (the rule needs at least two budgets)"
    else:
        advice = (
            f"recommended budget {format_number(saturation['recommended_budget_pct'])}% "
            f"({saturation['recommended_n_expert']} expert sentences, saturation "
            f"{'reached' if saturation['reached'] else 'not reached within the grid'})"
        )
    msg.good(f"Wrote {output_dir}/summary.json, summary.csv, summary.md, f1_curve.png; {advice}")


if __name__ == "__main__":
    typer.run(main)


HELP = f"""Run the k-fold expert-budget grid and write the budget curve and its saturation point.

For each budget (percent of the cheap set size) and each of --folds folds of the expert pool, that
many expert sentences are drawn from the fold (seeded, nested across budgets), mixed into the cheap
set, and a model is fine-tuned from --init-model (the LLM-only model) or trained from scratch
(--from-scratch --config) for --epochs epochs and scored on dev. Outputs under OUTPUT_DIR:
runs/budget_<pct>_fold_<k>[_weight_<w>].json (one per run; a rerun skips finished runs),
summary.json, summary.csv, summary.md and f1_curve.png.

Default grid (fits in 45 minutes on 2 CPU cores): the CNN tagger fine-tuned from a CNN LLM-only
model (train it with `python -m scripts.finetune <cheap> <dev> <dir> --config
configs/tagger_cnn.cfg --epochs 10`), {DEFAULT_EPOCHS} epochs at the config's learning rate, dev
scored after the last epoch (--select last), 5 folds x 9 budgets (1-20%) = 45 runs, 2 processes
of 1 thread. One run on the Llama set (2,037 cheap + 20-407 expert sentences) took 21-27 s
measured alone with nice on the shared 2-core machine at load 2.5-3 (34-52 s at load 6-8), so
the grid takes about 16-20 min with one process and 8-31 min with two, depending on the load.
Fine-tuning a transformer LLM-only model instead is much slower per run on CPU (not measured
here): use a GPU for it.

The study's grid (GPU): --init-model <transformer LLM-only model> --epochs 5 --eval-every 1
--select best --learn-rate 5e-5 --processes 1 --threads 8 --gpu-id 0, same budgets and folds.

Saturation: {SATURATION_RULE}. --expert-weights 1,2,5 at one budget (--budgets 12) compares loss
weights of the expert sentences (a Markdown table in summary.md); give it the budget curve's
--runs-dir to reuse the weight-1 runs.
"""


main.__doc__ = HELP
