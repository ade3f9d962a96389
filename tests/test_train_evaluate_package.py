"""The reference-model steps end to end on the fixture corpus with the tiny config:
spacy train -> evaluate -> compare -> spacy package -> install -> load elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nerloop.corpus.preprocess import preprocess
from nerloop.eval.compare import compare_predictions
from nerloop.eval.evaluate import evaluate_model
from nerloop.eval.metrics import doc_to_iob2
from nerloop.eval.pipeline import load_pipeline, predict_with_probs
from nerloop.io_utils import read_docbin

ROOT = Path(__file__).parent.parent
RAW_TEXT = "Peter Blackburn met EU officials in BRUSSELS ."


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import shutil

    from spacy.cli.train import train

    import components.bio_ner  # noqa: F401

    base = tmp_path_factory.mktemp("e2e")
    assets = base / "assets"
    shutil.copytree(ROOT / "tests" / "fixtures" / "assets", assets)
    corpus = base / "corpus"
    preprocess(assets, corpus, ["chatgpt"])
    models = {}
    for name, train_path in (
        ("gold", corpus / "train.spacy"),
        ("llm", corpus / "cheap" / "chatgpt.spacy"),
    ):
        output = base / "training" / name
        train(
            ROOT / "configs" / "tagger_tiny.cfg",
            output,
            overrides={"paths.train": str(train_path), "paths.dev": str(corpus / "train.spacy")},
        )
        models[name] = output / "model-best"
    models["corpus"] = corpus
    models["base"] = base
    return models


def test_evaluate_writes_the_study_measures(trained: dict[str, Path]) -> None:
    corpus = trained["corpus"]
    result = evaluate_model(
        trained["gold"], "gold", {"dev": corpus / "train.spacy", "test": corpus / "test.spacy"}
    )
    dev = result["dev"]
    # the tiny model has learnt its five training sentences by heart
    assert dev["f1"] == 1.0 and dev["accuracy"] == 1.0
    assert 0.0 < dev["loss"] < 0.5
    assert set(dev["per_type"]) == {"LOC", "MISC", "ORG", "PER"}
    assert dev["n_sentences"] == 5
    assert {"precision", "recall", "f1", "accuracy", "loss"} <= set(result["test"])
    json.dumps(result)  # serialisable as metrics/<model>.json


def test_evaluate_chooses_best_or_last_on_dev_and_keeps_a_copy(trained: dict[str, Path]) -> None:
    corpus = trained["corpus"]
    training_dir = trained["gold"].parent
    result = evaluate_model(
        training_dir, "gold", {"dev": corpus / "train.spacy", "test": corpus / "test.spacy"}
    )
    selection = result["selection"]
    assert set(selection["dev_f1"]) == {"model-best", "model-last"}
    assert selection["dev_f1"][selection["chosen"]] == max(selection["dev_f1"].values())
    assert result["dev"]["f1"] == selection["dev_f1"][selection["chosen"]]
    assert (training_dir / "model-selected" / "config.cfg").exists()
    assert result["path"] == str(training_dir / selection["chosen"])


def test_compare_on_a_fixed_gold_set(trained: dict[str, Path]) -> None:
    gold_path = trained["corpus"] / "train.spacy"
    predictions = []
    for name in ("llm", "gold"):
        nlp = load_pipeline(trained[name])
        gold_docs = read_docbin(gold_path, nlp.vocab)
        predicted, probs = predict_with_probs(nlp, gold_docs, progress=False)
        for p in probs:
            assert p.sum(axis=1) == pytest.approx(1.0, abs=1e-4)
        predictions.append([doc_to_iob2(d) for d in predicted])
    gold = [doc_to_iob2(d) for d in gold_docs]
    result = compare_predictions(gold, predictions[0], predictions[1], n_resamples=100, seed=0)
    assert result["per_type_f1"]["micro"]["b"] == 1.0
    assert result["per_type_f1"]["micro"]["diff"] >= 0


def test_package_installs_and_loads_from_another_directory(trained: dict[str, Path]) -> None:
    base = trained["base"]
    packages = base / "packages"
    packages.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "package",
            str(trained["gold"]),
            str(packages),
            "--name",
            "conll_test",
            "--version",
            "0.0.1",
            "--code",
            "components/bio_ner.py",
            "--build",
            "wheel",
            "--force",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    wheels = list(packages.rglob("*.whl"))
    assert len(wheels) == 1
    target = base / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(wheels[0]),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import json, spacy; nlp = spacy.load('en_conll_test'); "
        f"doc = nlp({RAW_TEXT!r}); "
        "print(json.dumps([[e.text, e.label_] for e in doc.ents]))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    )
    ents = json.loads(loaded.stdout.strip().splitlines()[-1])
    expected = [[e.text, e.label_] for e in load_pipeline(trained["gold"])(RAW_TEXT).ents]
    assert ents == expected
    assert ["Peter Blackburn", "PER"] in ents


def test_train_steps_stretches_a_schedule_and_keeps_a_constant_rate() -> None:
    from nerloop.train_steps import step_overrides

    configs = Path(__file__).parent.parent / "configs"
    trf = step_overrides(configs / "tagger_trf_cpu.cfg", 240, 24, 60)
    assert trf == {
        "training.max_epochs": 0,
        "training.max_steps": 240,
        "training.optimizer.learn_rate.total_steps": 240,
        "training.optimizer.learn_rate.warmup_steps": 24,
        "training.eval_frequency": 60,
    }
    cnn = step_overrides(configs / "tagger_cnn.cfg", 240, 24)
    assert cnn == {"training.max_epochs": 0, "training.max_steps": 240}
    with pytest.raises(ValueError, match="warmup must be in"):
        step_overrides(configs / "tagger_cnn.cfg", 10, 10)
