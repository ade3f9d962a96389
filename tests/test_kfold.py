"""The k-fold expert-budget experiment on tiny DocBins with configs/tagger_tiny.cfg: folds, the
saturation rule, fine-tuning determinism, resume, and the grid end to end (local and Ray)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from nerloop.budget import grid as kfold
from nerloop.io_utils import atomic_write_json, read_docbin
from nerloop.mixing import ExpertPoolError
from nerloop.training import finetune, init_pipeline
from tests.tiny_corpus import write_tiny_corpus

ROOT = Path(__file__).parent.parent
TINY_CONFIG = ROOT / "configs" / "tagger_tiny.cfg"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny corpus (10 cheap of 40 train sentences, 8 dev) and an 'LLM-only' init model."""
    base = tmp_path_factory.mktemp("kfold")
    paths = write_tiny_corpus(base / "corpus")
    nlp = init_pipeline(TINY_CONFIG, read_docbin(paths["cheap"]), seed=0)
    result = finetune(
        nlp, read_docbin(paths["cheap"]), read_docbin(paths["dev"]), epochs=3, progress=False
    )
    result.save(base / "llm_only")
    paths["init_model"] = base / "llm_only" / "model-last"
    paths["base"] = base
    for name, f1 in (("llm_pure", 0.31), ("gold", 0.88)):
        atomic_write_json(base / f"{name}.json", {"model": name, "dev": {"f1": f1}})
    return paths


def tiny_settings(tiny: dict[str, Path], **changes) -> kfold.RunSettings:
    values = {
        "cheap_path": str(tiny["cheap"]),
        "gold_path": str(tiny["gold"]),
        "dev_path": str(tiny["dev"]),
        "init_model": str(tiny["init_model"]),
        "epochs": 2,
        "threads": 1,
        "input_hashes": {"marker": "tiny"},
        **changes,
    }
    return kfold.RunSettings(**values)


def test_folds_are_disjoint_cover_the_pool_and_are_seeded() -> None:
    pool = list(range(100, 153))
    folds = kfold.split_folds(pool, 5, seed=1)
    assert sorted(len(f) for f in folds) == [10, 10, 11, 11, 11]
    flat = [i for fold in folds for i in fold]
    assert len(flat) == len(set(flat)) and set(flat) == set(pool)
    assert folds == kfold.split_folds(list(reversed(pool)), 5, seed=1)
    assert folds != kfold.split_folds(pool, 5, seed=2)
    with pytest.raises(ExpertPoolError, match="into 54 folds"):
        kfold.split_folds(pool, 54, seed=1)


def test_grid_draws_from_each_fold_nested_across_budgets() -> None:
    specs, grid = kfold.plan_grid(
        range(10), range(40), budgets=[20, 10, 50], k=3, expert_weights=[1, 2], seed=0
    )
    assert grid["pool"] == "rest" and grid["pool_size"] == 30 and grid["fold_sizes"] == [10] * 3
    assert grid["budgets"] == {"10": 1, "20": 2, "50": 5}
    assert len(specs) == 3 * 3 * 2
    assert specs[0].name == "budget_10_fold_0" and specs[1].name == "budget_10_fold_0_weight_2"
    folds = kfold.split_folds(range(10, 40), 3, seed=0)
    for fold in range(3):
        runs = {(s.budget_pct, s.expert_weight): s for s in specs if s.fold == fold}
        small, large = set(runs[10.0, 1.0].expert_ids), set(runs[50.0, 1.0].expert_ids)
        assert len(small) == 1 and len(large) == 5 and small <= large <= set(folds[fold])
        assert runs[50.0, 1.0].expert_ids == runs[50.0, 2.0].expert_ids
    with pytest.raises(ExpertPoolError, match="more than the smallest of the 3 folds"):
        kfold.plan_grid(range(10), range(40), budgets=[110], k=3)


def rows(points: list[tuple[float, int, float]]) -> list[dict]:
    return [{"budget_pct": p, "n_expert": n, "f1_mean": f1} for p, n, f1 in points]


def test_saturation_rule() -> None:
    curve = rows(
        [(1, 20, 0.40), (5, 100, 0.50), (10, 200, 0.56), (15, 300, 0.565), (20, 400, 0.57)]
    )
    result = kfold.find_saturation(curve, threshold=0.01)
    # from 10%: +0.005 and +0.01 over 100 and 200 sentences: 0.005 per 100 < 0.01
    assert result["reached"] and result["saturation_budget_pct"] == 10
    assert result["recommended_budget_pct"] == 10 and result["recommended_n_expert"] == 200
    assert [round(s["gain_per_100"], 4) for s in result["steps"]] == [0.125, 0.06, 0.005, 0.005]
    # a dip followed by a rise: 5% does not qualify because 10% is still 0.06 per 100 above it
    assert kfold.find_saturation(curve, threshold=0.05)["saturation_budget_pct"] == 10
    rising = kfold.find_saturation(rows([(1, 20, 0.4), (2, 40, 0.45)]), threshold=0.01)
    assert not rising["reached"] and rising["recommended_budget_pct"] == 2
    assert "extend the grid" in rising["note"]
    single = kfold.find_saturation(rows([(12, 244, 0.4)]))
    assert not single["reached"] and single["recommended_budget_pct"] is None


def test_finetune_is_deterministic_and_keeps_the_best_epoch(tiny: dict[str, Path]) -> None:
    from nerloop.eval.pipeline import load_pipeline

    train, dev = read_docbin(tiny["gold"])[:12], read_docbin(tiny["dev"])
    histories = []
    for _ in range(2):
        result = finetune(
            load_pipeline(tiny["init_model"]), train, dev, epochs=3, seed=5, progress=False
        )
        histories.append([(h["train_loss"], h["dev"]) for h in result.history])
    assert histories[0] == histories[1]
    assert result.best_scores["f1"] == max(h["dev"]["f1"] for h in result.history)
    assert {"f1", "accuracy", "loss"} <= set(result.last_scores)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        finetune(result.nlp, train, dev, epochs=0)


def test_resume_skips_finished_runs_and_redoes_stale_ones(tiny: dict[str, Path]) -> None:
    runs_dir = tiny["base"] / "resume" / "runs"
    specs, _ = kfold.plan_grid(range(10), range(40), budgets=[10, 20], k=2, seed=0)
    settings = tiny_settings(tiny)
    first = kfold.run_grid(specs, settings, runs_dir, processes=0, progress=False)
    names = sorted(spec.name for spec in specs)
    assert sorted(first.computed) == names and first.skipped == [] and not first.failed
    stamps = {p.name: p.stat().st_mtime_ns for p in runs_dir.glob("*.json")}
    (runs_dir / "budget_20_fold_1.json").unlink()
    second = kfold.run_grid(specs, settings, runs_dir, processes=0, progress=False)
    assert second.computed == ["budget_20_fold_1"] and len(second.skipped) == 3
    for name, stamp in stamps.items():
        if name != "budget_20_fold_1.json":
            assert (runs_dir / name).stat().st_mtime_ns == stamp  # not rewritten
    assert second.results == first.results | {
        "budget_20_fold_1": second.results["budget_20_fold_1"]
    }
    # other settings (more epochs) make every finished run stale
    third = kfold.run_grid(
        specs, tiny_settings(tiny, epochs=3), runs_dir, processes=0, progress=False
    )
    assert sorted(third.computed) == names
    assert all(len(r["history"]) == 3 for r in third.results.values())


def check_outputs(output_dir: Path, summary: dict) -> None:
    rows = summary["rows"]
    assert [(r["budget_pct"], r["n_expert"], r["n_folds"]) for r in rows] == [
        (10, 1, 2),
        (20, 2, 2),
    ]
    for row in rows:
        assert 0.0 <= row["f1_mean"] <= 1.0 and row["f1_std"] >= 0.0 and row["loss_mean"] > 0
    assert summary["references"]["llm_pure"]["f1"] == 0.31
    assert summary["references"]["gold"]["f1"] == 0.88
    assert summary["recommended_budget_pct"] in (10, 20)
    assert len(list((output_dir / "runs").glob("budget_*_fold_*.json"))) == 4
    with (output_dir / "summary.csv").open() as file:
        table = list(csv.DictReader(file))
    assert [row["n_expert"] for row in table] == ["1", "2"] and "f1_std" in table[0]
    assert (output_dir / "f1_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Saturation" in (output_dir / "summary.md").read_text()


def grid_options(tiny: dict[str, Path]) -> dict:
    return {
        "init_model": tiny["init_model"],
        "budgets": [10, 20],
        "k": 2,
        "epochs": 2,
        "threads": 1,
        "llm_pure_metrics": tiny["base"] / "llm_pure.json",
        "gold_metrics": tiny["base"] / "gold.json",
        "progress": False,
    }


@pytest.fixture(scope="module")
def local_grid(tiny: dict[str, Path]) -> kfold.GridReport:
    """The tiny grid (2 budgets x 2 folds) through the local executor: 2 spawned processes."""
    thread_env_before = {name: os.environ.get(name) for name in kfold.THREAD_ENV_VARS}
    output_dir = tiny["base"] / "local"
    summary, report = kfold.run_experiment(
        tiny["cheap"],
        tiny["gold"],
        tiny["dev"],
        output_dir,
        executor="local",
        processes=2,
        **grid_options(tiny),
    )
    assert summary is not None and len(report.computed) == 4 and not report.failed
    check_outputs(output_dir, summary)
    # the workers' thread limits do not leak into this process's environment
    assert {name: os.environ.get(name) for name in kfold.THREAD_ENV_VARS} == thread_env_before
    return report


def test_tiny_grid_end_to_end_local(local_grid: kfold.GridReport) -> None:
    assert sorted(local_grid.results) == [
        "budget_10_fold_0",
        "budget_10_fold_1",
        "budget_20_fold_0",
        "budget_20_fold_1",
    ]
    for result in local_grid.results.values():
        assert result["counts"] == {"cheap": 10, "expert": result["n_expert"]}


def test_tiny_grid_end_to_end_ray(tiny: dict[str, Path], local_grid: kfold.GridReport) -> None:
    pytest.importorskip("ray", reason="ray is not installed: pip install 'ray==2.40.0'")
    output_dir = tiny["base"] / "ray"
    summary, report = kfold.run_experiment(
        tiny["cheap"],
        tiny["gold"],
        tiny["dev"],
        output_dir,
        executor="ray",
        processes=1,
        **grid_options(tiny),
    )
    assert summary is not None and len(report.computed) == 4 and not report.failed
    check_outputs(output_dir, summary)
    # the same seeds give the same scores in spawned processes and in Ray workers
    for name, result in local_grid.results.items():
        assert report.results[name]["dev"] == result["dev"]
        assert report.results[name]["expert_ids"] == result["expert_ids"]


def test_expert_weights_table(tiny: dict[str, Path]) -> None:
    output_dir = tiny["base"] / "weights"
    summary, _ = kfold.run_experiment(
        tiny["cheap"],
        tiny["gold"],
        tiny["dev"],
        output_dir,
        init_model=tiny["init_model"],
        budgets=[20],
        k=2,
        expert_weights=[1, 2, 5],
        epochs=1,
        processes=0,
        progress=False,
    )
    assert summary is not None
    assert [(r["expert_weight"], r["n_folds"]) for r in summary["rows"]] == [(1, 2), (2, 2), (5, 2)]
    names = sorted(p.stem for p in (output_dir / "runs").glob("*.json"))
    assert names == [
        f"budget_20_fold_{k}{suffix}" for k in (0, 1) for suffix in ("", "_weight_2", "_weight_5")
    ]
    markdown = (output_dir / "summary.md").read_text()
    assert "## Expert weight" in markdown and "| 20 | 2 | 5 |" in markdown
    run = json.loads((output_dir / "runs" / "budget_20_fold_0_weight_5.json").read_text())
    assert run["expert_weight"] == 5.0 and run["counts"] == {"cheap": 10, "expert": 2}


def test_saved_best_and_last_models_score_as_recorded(tiny: dict[str, Path]) -> None:
    from nerloop.eval.pipeline import evaluate_pipeline, load_pipeline

    history = json.loads((tiny["base"] / "llm_only" / "history.json").read_text())
    assert [entry["epoch"] for entry in history["history"]] == [1, 2, 3]
    dev = read_docbin(tiny["dev"])
    for folder, epoch in (("model-best", history["best_epoch"]), ("model-last", 3)):
        nlp = load_pipeline(tiny["base"] / "llm_only" / folder)
        recorded = history["history"][epoch - 1]["dev"]
        scores = evaluate_pipeline(nlp, dev, progress=False)
        assert scores["f1"] == recorded["f1"]
        assert scores["loss"] == pytest.approx(recorded["loss"], rel=1e-5)
        assert nlp.meta["performance"]["dev_f1"] == recorded["f1"]


def test_init_model_trains_saves_and_scores_test_once(tiny: dict[str, Path]) -> None:
    from nerloop.budget.init_model import train_init_model

    base = tiny["base"] / "init"
    options = {
        "init_model": tiny["init_model"],
        "training_dir": base / "training",
        "corpus_dir": base / "corpus",
        "metrics_dir": base / "metrics",
        "epochs": 2,
        "progress": False,
    }
    paths = (tiny["cheap"], tiny["gold"], tiny["dev"], tiny["dev"])
    metrics = train_init_model(*paths, 20, **options)
    assert metrics["model"] == "init_20" and metrics["expert_budget"]["n_expert"] == 2
    assert metrics["study_name"] == "init_20_cheap"  # named after the cheap DocBin
    assert {"f1", "accuracy", "loss", "per_type"} <= set(metrics["dev"]) <= set(metrics["test"])
    assert (base / "training" / "init_20" / "model-best" / "config.cfg").exists()
    provenance = json.loads((base / "corpus" / "init_20.json").read_text())
    assert provenance["counts"] == {"cheap": 10, "expert": 2}
    assert len(read_docbin(base / "corpus" / "init_20.spacy")) == 12
    metrics_file = base / "metrics" / "init_20.json"
    stamp = metrics_file.stat().st_mtime_ns
    assert train_init_model(*paths, 20, **options) == json.loads(metrics_file.read_text())
    assert metrics_file.stat().st_mtime_ns == stamp  # same settings: not trained or scored again
