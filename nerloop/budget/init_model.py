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

An optional ``[noisy]`` section of the settings (``nerloop.noisy``: ``method`` ``none``,
``downweight``, ``relabel`` or ``droptypes``, with ``threshold``, ``floor`` and ``aggregate``) lets
the LLM-only model that is fine-tuned (``[paths] init_model``) judge the cheap sentences of the
mix before training; the method's report lies beside the mixed corpus (``init_<pct>.noisy.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from confection import Config
from spacy.vocab import Vocab
from wasabi import msg

from nerloop.budget.experiment import read_settings, resolved_config
from nerloop.budget.plan import STUDY_BUDGET_PCT, format_number
from nerloop.corpus import meta
from nerloop.errors import SettingsError
from nerloop.eval.evaluate import evaluate_model
from nerloop.fingerprint import fingerprint
from nerloop.io_utils import atomic_write_json, input_hashes, read_docbin, write_docbin
from nerloop.mixing import (
    budget_from_percent,
    draw_expert_ids,
    expert_pool,
    mix_corpus,
    noisy_report_path,
    resolve_pool_setting,
)
from nerloop.noisy import NoisySettings, apply_noisy, read_noisy_section
from nerloop.settings import write_resolved
from nerloop.training import finetune, load_or_init_pipeline


def model_name(budget_pct: float) -> str:
    """``init_12`` for 12%: the name of the model's folders and files."""
    return f"init_{format_number(budget_pct)}"


def recommended_budget(summary_path: Path) -> float:
    """The recommended starting budget (percent) of a k-fold summary.json."""
    summary = json.loads(summary_path.read_text(encoding="utf8"))
    value = summary.get("recommended_budget_pct")
    if value is None:
        raise SettingsError(f"{summary_path} has no recommended_budget_pct: rerun scripts.kfold")
    return float(value)


def train_init_model(
    cheap_path: Path,
    gold_path: Path,
    dev_path: Path,
    test_path: Path,
    budget_pct: float,
    *,
    init_model: Path | None = None,
    config_path: Path | None = None,
    training_dir: Path = Path("training"),
    corpus_dir: Path = Path("corpus/mixed"),
    metrics_dir: Path = Path("metrics"),
    epochs: int = 3,
    seed: int = 0,
    pool: str = "auto",
    cheap_weight: float = 1.0,
    expert_weight: float = 1.0,
    learn_rate: float | None = None,
    dropout: float | None = None,
    batch_words: int | None = None,
    gpu_id: int = -1,
    training: dict[str, Any] | None = None,
    resolved: Config | None = None,
    noisy: NoisySettings | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Draw, mix, train (selecting the epoch on dev), save and evaluate one init model.

    The keyword defaults are those of ``configs/kfold.cfg``; ``training`` holds spaCy
    [training] overrides and ``resolved`` the settings written beside the model (``config.cfg``).
    An active ``noisy`` method has ``init_model`` judge the cheap sentences of the mix before
    training (it needs ``init_model``); its report is written beside the mixed corpus.

    RETURNS (dict): The metrics written to ``<metrics_dir>/init_<pct>.json`` (the format of
        ``scripts/evaluate.py`` plus ``study_name``, ``train_data``, ``expert_budget`` and
        ``fingerprint``).
    """
    name = model_name(budget_pct)
    metrics_path = metrics_dir / f"{name}.json"
    noisy = noisy or NoisySettings()
    if noisy.active and init_model is None:
        raise SettingsError(
            f"[noisy] method {noisy.method} needs the LLM-only model as its judge: set "
            "--paths.init_model PATH (not --paths.train_config), or --noisy.method none"
        )
    vocab = Vocab()
    cheap = read_docbin(cheap_path, vocab)
    gold = read_docbin(gold_path, vocab)
    cheap_ids = [meta.sent_id(doc) for doc in cheap]
    gold_ids = [meta.sent_id(doc) for doc in gold]
    setting = resolve_pool_setting(cheap_ids, gold_ids, pool)
    n_expert = budget_from_percent(budget_pct, len(cheap))
    expert_ids = draw_expert_ids(expert_pool(cheap_ids, gold_ids, setting), n_expert, seed)
    settings = {
        "budget_pct": budget_pct,
        "n_expert": n_expert,
        "pool": setting,
        "epochs": epochs,
        "seed": seed,
        "cheap_weight": cheap_weight,
        "expert_weight": expert_weight,
        "learn_rate": learn_rate,
        "dropout": dropout,
        "batch_words": batch_words,
        "mode": "finetune" if init_model else "scratch",
        "inputs": input_hashes(
            {
                "cheap": str(cheap_path),
                "gold": str(gold_path),
                "dev": str(dev_path),
                "test": str(test_path),
                "init_model": str(init_model) if init_model else None,
                "config": str(config_path) if config_path else None,
            }
        ),
    }
    if training:  # only when set, so models trained before keep their fingerprints
        settings["training"] = dict(training)
    if noisy.active:  # likewise
        settings["noisy"] = noisy.as_dict()
    expected = fingerprint({**settings, "expert_ids": expert_ids})
    if metrics_path.exists():
        previous = json.loads(metrics_path.read_text(encoding="utf8"))
        if previous.get("fingerprint") == expected:
            msg.info(f"{metrics_path} is up to date: skipped (test is scored only once)")
            return previous
    mixed = mix_corpus(
        cheap,
        gold,
        expert_ids,
        pool=setting,
        cheap_weight=cheap_weight,
        expert_weight=expert_weight,
    )
    corpus_path = corpus_dir / f"{name}.spacy"
    provenance = {
        "cheap_path": str(cheap_path),
        "gold_path": str(gold_path),
        "output_path": str(corpus_path),
        "selection": {"method": "random", "budget": n_expert, "budget_pct": budget_pct},
        "seed": seed,
        **mixed.summary,
    }
    # the LLM-only model judges the cheap labels before it is fine-tuned on them (nerloop.noisy)
    nlp = load_or_init_pipeline(
        mixed.docs, init_model=init_model, config_path=config_path, seed=seed, gpu_id=gpu_id
    )
    train_docs = mixed.docs
    noisy_summary = None
    if noisy.active:
        judged = apply_noisy(train_docs, nlp, noisy, seed=seed, progress=progress)
        train_docs = judged.docs
        report_path = noisy_report_path(corpus_path)
        noisy_summary = {
            "method": noisy.method,
            "settings": noisy.as_dict(),
            "judge_model": str(init_model),
            "n_changed": judged.report["n_changed"],
            "report": str(report_path),
        }
        provenance["noisy"] = noisy_summary
        atomic_write_json(
            report_path,
            {"judge_model": str(init_model), "corpus": str(corpus_path), **judged.report},
        )
    else:  # a report of an earlier run would describe another corpus
        noisy_report_path(corpus_path).unlink(missing_ok=True)
    write_docbin(corpus_path, train_docs)
    atomic_write_json(corpus_dir / f"{name}.json", provenance)
    dev_docs = read_docbin(dev_path)
    result = finetune(
        nlp,
        train_docs,
        dev_docs,
        epochs=epochs,
        seed=seed,
        learn_rate=learn_rate,
        dropout=dropout,
        batch_words=batch_words,
        eval_every=1,
        keep_best=True,
        progress=progress,
        description=name,
        training=dict(training or {}),
    )
    result.settings.update(
        {
            "init_model": str(init_model) if init_model else None,
            "config": str(config_path) if config_path else None,
            "expert_budget_pct": budget_pct,
            "n_expert": n_expert,
        }
    )
    if noisy_summary is not None:
        result.settings["noisy"] = noisy_summary
    output_dir = training_dir / name
    result.save(output_dir)
    if resolved is not None:
        write_resolved(resolved, output_dir)
    metrics = evaluate_model(output_dir / "model-best", name, {"dev": dev_path, "test": test_path})
    cheap_name = Path(cheap_path).stem
    metrics.update(
        {
            # the key of scripts/model_table.py's STUDY_F1, e.g. init_12_llama405b
            "study_name": f"{name}_{cheap_name}",
            "train_data": f"{cheap_name} + {n_expert} expert ({format_number(budget_pct)}%)",
            "expert_budget": {
                "budget_pct": budget_pct,
                "n_expert": n_expert,
                "pool": setting,
                "pool_size": mixed.summary["pool_size"],
                "counts": mixed.summary["counts"],
                "corpus": str(corpus_path),
                "best_epoch": result.best_epoch,
            },
            "fingerprint": expected,
        }
    )
    if noisy_summary is not None:
        metrics["expert_budget"]["noisy"] = noisy_summary
    atomic_write_json(metrics_path, metrics)
    return metrics


def train_init_models(
    config: Config, *, source: Path | str = "", progress: bool = True
) -> dict[str, Any]:
    """Train and evaluate the init model at every budget of ``[init] budgets`` and at the
    recommended budget of ``[paths] summary`` (a k-fold summary.json), and write the index
    ``<[init] metrics_dir>/init_models.json``. An optional ``[noisy]`` section (see
    ``nerloop.noisy.read_noisy_section``) treats the cheap labels before training.

    config (Config): The settings (``configs/kfold.cfg`` with overrides, see ``load_settings``).
    source (Path | str): The settings file, for the error messages.
    progress (bool): Show the training progress bars.
    RETURNS (dict): The index: ``models`` by name (budget, expert sentences, model and metrics
        paths, dev and test F1), ``recommended`` and ``study`` (model names or None).
    """
    noisy = read_noisy_section(config.get("noisy"), source)
    budget_config = config.copy()
    budget_config.pop("noisy", None)  # read here, not by the k-fold's settings
    settings = read_settings(budget_config, source)
    inputs = [settings.path(name) for name in ("cheap", "gold", "dev", "test")]
    init_model, train_config = settings.model_source()
    summary_path = settings.optional_path("summary")
    recommended = recommended_budget(summary_path) if summary_path else None
    chosen: list[float] = []
    for pct in ([recommended] if recommended is not None else []) + settings.init_budgets:
        if pct not in chosen:
            chosen.append(pct)
    resolved = resolved_config(config, settings)
    index: dict[str, Any] = {"models": {}}
    for pct in chosen:
        metrics = train_init_model(
            *inputs,
            pct,
            init_model=init_model,
            config_path=train_config,
            training_dir=settings.training_dir,
            corpus_dir=settings.corpus_dir,
            metrics_dir=settings.metrics_dir,
            epochs=settings.init_epochs,
            seed=settings.init_seed,
            pool=settings.pool,
            cheap_weight=settings.cheap_weight,
            expert_weight=settings.expert_weight,
            learn_rate=settings.learn_rate,
            dropout=settings.dropout,
            batch_words=settings.batch_words,
            gpu_id=settings.gpu_id,
            training=settings.spacy_training,
            resolved=resolved,
            noisy=noisy,
            progress=progress,
        )
        name = model_name(pct)
        index["models"][name] = {
            "budget_pct": pct,
            "n_expert": metrics["expert_budget"]["n_expert"],
            "model": str(settings.training_dir / name / "model-best"),
            "metrics": str(settings.metrics_dir / f"{name}.json"),
            "dev_f1": metrics["dev"]["f1"],
            "test_f1": metrics["test"]["f1"],
        }
    index["recommended"] = model_name(recommended) if recommended is not None else None
    index["study"] = model_name(STUDY_BUDGET_PCT) if STUDY_BUDGET_PCT in chosen else None
    atomic_write_json(settings.metrics_dir / "init_models.json", index)
    return index
