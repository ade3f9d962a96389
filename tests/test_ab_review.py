"""Blind A/B review: the seeded build, what reviewers see, and the score of their choices."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from nerloop.corpus import meta
from nerloop.eval.pipeline import load_pipeline, predict_with_probs
from nerloop.formats.ab_review import (
    AB_CONFIG_FILE,
    AB_TASKS_FILE,
    MAPPING_FILE,
    PRODIGY_AB_FILE,
    SCORE_JSON_FILE,
    SCORE_MD_FILE,
    ABReviewError,
    build_ab_review,
    entity_key,
    marked_text,
    score_ab_review,
)
from nerloop.io_utils import write_docbin
from scripts.ab_review import app
from tests.cli_support import run_cli
from tests.tiny_tagger import SENTENCES, train_tiny_tagger

N_CORPUS = 24


def corpus_docs(n: int = N_CORPUS) -> list[Doc]:
    """The tiny sentences repeated to ``n`` Docs with sentence ids 0..n-1."""
    vocab = Vocab()
    docs = []
    for i in range(n):
        words, ents = SENTENCES[i % len(SENTENCES)]
        doc = Doc(vocab, words=words, spaces=[True] * (len(words) - 1) + [False])
        doc.set_ents([Span(doc, s, e, label=label) for s, e, label in ents], default="outside")
        meta.set_meta(doc, sent_id=i, split="test")
        docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny taggers (overfitted and barely trained) and a 24-sentence corpus."""
    base = tmp_path_factory.mktemp("ab")
    return {
        "base": base,
        "a": train_tiny_tagger(base / "strong_model"),
        "b": train_tiny_tagger(base / "weak_model", max_epochs=1),
        "corpus": write_docbin(base / "corpus.spacy", corpus_docs()),
        "small": write_docbin(base / "small.spacy", corpus_docs(len(SENTENCES))),
    }


def readings(model: Path, docs: list[Doc]) -> dict[int, Doc]:
    """Each Doc's sentence id -> the model's reading of it, predicted independently."""
    predicted, _ = predict_with_probs(load_pipeline(model), docs, progress=False)
    return {meta.sent_id(doc): pred for doc, pred in zip(docs, predicted, strict=True)}


def build(tiny: dict[str, Path], out: Path, **kwargs: Any) -> dict[str, Any]:
    settings = {"n": 20, "seed": 3, "skip_identical": False, "progress": False, **kwargs}
    corpus = settings.pop("corpus", tiny["corpus"])
    return build_ab_review(tiny["a"], tiny["b"], corpus, out, **settings)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf8"))


def test_the_sample_is_seeded_and_the_mapping_inverts_the_option_order(tiny, tmp_path) -> None:
    summary = build(tiny, tmp_path / "one")
    build(tiny, tmp_path / "two")
    build(tiny, tmp_path / "other", seed=4)
    for name in (AB_TASKS_FILE, PRODIGY_AB_FILE, AB_CONFIG_FILE, MAPPING_FILE):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    tasks = read_json(tmp_path / "one" / AB_TASKS_FILE)
    mapping = read_json(tmp_path / "one" / MAPPING_FILE)
    sent_ids = [task["data"]["sent_id"] for task in tasks]
    assert sent_ids == random.Random(3).sample(range(N_CORPUS), 20)
    other_ids = [t["data"]["sent_id"] for t in read_json(tmp_path / "other" / AB_TASKS_FILE)]
    assert other_ids == random.Random(4).sample(range(N_CORPUS), 20)
    assert other_ids != sent_ids
    assert summary["n_tasks"] == 20
    assert list(mapping["tasks"]) == [task["data"]["ab_id"] for task in tasks]
    assert mapping["models"] == {"A": str(tiny["a"]), "B": str(tiny["b"])}

    docs = corpus_docs()
    by_model = {"A": readings(tiny["a"], docs), "B": readings(tiny["b"], docs)}
    for task in tasks:
        data = task["data"]
        shown = mapping["tasks"][data["ab_id"]]
        assert sorted(shown.values()) == ["A", "B"]
        assert data["option_1"] == marked_text(by_model[shown["1"]][data["sent_id"]])
        assert data["option_2"] == marked_text(by_model[shown["2"]][data["sent_id"]])
    identical = sum(entity_key(by_model["A"][i]) == entity_key(by_model["B"][i]) for i in sent_ids)
    assert summary["n_identical"] == identical  # kept (--keep-identical), still counted
    a_first = sum(shown["1"] == "A" for shown in mapping["tasks"].values())
    assert summary["n_a_first"] == a_first
    assert 0 < a_first < 20  # both orders are shown


def test_marked_text_brackets_each_entity_with_its_label() -> None:
    doc = corpus_docs(1)[0]
    assert marked_text(doc) == "[Peter Blackburn]PER visited [Paris]LOC ."


def test_tasks_reveal_no_model_name_or_path(tiny, tmp_path) -> None:
    build(tiny, tmp_path / "review")
    for name in (AB_TASKS_FILE, PRODIGY_AB_FILE, AB_CONFIG_FILE):
        text = (tmp_path / "review" / name).read_text(encoding="utf8")
        for secret in ("strong_model", "weak_model", str(tiny["base"]), "model-best", "mapping"):
            assert secret not in text, (name, secret)
    tasks = read_json(tmp_path / "review" / AB_TASKS_FILE)
    assert all(set(task) == {"data"} for task in tasks)
    assert set(tasks[0]["data"]) == {"ab_id", "sent_id", "text", "option_1", "option_2"}
    mapping_text = (tmp_path / "review" / MAPPING_FILE).read_text(encoding="utf8")
    assert "strong_model" in mapping_text and "weak_model" in mapping_text

    lines = (tmp_path / "review" / PRODIGY_AB_FILE).read_text(encoding="utf8").splitlines()
    prodigy = [json.loads(line) for line in lines]
    assert [row["ab_id"] for row in prodigy] == [task["data"]["ab_id"] for task in tasks]
    for row, task in zip(prodigy, tasks, strict=True):
        assert [option["id"] for option in row["options"]] == ["1", "2", "equal"]
        assert row["options"][0]["text"] == task["data"]["option_1"]
        assert row["options"][1]["text"] == task["data"]["option_2"]
    config = (tmp_path / "review" / AB_CONFIG_FILE).read_text(encoding="utf8")
    assert '<Choices name="preference" toName="sentence" choice="single"' in config
    for value in ('"1"', '"2"', '"equal"', '"$option_1"', '"$option_2"', '"$text"'):
        assert value in config


def test_identical_readings_are_left_out_and_counted(tiny, tmp_path) -> None:
    docs = corpus_docs(len(SENTENCES))
    a, b = readings(tiny["a"], docs), readings(tiny["b"], docs)
    identical = sum(entity_key(a[i]) == entity_key(b[i]) for i in a)
    assert 0 < identical < len(SENTENCES)  # the fixture's models agree on some sentences only
    summary = build(tiny, tmp_path / "r", corpus=tiny["small"], n=6, skip_identical=True)
    assert summary["n_identical"] == identical
    assert summary["n_tasks"] == len(SENTENCES) - identical
    assert "left out" in summary["identical_rule"]
    for task in read_json(tmp_path / "r" / AB_TASKS_FILE):
        assert task["data"]["option_1"] != task["data"]["option_2"]


def synthetic_preferences(tasks_ids: list[str], mapping: dict[str, Any]) -> list[str]:
    """People prefer A in 14 of 20, B in 3, and find 3 equal: the chosen option ids."""
    chosen = []
    for index, task_id in enumerate(tasks_ids[:20]):
        shown = mapping["tasks"][task_id]
        option_of = {model: option for option, model in shown.items()}
        chosen.append(option_of["A"] if index < 14 else "equal" if index < 17 else option_of["B"])
    return chosen


def expected_score() -> dict[str, float]:
    """14 wins, 3 losses: the Wilson 95% interval and the exact two-sided sign test."""
    wins, n, z = 14, 17, 1.959963984540054
    p = wins / n
    center = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    p_value = 2 * sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n
    return {"low": center - half, "high": center + half, "p": p_value}


def check_score(score: dict[str, Any], n_skipped: int) -> None:
    expected = expected_score()
    assert (score["wins"], score["losses"], score["ties"]) == (14, 3, 3)
    assert score["n_answered"] == 20 and score["n_tasks"] == 22
    assert score["n_skipped"] == n_skipped
    assert score["win_rate"] == pytest.approx(14 / 17)
    assert score["wilson_95"] == pytest.approx([expected["low"], expected["high"]])
    assert score["wilson_95"] == pytest.approx([0.5897, 0.9381], abs=1e-4)
    assert score["sign_test_p"] == pytest.approx(expected["p"])
    assert score["sign_test_p"] == pytest.approx(0.012726, abs=1e-6)


@pytest.fixture
def review(tiny, tmp_path) -> dict[str, Any]:
    """A 22-task review: 20 tasks answered synthetically, 2 without a choice."""
    out = tmp_path / "review"
    build(tiny, out, n=22)
    tasks = read_json(out / AB_TASKS_FILE)
    mapping = read_json(out / MAPPING_FILE)
    ids = [task["data"]["ab_id"] for task in tasks]
    return {"out": out, "tasks": tasks, "mapping": mapping, "ids": ids}


def label_studio_export(review: dict[str, Any], chosen: list[str]) -> list[dict[str, Any]]:
    exported = []
    for number, task in enumerate(review["tasks"]):
        record = {"id": 1000 + number, "data": task["data"], "annotations": []}
        if number < len(chosen):
            choice = {"from_name": "preference", "to_name": "sentence", "type": "choices"}
            choice["value"] = {"choices": [chosen[number]]}
            wrong = {**choice, "value": {"choices": ["1" if chosen[number] != "1" else "2"]}}
            # an earlier annotation that the last one replaces
            record["annotations"] = [{"result": [wrong]}, {"result": [choice]}]
        elif number == len(chosen):
            record["annotations"] = [{"result": [], "was_cancelled": True}]
        exported.append(record)
    return exported


def test_label_studio_answers_round_trip_to_exact_counts(review, tmp_path) -> None:
    chosen = synthetic_preferences(review["ids"], review["mapping"])
    answers = tmp_path / "export.json"
    answers.write_text(json.dumps(label_studio_export(review, chosen)), encoding="utf8")
    score = score_ab_review(answers, review["out"] / MAPPING_FILE, "labelstudio")
    check_score(score, n_skipped=2)
    assert read_json(review["out"] / SCORE_JSON_FILE)["wins"] == 14
    markdown = (review["out"] / SCORE_MD_FILE).read_text(encoding="utf8")
    assert "| 14 | 3 | 3 | 0.824 | [0.590, 0.938] | 0.013 |" in markdown


def prodigy_lines(review: dict[str, Any], chosen: list[str]) -> list[dict[str, Any]]:
    lines = (review["out"] / PRODIGY_AB_FILE).read_text(encoding="utf8").splitlines()
    tasks = [json.loads(line) for line in lines]
    answers = [{**tasks[0], "answer": "accept", "accept": ["equal"]}]  # replaced below
    for task, option in zip(tasks, chosen, strict=False):
        answers.append({**task, "answer": "accept", "accept": [option]})
    answers.append({**tasks[20], "answer": "ignore", "accept": []})
    answers.append({**tasks[21], "answer": "reject", "accept": []})
    return answers


def test_prodigy_answers_round_trip_to_exact_counts(review, tmp_path) -> None:
    chosen = synthetic_preferences(review["ids"], review["mapping"])
    answers = tmp_path / "answers.jsonl"
    rows = prodigy_lines(review, chosen)
    answers.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf8")
    score = score_ab_review(answers, review["out"] / MAPPING_FILE, "prodigy", tmp_path / "s")
    check_score(score, n_skipped=2)
    assert (tmp_path / "s" / SCORE_MD_FILE).exists()


def test_the_cli_builds_and_scores(tiny, tmp_path) -> None:
    out = tmp_path / "cli"
    args = ["build", str(tiny["a"]), str(tiny["b"]), str(tiny["corpus"]), str(out)]
    result = run_cli(app, [*args, "--n", "22", "--seed", "3", "--keep-identical"])
    assert result.exit_code == 0, result.output
    assert "Wrote 22 A/B tasks" in result.output
    tasks = read_json(out / AB_TASKS_FILE)
    mapping = read_json(out / MAPPING_FILE)
    chosen = synthetic_preferences([t["data"]["ab_id"] for t in tasks], mapping)
    answers = tmp_path / "export.json"
    answers.write_text(json.dumps(label_studio_export({"tasks": tasks}, chosen)), "utf8")
    result = run_cli(
        app, ["score", str(answers), str(out / MAPPING_FILE), "--format", "labelstudio"]
    )
    assert result.exit_code == 0, result.output
    assert "A: 14 wins, 3 losses, 3 ties; win rate 0.824" in result.output


def test_unknown_task_ids_are_refused_with_the_task_named(review, tmp_path) -> None:
    chosen = synthetic_preferences(review["ids"], review["mapping"])
    exported = label_studio_export(review, chosen)
    exported[4]["data"] = {**exported[4]["data"], "ab_id": "ab-deadbeef-0004"}
    answers = tmp_path / "export.json"
    answers.write_text(json.dumps(exported), encoding="utf8")
    with pytest.raises(ABReviewError, match=r"task 5 \(ab_id 'ab-deadbeef-0004'\) is not a task"):
        score_ab_review(answers, review["out"] / MAPPING_FILE, "labelstudio")
    assert not (review["out"] / SCORE_JSON_FILE).exists()


def test_malformed_answers_are_refused_with_the_task_named(review, tmp_path) -> None:
    chosen = synthetic_preferences(review["ids"], review["mapping"])
    exported = label_studio_export(review, chosen)
    exported[2]["annotations"][-1]["result"][0]["value"]["choices"] = ["1", "2"]
    answers = tmp_path / "export.json"
    answers.write_text(json.dumps(exported), encoding="utf8")
    task_id = review["ids"][2]
    with pytest.raises(ABReviewError, match=rf"task 3 \(ab_id '{task_id}'\): its choice is"):
        score_ab_review(answers, review["out"] / MAPPING_FILE, "labelstudio")

    rows = prodigy_lines(review, chosen)
    rows[6]["accept"] = ["A"]
    jsonl = tmp_path / "answers.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf8")
    with pytest.raises(ABReviewError, match=r"line 7 .* it accepts \['A'\], expected exactly one"):
        score_ab_review(jsonl, review["out"] / MAPPING_FILE, "prodigy")
    with pytest.raises(ABReviewError, match="unknown answers format 'csv'"):
        score_ab_review(jsonl, review["out"] / MAPPING_FILE, "csv")
    with pytest.raises(ABReviewError, match="pass the mapping.json that `ab_review build` wrote"):
        score_ab_review(jsonl, tmp_path / "missing.json", "prodigy")
    assert not (review["out"] / SCORE_JSON_FILE).exists()


def test_build_errors_name_the_fix_and_write_nothing(tiny, tmp_path) -> None:
    out = tmp_path / "nothing"
    with pytest.raises(ABReviewError, match="more than the 24 sentences .* at most 24"):
        build(tiny, out, n=25)
    with pytest.raises(
        ABReviewError,
        match=r"model A predicts labels \['LOC', 'MISC', 'ORG'\] that the label scheme does "
        r"not list \(PER\): build the review with the scheme the models were trained with",
    ):
        build(tiny, out, labels=["PER"])
    with pytest.raises(ABReviewError, match="MODEL_A and MODEL_B are the same folder"):
        build_ab_review(tiny["a"], tiny["a"], tiny["corpus"], out, 5, progress=False)
    assert not out.exists()
    args = ["build", str(tiny["a"]), str(tiny["b"]), str(tiny["corpus"]), str(out), "--n", "99"]
    result = run_cli(app, args)
    assert result.exit_code == 1
    assert "lower --n to at most 24" in " ".join(result.output.split())  # msg.fail wraps
    assert not out.exists()
