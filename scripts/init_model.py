"""Train the init model at the k-fold's recommended budget and the study's 12% (configs/kfold.cfg,
see nerloop.budget.init_model)."""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.budget.init_model import train_init_models
from nerloop.cli import config_overrides, run_app
from nerloop.settings import load_settings


def main(
    ctx: typer.Context,
    config_path: Path = typer.Option(Path("configs/kfold.cfg"), "--config", help="Settings file"),
) -> None:
    """Train and evaluate the init model (cheap + expert labels) at the recommended budget of
    --paths.summary (a k-fold summary.json) and at every budget of [init] budgets (the study's
    12%): the epoch is chosen on dev, test is scored once. Settings: --config (configs/kfold.cfg,
    the k-fold's own file), overridden as in spacy train: --init.budgets 12 --paths.cheap ...
    Writes <[init] corpus_dir>/init_<pct>.spacy/.json, <[init] training_dir>/init_<pct>/
    (model-best, model-last, history.json, config.cfg), <[init] metrics_dir>/init_<pct>.json and
    init_models.json. A [noisy] section in the settings (method downweight, relabel or droptypes,
    threshold, floor, aggregate; see nerloop.noisy) has --paths.init_model judge the cheap labels
    before training and writes <[init] corpus_dir>/init_<pct>.noisy.json."""
    index = train_init_models(load_settings(config_path, config_overrides(ctx)), source=config_path)
    for name, model in index["models"].items():
        msg.good(
            f"{name}: dev F1 {model['dev_f1']:.4f}, test F1 {model['test_f1']:.4f} "
            f"({model['n_expert']} expert sentences)"
        )


if __name__ == "__main__":
    run_app(main)
