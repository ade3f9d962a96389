"""The Label Studio ML backend over real loopback HTTP (no Label Studio needed): /health, /setup,
/predict with per-entity scores, /webhook refusing what it cannot use with nothing recorded,
one fit per batch of answers even when two are asked for at once, and a killed fit that leaves
everything as it was."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy
import pytest
from spacy.tokens import Doc

from nerloop.al.human import STATE_FILE
from nerloop.corpus import meta
from nerloop.eval.metrics import doc_to_iob2
from nerloop.eval.pipeline import load_pipeline, predict_with_probs, tagger_of
from nerloop.formats.common import label_studio_config, label_studio_result
from nerloop.labels import load_scheme
from nerloop.labelstudio.backend import (
    EVENTS_FILE,
    RECORD_FILE,
    BackendSettings,
    NerBackend,
    make_backend_server,
)
from nerloop.labelstudio.client import LabelStudioClient, LabelStudioError, api_key_from_env
from tests.tiny_corpus import gold_docs, write_tiny_corpus
from tests.tiny_tagger import train_tiny_tagger

ROOT = Path(__file__).resolve().parent.parent
BATCH = 3
OVERRIDES = {
    "loop.strategy": "entropy",
    "loop.batch_to_add": BATCH,
    "training.finetune_epochs": 1,
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny model, corpus and a state folder whose first batch is pending."""
    base = tmp_path_factory.mktemp("ls_backend")
    corpus = write_tiny_corpus(base / "corpus")
    model = train_tiny_tagger(base / "model", max_epochs=10)
    settings = backend_settings(base / "state", corpus, model)
    NerBackend(settings)  # first use: selects batch 1
    return {"corpus": corpus, "model": model, "state": base / "state"}


def backend_settings(state: Path, corpus: dict[str, Path], model: Path, **values: Any):
    return BackendSettings(
        state_dir=state,
        pool=corpus["gold"],
        cheap=corpus["cheap"],
        dev=corpus["dev"],
        model=model,
        overrides=dict(OVERRIDES),
        **values,
    )


class Served:
    def __init__(self, backend: NerBackend) -> None:
        self.backend = backend
        self.server = make_backend_server(backend, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None):
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served(prepared, tmp_path):
    state = Path(shutil.copytree(prepared["state"], tmp_path / "state"))
    backend = NerBackend(
        backend_settings(state, prepared["corpus"], prepared["model"], fit_after=0)
    )
    server = Served(backend)
    yield server
    server.close()


def gold_by_id() -> dict[int, Doc]:
    return meta.by_sent_id(gold_docs(40))


def event(task_id: int, annotation_id: int, sent_id: int, result=None, **annotation):
    """An ANNOTATION_CREATED event as Label Studio sends it (the gold entities by default)."""
    doc = gold_by_id()[sent_id]
    if result is None:
        result = [label_studio_result(ent, i) for i, ent in enumerate(doc.ents)]
    return {
        "action": "ANNOTATION_CREATED",
        "annotation": {"id": annotation_id, "result": result, "completed_by": 1, **annotation},
        "task": {"id": task_id, "data": {"text": doc.text, "sent_id": sent_id}},
        "project": {"id": 1},
    }


def pending_ids(backend: NerBackend) -> list[int]:
    return json.loads((backend.state_dir / STATE_FILE).read_text())["pending"]["selected_ids"]


def test_health_and_setup(served: Served) -> None:
    assert served.call("GET", "/health") == (
        200,
        {"status": "UP", "model_class": "nerloop", "model_version": "start", "fit": None},
    )
    config = label_studio_config(load_scheme())
    assert served.call("POST", "/setup", {"project": "1.1", "schema": config}) == (
        200,
        {"model_version": "start"},
    )
    status, answer = served.call("POST", "/setup", {"schema": label_studio_config(["PER"])})
    assert status == 400
    assert "missing ['LOC', 'ORG', 'MISC']" in answer["error"]
    status, answer = served.call("POST", "/setup", {"schema": "<View><Text/>"})
    assert status == 400 and "not valid XML" in answer["error"]
    assert served.call("GET", "/nowhere")[0] == 404
    assert served.call("GET", "/predict")[0] == 405


def test_predict_scores_each_entity_by_its_tokens(served: Served, prepared) -> None:
    docs = [gold_by_id()[i] for i in (0, 1, 2, 3)]
    tasks = [
        {"id": 10 + i, "data": {"text": d.text, "tokens": [t.text for t in d]}}
        for i, d in enumerate(docs)
    ]
    status, answer = served.call("POST", "/predict", {"tasks": tasks, "project": "1.1"})
    assert status == 200 and answer["model_version"] == "start"
    nlp = load_pipeline(prepared["model"])
    predicted, probs = predict_with_probs(nlp, docs, progress=False)
    index = {name: i for i, name in enumerate(tagger_of(nlp).tag_names)}
    assert len(answer["results"]) == len(docs)
    for pred, doc_probs, prediction in zip(predicted, probs, answer["results"], strict=True):
        assert prediction["model_version"] == "start"
        assert prediction["score"] == round(float(doc_probs.max(axis=1).min()), 6)
        expected = []
        for i, ent in enumerate(pred.ents):
            tags = [index[tag] for tag in doc_to_iob2(pred)[ent.start : ent.end]]
            score = float(numpy.mean(doc_probs[numpy.arange(ent.start, ent.end), tags]))
            expected.append({**label_studio_result(ent, i), "score": round(score, 6)})
        assert prediction["result"] == expected
    assert any(p["result"] for p in answer["results"])
    assert all(r["from_name"] == "label" and r["to_name"] == "text" for r in expected)
    status, answer = served.call("POST", "/predict", {"tasks": [{"id": 3, "data": {}}]})
    assert status == 400 and answer["error"] == "task 3 has no 'data.text' string to tag"


def test_webhook_refuses_what_it_cannot_use_and_records_nothing(served: Served) -> None:
    events = served.backend.folder / EVENTS_FILE
    first = pending_ids(served.backend)[0]
    doc = gold_by_id()[first]
    bad_label = [
        {
            **label_studio_result(doc[0:1], 0),
            "value": {**label_studio_result(doc[0:1], 0)["value"], "labels": ["DRUG"]},
        }
    ]
    refused = [
        ({"raw": b"{not json"}, 400, "the body is not JSON"),
        ({"body": {"annotation": {}}}, 400, "a webhook event is a JSON object with an 'action'"),
        ({"body": {"action": "ANNOTATION_CREATED", "task": {}}}, 400, "needs 'annotation' and"),
        ({"body": event(5, 50, first, result=bad_label)}, 422, "'DRUG'"),
        ({"body": event(5, 50, 39 if first != 39 else 38)}, 404, "not a sentence of the pending"),
    ]
    no_sent_id = event(5, 50, first)
    del no_sent_id["task"]["data"]["sent_id"]
    refused.append(({"body": no_sent_id}, 404, "has no integer data.sent_id"))
    for request, status, fragment in refused:
        got_status, answer = served.call(
            "POST", "/webhook", request.get("body"), request.get("raw")
        )
        assert got_status == status, answer
        assert fragment in answer["error"]
    assert not events.exists()
    assert served.call("POST", "/webhook", {"action": "PROJECT_UPDATED"}) == (
        200,
        {"status": "ignored", "action": "PROJECT_UPDATED"},
    )
    assert served.call("POST", "/webhook", event(5, 50, first)) == (
        200,
        {"status": "recorded", "annotation_id": 50, "new": 1},
    )
    assert len(events.read_text().splitlines()) == 1


def test_two_concurrent_fits_train_once(served: Served) -> None:
    backend = served.backend
    batch = pending_ids(backend)
    for i, sent_id in enumerate(batch):
        assert served.call("POST", "/webhook", event(100 + i, 200 + i, sent_id))[0] == 200
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: results.append(backend.fit("test"))) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["status"] for r in results) == ["nothing new", "trained"]
    trained = next(r for r in results if r["status"] == "trained")
    assert trained["checkpoint"] == f"active_iter_1_added_{BATCH}"
    assert sorted(trained["added_ids"]) == sorted(batch)
    checkpoints = backend.state_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("*.json")) == [
        "active_iter_0_added_0.json",
        f"active_iter_1_added_{BATCH}.json",
    ]
    record = json.loads((backend.folder / RECORD_FILE).read_text())
    assert record["consumed_annotation_ids"] == [200, 201, 202]
    assert [fit["dev_f1"] for fit in record["fits"]] == [trained["dev"]["f1"]]
    assert served.call("GET", "/health")[1]["model_version"] == trained["checkpoint"]
    assert served.call("POST", "/setup", {})[1] == {"model_version": trained["checkpoint"]}
    assert set(pending_ids(backend)).isdisjoint(batch) and len(pending_ids(backend)) == BATCH
    status, answer = served.call("POST", "/webhook", event(100, 203, batch[0]))
    assert status == 409 and "was trained on in an earlier fit" in answer["error"]
    assert backend.fit("again") == {"status": "nothing new", "iteration": 2}


def test_killed_fit_changes_nothing(served: Served, prepared) -> None:
    backend = served.backend
    for i, sent_id in enumerate(pending_ids(backend)):
        served.call("POST", "/webhook", event(100 + i, 200 + i, sent_id))
    state_file = backend.state_dir / STATE_FILE
    before = {path: path.read_bytes() for path in (state_file, backend.folder / EVENTS_FILE)}
    checkpoints_before = sorted(p.name for p in (backend.state_dir / "checkpoints").glob("*"))
    corpus = prepared["corpus"]
    overrides = [x for key, value in OVERRIDES.items() for x in (f"--{key}", str(value))]
    command = [sys.executable, "-m", "scripts.ls_backend", "fit", str(backend.state_dir)]
    command += ["--pool", str(corpus["gold"]), "--cheap", str(corpus["cheap"])]
    command += ["--dev", str(corpus["dev"]), *overrides]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    answers = backend.folder / "answers_iter_1.json"
    deadline = time.monotonic() + 60
    while not answers.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert answers.exists()
    assert {path: path.read_bytes() for path in before} == before
    assert not (backend.folder / RECORD_FILE).exists()
    manifests = sorted(p.name for p in (backend.state_dir / "checkpoints").glob("*.json"))
    assert manifests == sorted(n for n in checkpoints_before if n.endswith(".json"))
    assert served.call("GET", "/health")[1]["model_version"] == "start"
    result = backend.fit("after the kill")  # run again: it trains on the same answers once
    assert result["status"] == "trained" and result["annotation_ids"] == [200, 201, 202]


def test_api_key_only_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(LabelStudioError, match=r"\$LABEL_STUDIO_API_KEY is not set"):
        api_key_from_env()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "secret-key-123")
    client = LabelStudioClient.from_env("http://127.0.0.1:9")
    assert "secret-key-123" not in repr(client)
    with pytest.raises(LabelStudioError) as err:
        client.project(1)
    assert "cannot reach Label Studio" in str(err.value)
    assert "secret-key-123" not in str(err.value)
