"""Experts in the loop: export pre-annotated tasks, import the experts' answers, refuse bad ones."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import numpy
import pytest
import typer
from spacy.language import Language
from spacy.util import minibatch
from spacy.vocab import Vocab
from typer.testing import CliRunner

from nerloop.corpus import meta
from nerloop.eval.pipeline import load_pipeline, predict_with_probs
from nerloop.formats.common import (
    LABEL_STUDIO_CONFIG_FILE,
    LABEL_STUDIO_TASKS_FILE,
    PRODIGY_TASKS_FILE,
)
from nerloop.formats.export import export_batch
from nerloop.formats.importing import ImportValidationError, import_annotations
from nerloop.io_utils import read_docbin, write_docbin
from nerloop.labels import DEFAULT_SCHEME_PATH
from scripts.al_export import main as export_main
from scripts.al_import import app as import_app
from scripts.al_import import main as import_main
from tests.cli_support import run_cli
from tests.tiny_tagger import FIRST_SENT_ID, sentence_docs, train_tiny_tagger

Ents = list[tuple[str, str]]
CONLL_SCHEME = f"the label scheme in {DEFAULT_SCHEME_PATH} has PER, LOC, ORG, MISC."


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny model, the selected batch, its export and the model's own predictions."""
    base = tmp_path_factory.mktemp("al")
    model = train_tiny_tagger(base / "model")
    selected = base / "selected.spacy"
    write_docbin(selected, sentence_docs())
    summary = export_batch(model, selected, base / "export", model_version="tiny-v1")
    nlp = load_pipeline(model)
    predicted, _ = predict_with_probs(nlp, read_docbin(selected, nlp.vocab), progress=False)
    return {
        "model": model,
        "selected": selected,
        "export": base / "export",
        "summary": summary,
        "predicted": {FIRST_SENT_ID + i: ents(doc) for i, doc in enumerate(predicted)},
    }


def ents(doc) -> Ents:
    return [(ent.text, ent.label_) for ent in doc.ents]


def label_studio_tasks(exported: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads((exported["export"] / LABEL_STUDIO_TASKS_FILE).read_text())


def prodigy_tasks(exported: dict[str, Any]) -> list[dict[str, Any]]:
    lines = (exported["export"] / PRODIGY_TASKS_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines]


def as_label_studio_export(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What Label Studio exports after an expert submitted every pre-annotation unchanged."""
    result = []
    for i, task in enumerate(copy.deepcopy(tasks)):
        task["id"] = 500 + i
        task["annotations"] = [
            {
                "id": 900 + i,
                "completed_by": 7,
                "was_cancelled": False,
                "created_at": "2025-01-02T10:00:00.000000Z",
                "updated_at": "2025-01-02T10:00:00.000000Z",
                "result": copy.deepcopy(task["predictions"][0]["result"]),
            }
        ]
        result.append(task)
    return result


def as_prodigy_export(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``prodigy db-out`` gives after an expert accepted every pre-annotation unchanged."""
    rows = copy.deepcopy(tasks)
    for row in rows:
        row.update(answer="accept", _annotator_id="batch1-alice", _session_id="batch1-alice")
    return rows


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf8")
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf8")
    return path


def imported(path: Path) -> dict[int, Any]:
    return {meta.sent_id(doc): doc for doc in read_docbin(path, Vocab())}


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


def test_model_pre_annotates_entities(exported) -> None:
    """The tiny model finds entities, so the round trips below carry real spans."""
    n_entities = sum(len(e) for e in exported["predicted"].values())
    assert n_entities >= 8
    assert exported["summary"]["n_sentences"] == 6
    assert exported["summary"]["n_entities"] == n_entities


class BatchRecorder:
    """A pipeline component that records the batches it is given and changes nothing."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(self, doc):
        self.batches.append([doc.text])
        return doc

    def pipe(self, docs, batch_size: int = 128):
        for batch in minibatch(docs, size=batch_size):
            self.batches.append([doc.text for doc in batch])
            yield from batch


@Language.factory("nerloop_test_batch_recorder")
def make_batch_recorder(nlp: Language, name: str) -> BatchRecorder:
    return BatchRecorder()


def test_prediction_runs_only_the_components_before_the_tagger(exported) -> None:
    """``nlp.pipe`` runs the upstream components in the tagger's batches; the tagger and what
    comes after it are not run by it, and the predictions are those of the plain pipeline."""
    nlp = load_pipeline(exported["model"])
    docs = read_docbin(exported["selected"], nlp.vocab)
    plain, plain_probs = predict_with_probs(nlp, docs, batch_size=4, progress=False)
    before = nlp.add_pipe("nerloop_test_batch_recorder", name="before", before="bio_ner")
    after = nlp.add_pipe("nerloop_test_batch_recorder", name="after", last=True)
    predicted, probs = predict_with_probs(nlp, docs, batch_size=4, progress=False)
    texts = [doc.text for doc in docs]
    assert before.batches == [texts[:4], texts[4:]]
    assert after.batches == []
    assert [ents(doc) for doc in predicted] == [ents(doc) for doc in plain]
    assert all(numpy.array_equal(a, b) for a, b in zip(probs, plain_probs, strict=True))
    assert {FIRST_SENT_ID + i: ents(doc) for i, doc in enumerate(predicted)} == exported[
        "predicted"
    ]


def test_label_studio_tasks_carry_text_sent_id_and_predictions(exported) -> None:
    tasks = label_studio_tasks(exported)
    docs = sentence_docs()
    assert [task["data"]["sent_id"] for task in tasks] == [meta.sent_id(d) for d in docs]
    for task, doc in zip(tasks, docs):
        text = task["data"]["text"]
        assert text == doc.text
        assert task["data"]["tokens"] == [t.text for t in doc]
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "tiny-v1"
        assert 0.0 < prediction["score"] <= 1.0
        spans = []
        for item in prediction["result"]:
            assert item["type"] == "labels"
            assert (item["from_name"], item["to_name"]) == ("label", "text")
            value = item["value"]
            assert value["text"] == text[value["start"] : value["end"]]
            assert len(value["labels"]) == 1
            spans.append((value["text"], value["labels"][0]))
        assert spans == exported["predicted"][task["data"]["sent_id"]]
    # character offsets (not UTF-8 bytes): "Zürich" starts at 26 whatever the model calls it
    assert tasks[2]["data"]["text"].index("Zürich") == 26
    for item in tasks[2]["predictions"][0]["result"]:
        if item["value"]["text"] == "Zürich":
            assert (item["value"]["start"], item["value"]["end"]) == (26, 32)


def test_label_studio_config_matches_the_tasks(exported) -> None:
    root = ElementTree.fromstring((exported["export"] / LABEL_STUDIO_CONFIG_FILE).read_text())
    assert root.tag == "View"
    labels = root.find("Labels")
    assert labels.attrib == {"name": "label", "toName": "text"}
    assert [label.attrib["value"] for label in labels] == ["PER", "LOC", "ORG", "MISC"]
    assert root.find("Text").attrib == {"name": "text", "value": "$text"}


def test_prodigy_tasks_carry_tokens_spans_and_meta(exported) -> None:
    rows = prodigy_tasks(exported)
    assert len(rows) == 6
    for row in rows:
        text = row["text"]
        for i, token in enumerate(row["tokens"]):
            assert set(token) == {"text", "start", "end", "id", "ws"}
            assert token["id"] == i and text[token["start"] : token["end"]] == token["text"]
            assert token["ws"] == (i < len(row["tokens"]) - 1)
        spans = []
        for span in row["spans"]:
            first, last = row["tokens"][span["token_start"]], row["tokens"][span["token_end"]]
            assert (span["start"], span["end"]) == (first["start"], last["end"])
            spans.append((text[span["start"] : span["end"]], span["label"]))
        assert spans == exported["predicted"][row["meta"]["sent_id"]]
        assert isinstance(row["_input_hash"], int) and isinstance(row["_task_hash"], int)
    assert len({row["_input_hash"] for row in rows}) == 6


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------


def test_label_studio_round_trip_gives_back_the_entities(exported, tmp_path: Path) -> None:
    export = write_json(tmp_path / "ls.json", as_label_studio_export(label_studio_tasks(exported)))
    summary = import_annotations(export, exported["selected"], tmp_path / "expert.spacy")
    docs = imported(tmp_path / "expert.spacy")
    assert {i: ents(doc) for i, doc in docs.items()} == exported["predicted"]
    originals = {meta.sent_id(d): d for d in sentence_docs()}
    for sent_id, doc in docs.items():
        assert [t.text for t in doc] == [t.text for t in originals[sent_id]]
        assert doc.user_data[meta.SOURCE] == "expert"
        assert doc.user_data[meta.ANNOTATOR] == "labelstudio-user-7"
        assert doc.user_data[meta.SPLIT] == "train"
        assert doc.user_data[meta.DOC_ID] == originals[sent_id].user_data[meta.DOC_ID]
    assert summary["format"] == "labelstudio"
    assert summary["n_imported"] == 6 and summary["n_skipped"] == 0
    assert summary["annotators"] == {"labelstudio-user-7": 6}


def test_prodigy_round_trip_gives_back_the_entities(exported, tmp_path: Path) -> None:
    export = write_jsonl(tmp_path / "db-out.jsonl", as_prodigy_export(prodigy_tasks(exported)))
    summary = import_annotations(export, exported["selected"], tmp_path / "expert.spacy")
    docs = imported(tmp_path / "expert.spacy")
    assert {i: ents(doc) for i, doc in docs.items()} == exported["predicted"]
    assert {doc.user_data[meta.ANNOTATOR] for doc in docs.values()} == {"batch1-alice"}
    assert {doc.user_data[meta.SOURCE] for doc in docs.values()} == {"expert"}
    assert summary["format"] == "prodigy" and summary["n_imported"] == 6


def ls_item(text: str, start: int, end: int, label: str, id_: str = "x") -> dict[str, Any]:
    return {
        "id": id_,
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]},
    }


def test_label_studio_edited_annotation_wins(exported, tmp_path: Path) -> None:
    """The expert's latest non-cancelled annotation is taken, edits and all."""
    tasks = as_label_studio_export(label_studio_tasks(exported))
    task = tasks[0]  # "Peter Blackburn visited Paris ."
    text = task["data"]["text"]
    older = task["annotations"][0]
    edited = {
        **copy.deepcopy(older),
        "id": 950,
        "updated_at": "2025-01-03T09:00:00.000000Z",
        # Paris relabelled ORG, Peter Blackburn dropped, "visited" added as MISC,
        # and a span with a trailing space (trimmed)
        "result": [
            ls_item(text, 24, 29, "ORG", "a"),
            ls_item(text, 16, 24, "MISC", "b"),
        ],
    }
    cancelled = {**copy.deepcopy(older), "id": 960, "was_cancelled": True, "result": []}
    cancelled["updated_at"] = "2025-01-04T09:00:00.000000Z"
    task["annotations"] = [older, edited, cancelled]
    # a prodigy-style edit on another sentence for good measure
    tasks[3]["annotations"][0]["result"] = [ls_item(tasks[3]["data"]["text"], 0, 7, "MISC")]
    export = write_json(tmp_path / "ls.json", tasks)
    import_annotations(export, exported["selected"], tmp_path / "expert.spacy")
    docs = imported(tmp_path / "expert.spacy")
    assert ents(docs[FIRST_SENT_ID]) == [("visited", "MISC"), ("Paris", "ORG")]
    assert ents(docs[FIRST_SENT_ID + 3]) == [("Results", "MISC")]
    assert ents(docs[FIRST_SENT_ID + 1]) == exported["predicted"][FIRST_SENT_ID + 1]


def test_prodigy_edited_answer_and_skipped_answers(exported, tmp_path: Path) -> None:
    rows = as_prodigy_export(prodigy_tasks(exported))
    rows[0]["spans"] = [
        {"start": 0, "end": 5, "token_start": 0, "token_end": 0, "label": "PER"},
        {"start": 6, "end": 15, "token_start": 1, "token_end": 1, "label": "PER"},
    ]
    rows[1]["answer"] = "reject"
    rows[2]["answer"] = "ignore"
    export = write_jsonl(tmp_path / "db-out.jsonl", rows)
    summary = import_annotations(
        export, exported["selected"], tmp_path / "expert.spacy", annotator="dr-smith"
    )
    docs = imported(tmp_path / "expert.spacy")
    assert sorted(docs) == [FIRST_SENT_ID, FIRST_SENT_ID + 3, FIRST_SENT_ID + 4, FIRST_SENT_ID + 5]
    assert ents(docs[FIRST_SENT_ID]) == [("Peter", "PER"), ("Blackburn", "PER")]
    assert {doc.user_data[meta.ANNOTATOR] for doc in docs.values()} == {"dr-smith"}
    assert summary["n_skipped"] == 2
    assert summary["skipped"] == [
        {"task": "line 2", "sent_id": FIRST_SENT_ID + 1, "reason": "rejected"},
        {"task": "line 3", "sent_id": FIRST_SENT_ID + 2, "reason": "ignored"},
    ]


def test_label_studio_unannotated_tasks_are_skipped_or_take_predictions(
    exported, tmp_path: Path
) -> None:
    tasks = as_label_studio_export(label_studio_tasks(exported))
    tasks[1]["annotations"] = []  # nobody looked at it
    tasks[2]["annotations"][0]["was_cancelled"] = True  # the expert skipped it
    export = write_json(tmp_path / "ls.json", tasks)
    summary = import_annotations(export, exported["selected"], tmp_path / "expert.spacy")
    assert sorted(imported(tmp_path / "expert.spacy")) == [FIRST_SENT_ID + i for i in (0, 3, 4, 5)]
    assert [(s["task"], s["reason"]) for s in summary["skipped"]] == [
        ("501", "not annotated"),
        ("502", "all annotations cancelled"),
    ]
    summary = import_annotations(
        export, exported["selected"], tmp_path / "with_predictions.spacy", use_predictions=True
    )
    docs = imported(tmp_path / "with_predictions.spacy")
    assert len(docs) == 6 and summary["n_from_predictions"] == 2
    for sent_id in (FIRST_SENT_ID + 1, FIRST_SENT_ID + 2):
        assert ents(docs[sent_id]) == exported["predicted"][sent_id]
        assert docs[sent_id].user_data[meta.SOURCE] == "cheap"
        assert docs[sent_id].user_data[meta.ANNOTATOR] == "model:tiny-v1"
    assert docs[FIRST_SENT_ID].user_data[meta.SOURCE] == "expert"


# ---------------------------------------------------------------------------------------------
# Bad imports: every problem named by task and sentence, nothing written
# ---------------------------------------------------------------------------------------------


def _break_label_studio(tasks: list[dict[str, Any]], case: str) -> list[dict[str, Any]]:
    text = tasks[0]["data"]["text"]  # "Peter Blackburn visited Paris ."
    if case == "misaligned":
        tasks[0]["annotations"][0]["result"].append(ls_item(text, 16, 19, "MISC"))  # "vis"
    elif case == "unknown_label":
        tasks[0]["annotations"][0]["result"] = [ls_item(text, 24, 29, "CITY")]
    elif case == "missing":
        del tasks[0]
    elif case == "duplicated":
        tasks.append({**copy.deepcopy(tasks[0]), "id": 777})
    return tasks


def _break_prodigy(rows: list[dict[str, Any]], case: str) -> list[dict[str, Any]]:
    if case == "misaligned":
        rows[0]["spans"].append({"start": 16, "end": 19, "label": "MISC"})
    elif case == "unknown_label":
        rows[0]["spans"] = [
            {"start": 24, "end": 29, "token_start": 3, "token_end": 3, "label": "CITY"}
        ]
    elif case == "missing":
        del rows[0]
    elif case == "duplicated":
        rows.append(copy.deepcopy(rows[0]))
    return rows


EXPECTED_PROBLEMS = {
    # case -> (label studio problems, prodigy problems) as they are reported
    "misaligned": (
        ["task 500, sent_id 100: span 16:19 (MISC) 'vis' does not fall on token boundaries"],
        ["task line 1, sent_id 100: span 16:19 (MISC) 'vis' does not fall on token boundaries"],
    ),
    "unknown_label": (
        [f"task 500, sent_id 100: unknown label 'CITY' (span 24:29): {CONLL_SCHEME}"],
        [f"task line 1, sent_id 100: unknown label 'CITY' (span 24:29): {CONLL_SCHEME}"],
    ),
    "missing": (
        ["sent_id 100: was selected but the export has no task for it"],
        ["sent_id 100: was selected but the export has no task for it"],
    ),
    "duplicated": (
        [
            "task 500, sent_id 100: is one of 2 tasks for this sentence (500, 777)",
            "task 777, sent_id 100: is one of 2 tasks for this sentence (500, 777)",
        ],
        [
            "task line 1, sent_id 100: is one of 2 tasks for this sentence (line 1, line 7)",
            "task line 7, sent_id 100: is one of 2 tasks for this sentence (line 1, line 7)",
        ],
    ),
}


@pytest.mark.parametrize("tool", ["labelstudio", "prodigy"])
@pytest.mark.parametrize("case", sorted(EXPECTED_PROBLEMS))
def test_bad_import_is_refused_and_writes_nothing(
    exported, tmp_path: Path, tool: str, case: str
) -> None:
    if tool == "labelstudio":
        tasks = _break_label_studio(as_label_studio_export(label_studio_tasks(exported)), case)
        export = write_json(tmp_path / "ls.json", tasks)
        expected = EXPECTED_PROBLEMS[case][0]
    else:
        rows = _break_prodigy(as_prodigy_export(prodigy_tasks(exported)), case)
        export = write_jsonl(tmp_path / "db-out.jsonl", rows)
        expected = EXPECTED_PROBLEMS[case][1]
    output = tmp_path / "expert.spacy"
    output.write_bytes(b"an earlier import")
    with pytest.raises(ImportValidationError) as caught:
        import_annotations(
            export, exported["selected"], output, tool, summary_path=tmp_path / "summary.json"
        )
    problems = [str(problem) for problem in caught.value.problems]
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected):
        assert problem.startswith(start), problem
    assert "nothing was imported" in str(caught.value) and str(export) in str(caught.value)
    assert output.read_bytes() == b"an earlier import"
    assert not (tmp_path / "summary.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([export.name, output.name])


def test_all_problems_are_reported_at_once(exported, tmp_path: Path) -> None:
    tasks = as_label_studio_export(label_studio_tasks(exported))
    text = tasks[0]["data"]["text"]
    tasks[0]["annotations"][0]["result"] = [
        ls_item(text, 0, 3, "PER", "a"),  # "Pet"
        ls_item(text, 24, 29, "CITY", "b"),
        {
            **ls_item(text, 0, 5, "PER", "c"),
            "value": {"start": 0, "end": 5, "text": "Paul", "labels": ["PER"]},
        },
    ]
    tasks[1]["data"]["sent_id"] = 999  # not in the batch, and leaves sent 101 without a task
    tasks[2]["data"]["text"] = "Anna works for Reuters in Zurich ."
    del tasks[4]["data"]["sent_id"]
    export = write_json(tmp_path / "ls.json", tasks)
    with pytest.raises(ImportValidationError) as caught:
        import_annotations(export, exported["selected"], tmp_path / "expert.spacy")
    problems = [str(p) for p in caught.value.problems]
    assert problems == [
        "task 501, sent_id 999: is not a sentence of the selected batch",
        "task 504: has no integer 'sent_id' to match it by",
        "sent_id 101: was selected but the export has no task for it",
        "sent_id 104: was selected but the export has no task for it",
        "task 500, sent_id 100: span 0:3 (PER) 'Pet' does not fall on token boundaries "
        "(tokens around it: 'Peter'@0)",
        f"task 500, sent_id 100: unknown label 'CITY' (span 24:29): {CONLL_SCHEME} "
        "Add it to the scheme or fix the input.",
        "task 500, sent_id 100: span 0:5 (PER) says its text is 'Paul' but the text at those "
        "offsets is 'Peter'",
        "task 502, sent_id 102: text 'Anna works for Reuters in Zurich .' differs from the "
        "selected sentence 'Anna works for Reuters in Zürich .'",
    ]
    assert not (tmp_path / "expert.spacy").exists()


def test_overlapping_and_token_index_mismatch_are_refused(exported, tmp_path: Path) -> None:
    rows = as_prodigy_export(prodigy_tasks(exported))
    rows[0]["spans"] = [
        {"start": 0, "end": 15, "token_start": 0, "token_end": 1, "label": "PER"},
        {"start": 6, "end": 15, "token_start": 1, "token_end": 1, "label": "LOC"},
        {"start": 24, "end": 29, "token_start": 2, "token_end": 2, "label": "LOC"},
    ]
    rows[1]["answer"] = None
    export = write_jsonl(tmp_path / "db-out.jsonl", rows)
    with pytest.raises(ImportValidationError) as caught:
        import_annotations(export, exported["selected"], tmp_path / "expert.spacy")
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 3
    assert problems[0].startswith("task line 2, sent_id 101: answer None is not one of")
    assert problems[1] == (
        "task line 1, sent_id 100: span 6:15 (LOC) 'Blackburn' overlaps "
        "'Peter Blackburn' (PER, 0:15)"
    )
    assert problems[2] == (
        "task line 1, sent_id 100: span 24:29 (LOC) has token_start/token_end 2/2 but its "
        "characters cover tokens 3/3"
    )


# ---------------------------------------------------------------------------------------------
# CLIs
# ---------------------------------------------------------------------------------------------


def _cli(command) -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    return app


def test_clis_export_and_import(exported, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "batch"
    result = runner.invoke(
        _cli(export_main), [str(exported["model"]), str(exported["selected"]), str(out)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [LABEL_STUDIO_TASKS_FILE, LABEL_STUDIO_CONFIG_FILE, PRODIGY_TASKS_FILE]
    )
    tasks = json.loads((out / LABEL_STUDIO_TASKS_FILE).read_text())
    assert tasks[0]["predictions"][0]["model_version"] == str(exported["model"])
    export = write_json(tmp_path / "ls.json", as_label_studio_export(tasks))
    result = runner.invoke(
        _cli(import_main),
        [
            str(export),
            str(exported["selected"]),
            str(tmp_path / "expert.spacy"),
            "--format",
            "labelstudio",
            "--summary",
            str(tmp_path / "summary.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "summary.json").read_text())["n_imported"] == 6
    broken = _break_label_studio(as_label_studio_export(tasks), "unknown_label")
    result = run_cli(
        import_app,
        [
            str(write_json(tmp_path / "broken.json", broken)),
            str(exported["selected"]),
            str(tmp_path / "broken.spacy"),
        ],
    )
    assert result.exit_code == 1
    assert "task 500, sent_id 100: unknown label 'CITY' (span 24:29)" in result.output
    assert not (tmp_path / "broken.spacy").exists()
