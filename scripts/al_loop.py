"""The active learning loop (``al`` step): pick the sentences the model is least sure about, have
experts label them (gold labels stand in for them), fine-tune, stop when the gain stalls.

See ``scripts/al/loop.py`` for the loop, ``scripts/al/strategies.py`` for the strategies.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.al.checkpoints import CheckpointStore
from nerloop.al.loop import (
    HISTORY_FILE,
    LOOP_ERRORS,
    evaluate_chosen_on_test,
    run_loop,
    settings_from_cli,
    with_input_hashes,
)
from nerloop.al.loop_cli import DEFAULTS, HUB_RECORD_FILE
from nerloop.al.strategies import STRATEGIES
from nerloop.hub import DEFAULT_TOKEN_ENV, CheckpointPusher, HubSettings, HubStoreError
from nerloop.mixing import CheapWeightOption, ExpertWeightOption, PoolOption
from nerloop.training import BatchWordsOption, DropoutOption, GpuIdOption, LearnRateOption


def main(
    cheap_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Cheap DocBin"),
    gold_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold train DocBin"),
    dev_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold dev DocBin"),
    output_dir: Path = typer.Argument(..., help="Writes checkpoints/ and history.json"),
    init_model: Path | None = typer.Option(
        None, "--init-model", exists=True, file_okay=False, help="Start from this pipeline"
    ),
    init_config: Path | None = typer.Option(
        None, "--init-config", exists=True, dir_okay=False, help="Or train one from this config"
    ),
    initial_expert_ids: Path | None = typer.Option(
        None,
        "--initial-expert-ids",
        exists=True,
        dir_okay=False,
        help="The initial expert ids (JSON list, JSON with 'expert_ids' e.g. "
        "corpus/mixed/init_12.json, or text)",
    ),
    initial_budget_pct: float | None = typer.Option(
        None, min=0.0, help="Or draw this percentage of the cheap set as initial experts (seeded)"
    ),
    initial_epochs: int | None = typer.Option(
        DEFAULTS["initial_epochs"],
        min=0,
        help="Initial training epochs (default: 5 with --init-config, 0 with --init-model)",
    ),
    finetune_epochs: int = typer.Option(
        DEFAULTS["finetune_epochs"], min=1, help="Fine-tuning epochs per iteration"
    ),
    batch_to_add: int = typer.Option(
        DEFAULTS["batch_to_add"], min=1, help="Expert sentences added per iteration"
    ),
    improvement_threshold: float = typer.Option(
        DEFAULTS["improvement_threshold"], help="Stop when the dev F1 gain is below this"
    ),
    min_iterations: int = typer.Option(
        DEFAULTS["min_iterations"], min=0, help="...but not before this many iterations"
    ),
    max_iterations: int = typer.Option(
        DEFAULTS["max_iterations"], min=0, help="Stop after this many iterations"
    ),
    strategy: str = typer.Option("entropy", help=f"One of: {', '.join(STRATEGIES)}"),
    seed: int = typer.Option(0, help="Seed (training, MC dropout, random baseline, pool sample)"),
    mc_samples: int = typer.Option(10, min=2, help="MC dropout passes (bald)"),
    mc_dropout: float = typer.Option(0.1, min=0.0, max=0.99, help="MC dropout rate (bald)"),
    max_jaccard: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Diversity: pass over candidates this similar to a pick"
    ),
    pool_sample: int = typer.Option(
        DEFAULTS["pool_sample"],
        min=0,
        help="Score a seeded random subset of this many pool sentences per iteration (0: all)",
    ),
    from_scratch: bool = typer.Option(
        False, "--from-scratch", help="Retrain from the initial model/config every iteration"
    ),
    pool: PoolOption = "auto",
    cheap_weight: CheapWeightOption = 1.0,
    expert_weight: ExpertWeightOption = 1.0,
    learn_rate: LearnRateOption = None,
    dropout: DropoutOption = None,
    batch_words: BatchWordsOption = None,
    scoring_batch_size: int = typer.Option(64, min=1, help="Sentences per scoring pass"),
    keep_checkpoints: int = typer.Option(
        0, min=0, help="Keep only the last N pipelines and the best one (0: keep all)"
    ),
    evaluate_test: Path | None = typer.Option(
        None,
        "--evaluate-test",
        exists=True,
        dir_okay=False,
        help="Score the chosen checkpoint (highest dev F1) on this test DocBin, once, at the end",
    ),
    restart: bool = typer.Option(False, "--restart", help="Delete earlier checkpoints first"),
    hub_repo: str | None = typer.Option(
        None, help="Also push every checkpoint to its own branch of this Hub repo (namespace/name)"
    ),
    hub_token_env: str = typer.Option(
        DEFAULT_TOKEN_ENV, help="Environment variable holding the Hub write token"
    ),
    hub_endpoint: str | None = typer.Option(
        None, help="Hub URL (default: $HF_ENDPOINT, else huggingface.co)"
    ),
    gpu_id: GpuIdOption = -1,
) -> None:
    """Run (or resume) the active learning loop.

    Each iteration scores the remaining expert pool with the strategy, adds the top
    --batch-to-add sentences (distinct token sequences) with their gold labels to the training
    set (cheap + initial experts + added so far), fine-tunes the previous iteration's pipeline,
    scores it on dev and saves checkpoints/active_iter_{i}_added_{n} with a manifest; it stops
    when the dev F1 gain is below --improvement-threshold after --min-iterations, or at
    --max-iterations. A killed run continues from its last finished iteration.

    Defaults: the study's loop settings (batch of 10, 2 fine-tuning epochs, threshold 0.00005
    after 10 iterations, at most 15; initial training 5 epochs with --init-config), which
    finish in about 11 minutes on 2 CPU cores from a CNN init model (16 with bald; estimated
    from timed samples). GPU var set (the study: bert-base-cased + BiLSTM, init model trained with
    configs/tagger_trf_gpu.cfg): --init-model training/init_12/model-best --initial-expert-ids
    corpus/mixed/init_12.json --strategy entropy --batch-to-add 10 --finetune-epochs 2
    --improvement-threshold 0.00005 --min-iterations 10 --max-iterations 15 --pool-sample 0
    --gpu-id 0
    """
    try:
        settings = settings_from_cli(
            cheap_path,
            gold_path,
            dev_path,
            init_model=init_model,
            init_config=init_config,
            initial_expert_ids=initial_expert_ids,
            initial_budget_pct=initial_budget_pct,
            initial_epochs=initial_epochs,
            finetune_epochs=finetune_epochs,
            batch_to_add=batch_to_add,
            improvement_threshold=improvement_threshold,
            min_iterations=min_iterations,
            max_iterations=max_iterations,
            strategy=strategy,
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
            dropout=dropout,
            batch_words=batch_words,
            scoring_batch_size=scoring_batch_size,
            keep_checkpoints=keep_checkpoints,
            gpu_id=gpu_id,
        )
    except LOOP_ERRORS as err:
        msg.fail(str(err), exits=1)
    except ValueError as err:
        msg.fail(f"Invalid settings: {err}", exits=1)
    try:
        pusher = None
        if hub_repo:
            hub = HubSettings(hub_repo, token_env=hub_token_env, endpoint=hub_endpoint)
            pusher = CheckpointPusher(hub, output_dir / HUB_RECORD_FILE)
            if not restart:
                store = CheckpointStore(output_dir)
                names = [manifest["checkpoint"] for manifest in store.manifests()]
                pusher.catch_up({name: store.pipeline_path(name) for name in names})
        history = run_loop(
            with_input_hashes(settings), output_dir, restart=restart, on_checkpoint=pusher
        )
    except (*LOOP_ERRORS, HubStoreError) as err:
        msg.fail(str(err), exits=1)
    except ValueError as err:
        msg.fail(f"Invalid Hub settings: {err}", exits=1)
    chosen = history["chosen"]
    last = history["iterations"][-1]
    msg.good(
        f"{output_dir / HISTORY_FILE}: {len(history['iterations']) - 1} iterations, stopped: "
        f"{history['stopped']}; final dev F1 {last['dev']['f1']:.4f} with {last['n_added']} "
        f"added; chosen {chosen['checkpoint']} (dev F1 {chosen['dev']['f1']:.4f})"
    )
    if evaluate_test is not None:
        result = evaluate_chosen_on_test(output_dir, evaluate_test)
        msg.good(f"{result['checkpoint']} on test: F1 {result['test']['f1']:.4f}")


if __name__ == "__main__":
    typer.run(main)
