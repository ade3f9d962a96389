"""The k-fold expert-budget experiment on tiny DocBins with configs/tagger_tiny.cfg: folds, the
saturation rule, fine-tuning determinism, resume, the grid end to end (local and Ray), and its
settings file configs/kfold.cfg (overrides, unknown keys, the resolved config.cfg)."""

from __future__ import annotations

import csv
import inspect
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from nerloop import budget as kfold
from nerloop.budget.experiment import dotted
from nerloop.errors import SettingsError
from nerloop.io_utils import atomic_write_json, read_docbin
from nerloop.mixing import ExpertPoolError
from nerloop.settings import load_settings
from nerloop.training import finetune, init_pipeline
from tests.tiny_corpus import write_tiny_corpus

ROOT = Path(__file__).parent.parent
TINY_CONFIG = ROOT / "configs" / "tagger_tiny.cfg"
KFOLD_CONFIG = ROOT / "configs" / "kfold.cfg"
KFOLD_GPU_CONFIG = ROOT / "configs" / "kfold_gpu.cfg"


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


def tiny_paths(tiny: dict[str, Path], output_dir: Path) -> dict[str, str]:
    """``[paths]`` overrides: the tiny DocBins, the tiny init model and the output folder."""
    return {
        "paths.cheap": str(tiny["cheap"]),
        "paths.gold": str(tiny["gold"]),
        "paths.dev": str(tiny["dev"]),
        "paths.init_model": str(tiny["init_model"]),
        "paths.output": str(output_dir),
    }


def grid_overrides(tiny: dict[str, Path], output_dir: Path, **changes: Any) -> dict[str, Any]:
    return {
        **tiny_paths(tiny, output_dir),
        "paths.llm_pure_metrics": str(tiny["base"] / "llm_pure.json"),
        "paths.gold_metrics": str(tiny["base"] / "gold.json"),
        "grid.budgets": "10,20",
        "grid.folds": 2,
        "training.epochs": 2,
        "executor.threads": 1,
        **changes,
    }


def run_tiny_grid(overrides: dict[str, Any]) -> tuple[dict | None, kfold.GridReport]:
    return kfold.run_experiment(load_settings(KFOLD_CONFIG, overrides), progress=False)


@pytest.fixture(scope="module")
def local_grid(tiny: dict[str, Path]) -> kfold.GridReport:
    """The tiny grid (2 budgets x 2 folds) through the local executor: 2 spawned processes."""
    thread_env_before = {name: os.environ.get(name) for name in kfold.THREAD_ENV_VARS}
    output_dir = tiny["base"] / "local"
    summary, report = run_tiny_grid(
        grid_overrides(tiny, output_dir, **{"executor.executor": "local", "executor.processes": 2})
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
    summary, report = run_tiny_grid(
        grid_overrides(tiny, output_dir, **{"executor.executor": "ray", "executor.processes": 1})
    )
    assert summary is not None and len(report.computed) == 4 and not report.failed
    check_outputs(output_dir, summary)
    # the same seeds give the same scores in spawned processes and in Ray workers
    for name, result in local_grid.results.items():
        assert report.results[name]["dev"] == result["dev"]
        assert report.results[name]["expert_ids"] == result["expert_ids"]


def test_expert_weights_table(tiny: dict[str, Path]) -> None:
    output_dir = tiny["base"] / "weights"
    overrides = {
        **tiny_paths(tiny, output_dir),
        "grid.budgets": 20,
        "grid.folds": 2,
        "grid.expert_weights": "1,2,5",
        "training.epochs": 1,
        "executor.processes": 0,
    }
    summary, _ = run_tiny_grid(overrides)
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


# ---------------------------------------------------------------------------------------------
# The settings file: configs/kfold.cfg, its overrides and the resolved config.cfg
# ---------------------------------------------------------------------------------------------

# The defaults of scripts/kfold.py's and scripts/init_model.py's typer options before the
# settings moved to configs/kfold.cfg (--config configs/tagger_cnn.cfg was used only with
# --from-scratch: now --paths.train_config).
OLD_KFOLD_DEFAULTS = {
    "budgets": [1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 12.0, 15.0, 20.0],
    "folds": 5,
    "expert_weights": [1.0],
    "cheap_weight": 1.0,
    "pool": "auto",
    "epochs": 3,
    "eval_every": None,
    "select": "last",
    "learn_rate": None,
    "dropout": None,
    "batch_words": None,
    "seed": 0,
    "executor": "local",
    "processes": 2,
    "threads": None,
    "address": None,
    "gpu_id": -1,
    "saturation_threshold": 0.01,
}
OLD_INIT_DEFAULTS = {
    "init_budgets": [12.0],
    "training_dir": Path("training"),
    "corpus_dir": Path("corpus/mixed"),
    "metrics_dir": Path("metrics"),
    "init_epochs": 3,
    "init_seed": 0,
    "pool": "auto",
    "cheap_weight": 1.0,
    "expert_weight": 1.0,
    "learn_rate": None,
    "dropout": None,
    "batch_words": None,
    "gpu_id": -1,
}
# The study's GPU grid, as scripts/kfold.py's help gave it: --epochs 5 --eval-every 1 --select
# best --learn-rate 5e-5 --processes 1 --threads 8 --gpu-id 0 (the init model reads the file too)
GPU_CHANGES = {
    "epochs": 5,
    "eval_every": 1,
    "select": "best",
    "learn_rate": 5e-5,
    "processes": 1,
    "threads": 8,
    "gpu_id": 0,
    "init_epochs": 5,
}


def test_kfold_cfg_defaults_equal_the_former_cli_defaults() -> None:
    from dataclasses import asdict

    from nerloop.budget.init_model import train_init_model

    settings = kfold.read_settings(load_settings(KFOLD_CONFIG))
    values = asdict(settings)
    assert {key: values[key] for key in OLD_KFOLD_DEFAULTS} == OLD_KFOLD_DEFAULTS
    assert {key: values[key] for key in OLD_INIT_DEFAULTS} == OLD_INIT_DEFAULTS
    assert set(settings.paths.values()) == {None} and settings.spacy_training == {}
    # the library's keyword defaults are the file's too
    run_defaults = {f.name: f.default for f in kfold.RunSettings.__dataclass_fields__.values()}
    for key in ("pool", "epochs", "eval_every", "select", "cheap_weight", "seed", "gpu_id"):
        assert run_defaults[key] == values[key], key
    init_defaults = inspect.signature(train_init_model).parameters
    for key in ("epochs", "seed", "pool", "cheap_weight", "expert_weight", "gpu_id"):
        name = f"init_{key}" if f"init_{key}" in values else key
        assert init_defaults[key].default == values[name], key
    for key in ("training_dir", "corpus_dir", "metrics_dir"):
        assert init_defaults[key].default == values[key], key


def test_kfold_gpu_cfg_is_kfold_cfg_with_the_study_gpu_settings() -> None:
    from dataclasses import asdict

    cpu = asdict(kfold.read_settings(load_settings(KFOLD_CONFIG)))
    gpu = asdict(kfold.read_settings(load_settings(KFOLD_GPU_CONFIG)))
    assert {key: gpu[key] for key in cpu if gpu[key] != cpu[key]} == GPU_CHANGES


def test_project_commands_pass_valid_settings() -> None:
    """The kfold, kfold-weights and init-model script lines give known, well-typed settings,
    and the project's vars reproduce the file's defaults."""
    import shlex

    from spacy.cli._util import parse_config_overrides
    from weasel.util import load_project_config

    project = load_project_config(ROOT)
    commands = {command["name"]: command for command in project["commands"]}
    parsed = {}
    for name in ("kfold", "kfold-weights", "init-model"):
        args = shlex.split(commands[name]["script"][0])[3:]
        assert args[:2] == ["--config", "configs/kfold.cfg"], name
        parsed[name] = kfold.read_settings(
            load_settings(ROOT / args[1], parse_config_overrides(args[2:]))
        )
    for name in ("kfold", "kfold-weights"):
        assert parsed[name].folds == OLD_KFOLD_DEFAULTS["folds"]
        assert parsed[name].epochs == OLD_KFOLD_DEFAULTS["epochs"]
        assert parsed[name].processes == OLD_KFOLD_DEFAULTS["processes"]
        assert parsed[name].paths["init_model"] == parsed["init-model"].paths["init_model"]
    assert parsed["kfold"].budgets == OLD_KFOLD_DEFAULTS["budgets"]
    assert parsed["kfold"].saturation_threshold == OLD_KFOLD_DEFAULTS["saturation_threshold"]
    assert parsed["kfold-weights"].budgets == [12.0]
    assert parsed["kfold-weights"].expert_weights == [1.0, 2.0, 5.0]
    assert parsed["kfold-weights"].paths["runs"] == parsed["kfold"].paths["output"] / "runs"
    assert parsed["init-model"].init_budgets == [12.0] and parsed["init-model"].init_epochs == 3
    assert parsed["init-model"].paths["summary"] == parsed["kfold"].paths["output"] / (
        "summary.json"
    )


def run_cli(module: Any, args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run a script's CLI in this process as ``python -m`` would: exit code and output."""
    from nerloop.cli import run_app

    monkeypatch.setattr(sys, "argv", [module.__name__, *args])
    code = 0
    try:
        run_app(module.main)
    except SystemExit as exit:
        code = exit.code
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    return code, " ".join(out.split())  # wasabi wraps long messages


def cli_args(overrides: dict[str, Any]) -> list[str]:
    return ["--config", str(KFOLD_CONFIG)] + [
        part for key, value in overrides.items() for part in (f"--{key}", str(value))
    ]


def test_cli_override_changes_the_plan(tiny: dict[str, Path], monkeypatch, capsys) -> None:
    import scripts.kfold

    args = [*cli_args(tiny_paths(tiny, tiny["base"] / "plan")), "--dry-run"]
    code, out = run_cli(scripts.kfold, [*args, "--grid.budgets", "10,20"], monkeypatch, capsys)
    assert code == 0 and "10 runs: 5 folds of 6, 6, 6, 6, 6 sentences (pool rest)" in out
    args += ["--grid.budgets", "10,20", "--grid.folds", "2"]
    code, out = run_cli(scripts.kfold, args, monkeypatch, capsys)
    assert code == 0 and "4 runs: 2 folds of 15, 15 sentences (pool rest)" in out
    assert "budgets: 10% = 1, 20% = 2 expert sentences; weights [1.0]" in out
    assert not (tiny["base"] / "plan").exists()  # a dry run trains and writes nothing


def test_unknown_setting_fails_naming_it(tiny: dict[str, Path], monkeypatch, capsys) -> None:
    import scripts.kfold

    args = [*cli_args(tiny_paths(tiny, tiny["base"] / "typo")), "--grid.foldz", "2"]
    code, out = run_cli(scripts.kfold, args, monkeypatch, capsys)
    assert code == 1
    assert (
        f"{KFOLD_CONFIG}: [grid] has unknown settings foldz; known: budgets, eval_every, "
        "expert_weights, folds, saturation_threshold, seed, select"
    ) in out
    with pytest.raises(SettingsError, match=r"\[executor\] has unknown settings adress"):
        kfold.read_settings(load_settings(KFOLD_CONFIG, {"executor.adress": "x"}))
    with pytest.raises(SettingsError, match=r"\[grid\] folds must be int, not '2'"):
        kfold.read_settings(load_settings(KFOLD_CONFIG, {"grid.folds": "2"}))
    with pytest.raises(SettingsError, match=r"\[grid\] budgets: expected comma-separated"):
        kfold.read_settings(load_settings(KFOLD_CONFIG, {"grid.budgets": "1,two"}))
    with pytest.raises(SettingsError, match=r"set exactly one of --paths.init_model"):
        run_tiny_grid({**tiny_paths(tiny, tiny["base"] / "typo"), "paths.init_model": None})
    with pytest.raises(SettingsError, match=r"\[paths\] cheap is not set: give --paths.cheap"):
        run_tiny_grid({})
    assert not (tiny["base"] / "typo").exists()


def test_resolved_config_beside_the_summary_reproduces_the_runs(
    tiny: dict[str, Path], local_grid: kfold.GridReport
) -> None:
    output_dir = tiny["base"] / "local"
    resolved_path = output_dir / "config.cfg"
    assert (output_dir / "summary.json").exists() and resolved_path.exists()
    resolved = load_settings(resolved_path)
    assert resolved["grid"]["budgets"] == [10.0, 20.0] and resolved["grid"]["folds"] == 2
    assert resolved["paths"]["output"] == str(output_dir)
    assert resolved["training"]["epochs"] == 2 and resolved["executor"]["processes"] == 2
    text = resolved_path.read_text()
    summary, again = kfold.run_experiment(resolved, source=resolved_path, progress=False)
    assert summary is not None and again.computed == [] and not again.failed
    assert sorted(again.skipped) == sorted(local_grid.results)
    fingerprints = {name: result["fingerprint"] for name, result in local_grid.results.items()}
    assert {name: r["fingerprint"] for name, r in again.results.items()} == fingerprints
    assert resolved_path.read_text() == text


def test_spacy_training_overrides_are_part_of_the_fingerprint(tiny: dict[str, Path]) -> None:
    specs, _ = kfold.plan_grid(range(10), range(40), budgets=[10], k=2, seed=0)
    plain = tiny_settings(tiny)
    accumulated = tiny_settings(tiny, training={"accumulate_gradient": 2})
    assert "training" not in plain.fingerprint_data()  # older runs keep their fingerprints
    assert kfold.run_fingerprint(specs[0], plain) != kfold.run_fingerprint(specs[0], accumulated)
    settings = kfold.read_settings(
        load_settings(KFOLD_CONFIG, {"training.overrides.accumulate_gradient": 2})
    )
    assert settings.spacy_training == {"accumulate_gradient": 2}
    # [training.overrides.optimizer] in a settings file: dotted keys, as finetune takes them
    assert dotted({"optimizer": {"L2": 0.01}, "patience": 3}) == {
        "optimizer.L2": 0.01,
        "patience": 3,
    }


def test_init_model_cli_reads_the_kfold_settings(
    tiny: dict[str, Path], local_grid: kfold.GridReport, monkeypatch, capsys
) -> None:
    import scripts.init_model

    base = tiny["base"] / "init_cli"
    overrides = {
        **tiny_paths(tiny, base),
        "paths.test": str(tiny["dev"]),
        "paths.summary": str(tiny["base"] / "local" / "summary.json"),
        "init.budgets": 20,
        "init.training_dir": str(base / "training"),
        "init.corpus_dir": str(base / "corpus"),
        "init.metrics_dir": str(base / "metrics"),
        "training.epochs": 1,
    }
    code, out = run_cli(scripts.init_model, cli_args(overrides), monkeypatch, capsys)
    assert code == 0, out
    summary = json.loads((tiny["base"] / "local" / "summary.json").read_text())
    recommended = f"init_{kfold.format_number(summary['recommended_budget_pct'])}"
    index = json.loads((base / "metrics" / "init_models.json").read_text())
    assert index["recommended"] == recommended and index["study"] is None
    assert sorted(index["models"]) == sorted({recommended, "init_20"})
    assert index["models"]["init_20"]["n_expert"] == 2 and "init_20: dev F1" in out
    # [init] epochs follows [training] epochs; the resolved settings lie beside the model
    history = json.loads((base / "training" / "init_20" / "history.json").read_text())
    assert [entry["epoch"] for entry in history["history"]] == [1]
    resolved = load_settings(base / "training" / "init_20" / "config.cfg")
    assert resolved["init"]["epochs"] == 1 and resolved["init"]["budgets"] == [20.0]
