"""The simulated LLM: seeded corruption of gold labels."""

from __future__ import annotations

import pytest

from nerloop.corpus import meta
from nerloop.corpus.simulate import corrupt_labels
from nerloop.errors import SettingsError
from tests.tiny_tagger import sentence_docs


def ents(doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


def test_rates_zero_and_one_are_exact() -> None:
    gold = sentence_docs()
    same, report = corrupt_labels(gold, miss_rate=0.0, wrong_label_rate=0.0)
    assert [ents(d) for d in same] == [ents(d) for d in gold]
    assert report["gold_entities"] == 11 and report["entities"] == 11
    none, report = corrupt_labels(gold, miss_rate=1.0, wrong_label_rate=0.0)
    assert all(not d.ents for d in none) and report["missed"] == 11
    assert [len(d) for d in none] == [len(d) for d in gold]  # no sentence emptied of tokens
    wrong, report = corrupt_labels(gold, miss_rate=0.0, wrong_label_rate=1.0)
    for g, w in zip(gold, wrong, strict=True):
        assert [(s, e) for s, e, _ in ents(g)] == [(s, e) for s, e, _ in ents(w)]
        assert all(a[2] != b[2] for a, b in zip(ents(g), ents(w), strict=True))
    assert {meta.sent_id(d) for d in wrong} == {meta.sent_id(d) for d in gold}
    assert {d.user_data["annotator"] for d in wrong} == {"simulated_llm"}


def test_same_seed_same_corruption_and_per_sentence_draws() -> None:
    gold = sentence_docs()
    a, _ = corrupt_labels(gold, miss_rate=0.5, wrong_label_rate=0.5, seed=3)
    b, _ = corrupt_labels(gold, miss_rate=0.5, wrong_label_rate=0.5, seed=3)
    c, _ = corrupt_labels(gold[2:], miss_rate=0.5, wrong_label_rate=0.5, seed=3)
    assert [ents(d) for d in a] == [ents(d) for d in b]
    assert [ents(d) for d in a[2:]] == [ents(d) for d in c]
    with pytest.raises(SettingsError, match="miss_rate must be between 0 and 1"):
        corrupt_labels(gold, miss_rate=1.5, wrong_label_rate=0.0)


def test_simulated_experts_answer_exported_tasks_with_the_gold_entities(tmp_path) -> None:
    """The answers import through the real Label Studio reader to exactly the gold spans."""
    import json

    from spacy.tokens import DocBin

    from nerloop.corpus.simulate import expert_answers
    from nerloop.formats.export import PreAnnotated, label_studio_task
    from nerloop.formats.importing import import_annotations
    from nerloop.io_utils import read_docbin

    gold = sentence_docs()
    blank = [d.copy() for d in gold]
    for doc in blank:
        doc.set_ents([], default="outside")
    # the LLM's (here: no) entities as the pre-annotation the experts replace
    tasks = [label_studio_task(PreAnnotated(d, d, 1.0), "llm") for d in blank]
    answers = expert_answers(tasks, meta.by_sent_id(gold))
    assert [t["data"]["sent_id"] for t in answers] == [meta.sent_id(d) for d in gold]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(answers))
    selected = tmp_path / "selected.spacy"
    DocBin(docs=blank, store_user_data=True).to_disk(selected)
    output = tmp_path / "experts.spacy"
    summary = import_annotations(path, selected, output, "labelstudio")
    assert (summary["n_imported"], summary["n_skipped"]) == (len(gold), 0)
    assert [ents(d) for d in read_docbin(output)] == [ents(d) for d in gold]
    with pytest.raises(SettingsError, match="has no gold sentence"):
        expert_answers(tasks, {})
    changed = [dict(tasks[0], data={**tasks[0]["data"], "text": "Something else ."})]
    with pytest.raises(SettingsError, match="its text is not the gold sentence's"):
        expert_answers(changed, meta.by_sent_id(gold))


def test_the_simulated_no_gold_workflow_runs_every_step_and_resumes(tmp_path) -> None:
    """scripts/simulate_nogold on 40 tiny sentences: the user's CLIs in order, one round."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from nerloop.io_utils import write_docbin
    from tests.tiny_corpus import gold_docs

    root = Path(__file__).parent.parent
    train, test = tmp_path / "train.spacy", tmp_path / "test.spacy"
    write_docbin(train, gold_docs(40))
    write_docbin(test, gold_docs(8, split="test"))
    command = [
        sys.executable, "-m", "scripts.simulate_nogold", str(train), str(test),
        str(tmp_path / "run"), str(tmp_path / "metrics"),
        "--labels", str(root / "nerloop" / "schemes" / "conll2003.cfg"),
        "--config", str(root / "configs" / "tagger_tiny.cfg"), "--features", str(tmp_path / "f"),
        "--dev-size", "8", "--epochs", "3", "--rounds", "1", "--batch", "4",
        "--miss-rate", "0.5", "--wrong-label-rate", "0.0",
    ]  # fmt: skip
    first = subprocess.run(command, cwd=root, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    summary = json.loads((tmp_path / "metrics" / "nogold_summary.json").read_text())
    assert summary["llm_label_quality"]["precision"] == 1.0  # missed entities, no wrong label
    assert summary["llm_label_quality"]["recall"] < 1.0
    rounds = summary["rounds"]
    assert [row["round"] for row in rounds] == [0, 1]
    assert rounds[1]["sentences"] == 4 and rounds[1]["expert_sentences"] == 8 + 4
    assert set(summary["f1"]) == {"cheap", "final"}
    assert {"simulate_llm", "dev_sample", "train_cheap", "update_1"} <= set(
        summary["seconds_this_run"]
    )
    # a rerun finds every step done: it only reports again
    again = subprocess.run(command, cwd=root, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    rerun = json.loads((tmp_path / "metrics" / "nogold_summary.json").read_text())
    assert set(rerun["seconds_this_run"]) == {"total"}
    assert rerun["f1"] == summary["f1"] and rerun["rounds"] == rounds
