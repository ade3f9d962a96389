"""The whole ``all`` workflow end to end, through the real runner (``spacy project run all``), on
the tiny fixture assets with the tiny tagger: every step runs as the project runs it, with vars
that make each one take seconds (the run is dominated by the ~30 Python start-ups)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import srsly

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_ASSETS = ROOT / "tests" / "fixtures" / "assets"
# What the steps read; never corpus/, training/, metrics/, assets/, packages/ or reports/, which
# may hold large local outputs.
PROJECT_PARTS = ("project.yml", "configs", "scripts", "components", "nerloop")
# train-llm-pure (scripts/train_steps.py) trains a fixed number of steps with a constant rate too
TAGGER_CONFIG = "tagger_tiny.cfg"
CHEAP_SET = "llama405b"
INIT_BUDGET = 33
PACKAGE = "en_nerloop_tiny-0.1.0"
# The fixture train set has 5 sentences; the Llama set labels 3 of them, so the expert pool
# (setting "rest") is the other 2: with 2 folds each fold holds 1 sentence, a budget of 10% of
# the cheap set is 0 expert sentences and 33% is 1; the init model takes 1 of the pool and the
# active learning loops add the last one.
VARS: dict[str, str | int] = {
    "cheap_set": CHEAP_SET,
    "tagger_config": TAGGER_CONFIG,
    "llm_pure_steps": 4,
    "llm_pure_warmup": 1,
    "annotate_eval_sentences": 3,
    "experiment_config": "tagger_tiny.cfg",
    "experiment_epochs": 2,
    "kfold_budgets": "10,33",
    "kfold_folds": 2,
    "kfold_epochs": 1,
    "kfold_processes": 0,
    "kfold_weight_budget": INIT_BUDGET,
    "init_budget": INIT_BUDGET,
    "al_strategy": "entropy",
    "al_strategies": "entropy,random",
    "al_processes": 1,
    "al_batch_to_add": 1,
    "al_finetune_epochs": 1,
    "al_min_iterations": 1,
    "al_max_iterations": 2,
    "package_name": "nerloop_tiny",
    "package_version": "0.1.0",
}
REPORT_SECTIONS = (
    "## 1. Data: tag distributions",
    "## 2. LLM labels: quality and cost",
    "## 3. Models: the study's table",
    "## 4. Expert budget (k-fold)",
    "## 5. Active learning",
    "## 6. Packaged model",
)


def copy_project(target: Path) -> Path:
    """The project's code and configs, without any local data or outputs."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    target.mkdir(parents=True)
    for name in PROJECT_PARTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    return target


def point_assets_at(project: Path, data_dir: Path) -> list[str]:
    """Give every asset the checksums of its tiny fixture file; drop the assets that no step
    reads and the fixtures lack (the Llama run's raw prompts-latest.json, BC5CDR).
    RETURNS (List[str]): The dropped assets' dest."""
    config = srsly.read_yaml(project / "project.yml")
    kept, dropped = [], []
    for asset in config["assets"]:
        source = data_dir / Path(asset["dest"]).relative_to("assets")
        if not source.exists():
            dropped.append(asset["dest"])
            continue
        data = source.read_bytes()
        asset["checksum"] = hashlib.md5(data).hexdigest()
        asset["sha256"] = hashlib.sha256(data).hexdigest()
        kept.append(asset)
    config["assets"] = kept
    srsly.write_yaml(project / "project.yml", config)
    return dropped


def run_all(project: Path, data_dir: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "spacy", "project", "run", "all", str(project)]
    for name, value in VARS.items():
        args += [f"--vars.{name}", str(value)]
    env = {**os.environ, "NERLOOP_DATA_DIR": str(data_dir)}
    return subprocess.run(
        args,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )


def output_tail(result: subprocess.CompletedProcess, chars: int = 8000) -> str:
    return result.stdout[-chars:]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project after one ``spacy project run all`` on the tiny data."""
    base = tmp_path_factory.mktemp("workflow")
    data_dir = base / "data"
    shutil.copytree(FIXTURE_ASSETS, data_dir)
    project = copy_project(base / "project")
    dropped = point_assets_at(project, data_dir)
    # no step of `all` reads these (BC5CDR is ingested on request only)
    assert dropped == [
        "assets/llm_annotations/ispras_llama31_405b/prompts-latest.json",
        "assets/bc5cdr/train.tsv",
        "assets/bc5cdr/devel.tsv",
        "assets/bc5cdr/test.tsv",
    ]
    result = run_all(project, data_dir)
    assert result.returncode == 0, output_tail(result)
    return project


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf8"))


def table_first_column(markdown: str) -> list[str]:
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    return [row.split("|")[1].strip() for row in rows[2:]]


def test_every_step_of_all_ran(project: Path) -> None:
    workflow = srsly.read_yaml(project / "project.yml")["workflows"]["all"]
    assert set(srsly.read_yaml(project / "project.lock")) == set(workflow)


def test_report_has_every_section_and_no_missing_input(project: Path) -> None:
    report = (project / "reports" / "report.md").read_text(encoding="utf8")
    headings = [line for line in report.splitlines() if line.startswith("## ")]
    assert headings == list(REPORT_SECTIONS)
    assert "Missing inputs" not in report
    assert "Not produced yet" not in report
    assert f"**{CHEAP_SET}**" in report
    assert "Package **en_nerloop_tiny** 0.1.0" in report
    assert f"packages/{PACKAGE}/dist/{PACKAGE}-py3-none-any.whl" in report
    plots = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert sorted(Path(plot).name for plot in plots) == [
        f"al_compare_{CHEAP_SET}.png",
        "annotation_quality.png",
        "f1_curve.png",
        "tags_entity.png",
        "tags_ner.png",
    ]
    for plot in plots:
        assert (project / "reports" / plot).stat().st_size > 0, plot


def test_model_table_has_the_llm_pure_gold_and_init_models(project: Path) -> None:
    models = (project / "metrics" / "models.md").read_text(encoding="utf8")
    assert table_first_column(models) == [
        f"llm_pure_{CHEAP_SET}",
        "gold",
        f"llm_pure_{CHEAP_SET}_exp",
        f"init_{INIT_BUDGET}_{CHEAP_SET}",
        "gold_exp",
    ]


def test_kfold_grids_cover_every_budget_fold_and_weight(project: Path) -> None:
    summary = read_json(project / "metrics" / f"kfold_{CHEAP_SET}" / "summary.json")
    grid = summary["grid"]
    assert (grid["pool"], grid["pool_size"], grid["n_cheap"]) == ("rest", 2, 3)
    assert grid["fold_sizes"] == [1, 1]
    assert grid["budgets"] == {"10": 0, "33": 1}
    assert summary["n_runs"] == 4
    assert summary["recommended_budget_pct"] in (10.0, 33.0)
    assert (project / "metrics" / f"kfold_{CHEAP_SET}" / "summary.md").exists()
    weights = read_json(project / "metrics" / f"kfold_weights_{CHEAP_SET}" / "summary.json")
    assert weights["grid"]["budgets"] == {"33": 1}
    assert weights["grid"]["expert_weights"] == [1.0, 2.0, 5.0]
    assert weights["n_runs"] == 6
    init_models = read_json(project / "metrics" / CHEAP_SET / "init_models.json")
    assert init_models["models"][f"init_{INIT_BUDGET}"]["n_expert"] == 1
    assert init_models["recommended"] in init_models["models"]


def test_al_compare_runs_both_strategies_from_the_same_start(project: Path) -> None:
    compare = read_json(project / "metrics" / CHEAP_SET / "al_compare.json")
    assert compare["strategies"] == ["entropy", "random"]
    assert [row["strategy"] for row in compare["rows"]] == ["entropy", "random"]
    assert set(compare["curves"]) == {"entropy", "random"}
    assert compare["n_initial_expert"] == 1
    for row in compare["rows"]:
        # one pool sentence is left after the init model's: every loop adds it in iteration 1
        assert (row["iterations"], row["final_n_added"]) == (1, 1), row
    assert compare["test"]["strategy"] == "entropy"
    history = read_json(project / "training" / CHEAP_SET / "al" / "entropy" / "history.json")
    assert history["n_initial_expert"] == 1
    assert [entry["n_added"] for entry in history["iterations"]] == [0, 1]


def test_the_wheel_ships_the_gold_pipeline_and_its_code(project: Path) -> None:
    wheel = project / "packages" / PACKAGE / "dist" / f"{PACKAGE}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        meta = json.loads(archive.read("en_nerloop_tiny/meta.json"))
    assert "en_nerloop_tiny/bio_ner.py" in names
    assert f"en_nerloop_tiny/{PACKAGE}/bio_ner/model" in names
    assert meta["pipeline"] == ["bio_ner"]
    assert meta["labels"]["bio_ner"] == ["PER", "LOC", "ORG", "MISC"]


def test_a_second_run_skips_every_step(project: Path) -> None:
    result = run_all(project, project.parent / "data")
    assert result.returncode == 0, output_tail(result)
    workflow = srsly.read_yaml(project / "project.yml")["workflows"]["all"]
    skipped = re.findall(r"Skipping '([\w-]+)': nothing changed", result.stdout)
    assert skipped == workflow, output_tail(result)
