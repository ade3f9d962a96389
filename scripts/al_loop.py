"""The active learning loop (``al`` step): pick the sentences the model is least sure about, have
experts label them (gold labels stand in for them), fine-tune, stop when the gain stalls.

Every setting is in ``configs/al.cfg`` (the study's defaults) or an override of it; see
``nerloop/al/loop.py`` for the loop, ``nerloop/al/strategies.py`` for the strategies.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.al.checkpoints import HUB_RECORD_FILE
from nerloop.al.loop import HISTORY_FILE, evaluate_chosen_on_test, run_from_config
from nerloop.al.settings import DEFAULT_CONFIG
from nerloop.cli import OVERRIDES_CONTEXT, config_overrides, fail_on_errors, run_app
from scripts.options import AlConfigOption, EvaluateTestOption

__all__ = ["HUB_RECORD_FILE", "app", "main"]


def main(
    ctx: typer.Context,
    output_dir: Path = typer.Argument(..., help="Writes checkpoints/, history.json, config.cfg"),
    config_path: AlConfigOption = DEFAULT_CONFIG,
    evaluate_test: EvaluateTestOption = None,
    restart: bool = typer.Option(False, "--restart", help="Delete earlier checkpoints first"),
) -> None:
    """Run (or resume) the active learning loop with the settings of --config, overridden the
    spaCy way: --paths.cheap CHEAP.spacy --paths.gold TRAIN.spacy --paths.dev DEV.spacy
    --paths.init_model MODEL --loop.batch_to_add 5 ...

    Each iteration scores the remaining expert pool with loop.strategy, adds the top
    loop.batch_to_add sentences with their gold labels to the training set, fine-tunes the
    previous iteration's pipeline, scores it on dev and saves
    checkpoints/active_iter_{i}_added_{n} with a manifest, until the dev F1 gain is below
    loop.improvement_threshold after loop.min_iterations, or at loop.max_iterations. A killed
    run continues from its last finished iteration. With hub.repo every checkpoint is also
    pushed to its own branch of that repo (the token from the variable hub.token_env names).
    """
    overrides = fail_on_errors(config_overrides)(ctx)
    history = fail_on_errors(run_from_config)(config_path, output_dir, overrides, restart=restart)
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


app = typer.Typer(add_completion=False)
app.command(context_settings=OVERRIDES_CONTEXT)(main)

if __name__ == "__main__":
    run_app(app)
