"""Train the ``init`` model: the cheap set plus expert labels for a budget drawn from the pool.

The budgets are the one the k-fold experiment recommends (``recommended_budget_pct`` of its
summary) and the study's 12%. For each, expert sentences are drawn once from the full expert pool
(seeded), mixed into the cheap set, and the model is fine-tuned from the LLM-only model (or trained
from scratch), the epoch being chosen on dev only. The chosen model is then scored on dev and, once,
on test, in the format of ``scripts/evaluate.py``.

Outputs per budget ``<pct>``: ``<corpus-dir>/init_<pct>.spacy`` and ``.json`` (the mixed corpus and
its provenance, e.g. the expert sentence ids), ``<training-dir>/init_<pct>/model-best``,
``model-last`` and ``history.json``, ``<metrics-dir>/init_<pct>.json``; and
``<metrics-dir>/init_models.json``, an index naming the recommended and the study's model.
A budget whose metrics file was made with the same settings and inputs is skipped, so test is not
scored again for nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from wasabi import msg

from nerloop.budget.grid import DEFAULT_EPOCHS, STUDY_BUDGET_PCT, format_number, parse_numbers
from nerloop.budget.init_model import model_name, recommended_budget, train_init_model
from nerloop.io_utils import atomic_write_json
from nerloop.mixing import (
    CheapWeightOption,
    ExpertPoolError,
    ExpertWeightOption,
    PoolOption,
)
from nerloop.training import (
    BatchWordsOption,
    DropoutOption,
    GpuIdOption,
    LearnRateOption,
)


def main(
    cheap_path: Path = typer.Argument(..., exists=True, help="Cheap DocBin"),
    gold_path: Path = typer.Argument(..., exists=True, help="Gold train DocBin"),
    dev_path: Path = typer.Argument(..., exists=True, help="Gold dev DocBin (epoch selection)"),
    test_path: Path = typer.Argument(..., exists=True, help="Gold test DocBin (reported once)"),
    summary_path: Path | None = typer.Option(
        None,
        "--summary",
        exists=True,
        dir_okay=False,
        help="k-fold summary.json: adds its recommended budget",
    ),
    budgets: str = typer.Option(
        format_number(STUDY_BUDGET_PCT), help="More budgets in percent (the study's 12%)"
    ),
    init_model: Path | None = typer.Option(
        None, "--init-model", exists=True, file_okay=False, help="Fine-tune this pipeline"
    ),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="Train from --config"),
    config_path: Path = typer.Option(
        Path("configs/tagger_cnn.cfg"), "--config", help="Training config for --from-scratch"
    ),
    training_dir: Path = typer.Option(Path("training"), help="Writes init_<pct>/model-best"),
    corpus_dir: Path = typer.Option(Path("corpus/mixed"), help="Writes init_<pct>.spacy/.json"),
    metrics_dir: Path = typer.Option(Path("metrics"), help="Writes init_<pct>.json"),
    epochs: int = typer.Option(DEFAULT_EPOCHS, min=1, help="Epochs (best epoch on dev kept)"),
    seed: int = typer.Option(0, help="Seed of the expert draw and the training"),
    pool: PoolOption = "auto",
    cheap_weight: CheapWeightOption = 1.0,
    expert_weight: ExpertWeightOption = 1.0,
    learn_rate: LearnRateOption = None,
    dropout: DropoutOption = None,
    batch_words: BatchWordsOption = None,
    gpu_id: GpuIdOption = -1,
) -> None:
    """Train and evaluate the init model at the recommended budget and at 12% of the cheap set."""
    if from_scratch == (init_model is not None):
        msg.fail("Give --init-model PATH (fine-tune) or --from-scratch (with --config)", exits=1)
    chosen: list[float] = []
    recommended = recommended_budget(summary_path) if summary_path else None
    for pct in ([recommended] if recommended is not None else []) + parse_numbers(budgets):
        if pct not in chosen:
            chosen.append(pct)
    index: dict[str, Any] = {"models": {}}
    for pct in chosen:
        try:
            metrics = train_init_model(
                cheap_path,
                gold_path,
                dev_path,
                test_path,
                pct,
                init_model=init_model,
                config_path=config_path if from_scratch else None,
                training_dir=training_dir,
                corpus_dir=corpus_dir,
                metrics_dir=metrics_dir,
                epochs=epochs,
                seed=seed,
                pool=pool,
                cheap_weight=cheap_weight,
                expert_weight=expert_weight,
                learn_rate=learn_rate,
                dropout=dropout,
                batch_words=batch_words,
                gpu_id=gpu_id,
            )
        except ExpertPoolError as err:
            msg.fail(str(err), exits=1)
        name = model_name(pct)
        index["models"][name] = {
            "budget_pct": pct,
            "n_expert": metrics["expert_budget"]["n_expert"],
            "model": str(training_dir / name / "model-best"),
            "metrics": str(metrics_dir / f"{name}.json"),
            "dev_f1": metrics["dev"]["f1"],
            "test_f1": metrics["test"]["f1"],
        }
        msg.good(
            f"{name}: dev F1 {metrics['dev']['f1']:.4f}, test F1 {metrics['test']['f1']:.4f} "
            f"({metrics['expert_budget']['n_expert']} expert sentences)"
        )
    index["recommended"] = model_name(recommended) if recommended is not None else None
    index["study"] = model_name(STUDY_BUDGET_PCT) if STUDY_BUDGET_PCT in chosen else None
    atomic_write_json(metrics_dir / "init_models.json", index)


if __name__ == "__main__":
    typer.run(main)
