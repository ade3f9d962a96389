"""The ML backend against a real Label Studio server on loopback (from its own virtual
environment, made by ``.ci/labelstudio.sh``): a project with nerloop's labeling config, the
backend connected as its ML backend, pre-annotations stored, answers submitted through the API
(some accepting the pre-annotation, some correcting it) reaching the backend by webhook, a fit
started from Label Studio, the next batch imported with the new model's predictions, and the
project's JSON export read back by ``scripts.al_import`` to the same spans.

Skipped when the venv is missing or the server does not start, except with ``CI=true``, where
that is a failure."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from spacy.vocab import Vocab

from nerloop.corpus import meta
from nerloop.formats.common import label_studio_config, label_studio_result
from nerloop.io_utils import read_docbin
from nerloop.labels import load_scheme
from nerloop.labelstudio.backend import (
    BACKEND_DIR,
    BackendSettings,
    NerBackend,
    make_backend_server,
)
from nerloop.labelstudio.client import LabelStudioClient
from tests.tiny_corpus import gold_docs, write_tiny_corpus
from tests.tiny_tagger import train_tiny_tagger

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(
    os.environ.get(
        "NERLOOP_LABEL_STUDIO_VENV", Path.home() / ".cache" / "nerloop" / "labelstudio-venv"
    )
)
START_SECONDS = 150
BATCH = 3


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"Label Studio is needed in CI: {reason} (run .ci/labelstudio.sh)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory):
    binary = VENV / "bin" / "label-studio"
    if not binary.exists():
        unavailable(f"no Label Studio at {binary}")
    data = tmp_path_factory.mktemp("label_studio_data")
    token = secrets.token_hex(20)
    port = free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LABEL_STUDIO_USERNAME": "expert@example.com",
        "LABEL_STUDIO_PASSWORD": secrets.token_hex(8),
        "LABEL_STUDIO_USER_TOKEN": token,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        # the ML backend and its webhook are on loopback, which Label Studio blocks by default
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
    }
    env.pop("LABEL_STUDIO_API_KEY", None)
    log = (data / "server.log").open("w")
    process = subprocess.Popen(
        [str(binary), "start", "--host", "127.0.0.1", "--port", str(port), "--no-browser"],
        cwd=data,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_SECONDS
    up = False
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as response:
                up = response.status == 200
                break
        except OSError:
            time.sleep(1)
    try:
        if not up:
            tail = (data / "server.log").read_text()[-2000:]
            unavailable(f"Label Studio did not start on {url} in {START_SECONDS} s:\n{tail}")
        yield {"url": url, "token": token, "data": data}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def spans(result: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    return sorted(
        (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0])
        for r in result
        if r["type"] == "labels"
    )


def test_backend_in_a_real_label_studio(label_studio, tmp_path, monkeypatch, caplog) -> None:
    caplog.set_level("INFO")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio["token"])
    client = LabelStudioClient(label_studio["url"], label_studio["token"])
    assert client.version()["release"]
    config = label_studio_config(load_scheme())
    project = client.create_project("nerloop", config, sampling="Sequential sampling")["id"]

    corpus = write_tiny_corpus(tmp_path / "corpus")
    model = train_tiny_tagger(tmp_path / "model", max_epochs=10)
    state = tmp_path / "state"
    settings = BackendSettings(
        state_dir=state,
        pool=corpus["gold"],
        cheap=corpus["cheap"],
        dev=corpus["dev"],
        model=model,
        overrides={"loop.batch_to_add": BATCH, "training.finetune_epochs": 1},
        fit_after=0,
        project_id=project,
        label_studio_url=label_studio["url"],
    )
    backend = NerBackend(settings)
    server = make_backend_server(backend, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    backend_url = f"http://127.0.0.1:{server.server_port}"
    try:
        batch_ids = backend.push_pending()
        ml = client.connect_ml_backend(project, backend_url, title="nerloop")
        assert ml["state"] == "CO", ml  # connected: /health and /setup answered

        # Label Studio asks the backend (/predict) for a task imported without predictions
        extra = gold_docs(40)[39]
        (extra_id,) = client.import_tasks(project, [{"data": {"text": extra.text}}])
        client.retrieve_predictions(project)
        stored = client.task(extra_id)["predictions"]
        expected = backend.served.predict([{"data": {"text": extra.text}}])[0]
        assert [(p["model_version"], spans(p["result"])) for p in stored] == [
            ("start", spans(expected["result"]))
        ]
        assert stored[0]["score"] == pytest.approx(expected["score"])
        client.delete_task(extra_id)

        tasks = {task["id"]: task for task in client.tasks(project)}
        assert sorted(tasks) == batch_ids  # imported in the strategy's order
        assert [tasks[i]["data"]["priority"] for i in batch_ids] == list(range(1, BATCH + 1))
        assert all(tasks[i]["predictions"][0]["model_version"] == "start" for i in batch_ids)

        gold = meta.by_sent_id(gold_docs(40))
        submitted: dict[int, list[tuple[int, int, str]]] = {}
        for position, task_id in enumerate(batch_ids):
            task = tasks[task_id]
            sent_id = task["data"]["sent_id"]
            if position == 0:  # accepts the pre-annotation as it is
                result = task["predictions"][0]["result"]
            else:  # corrects it to the gold entities
                result = [label_studio_result(e, i) for i, e in enumerate(gold[sent_id].ents)]
            client.create_annotation(task_id, result, lead_time=3.5)
            submitted[sent_id] = spans(result)
        events = (state / BACKEND_DIR / "events.jsonl").read_text().splitlines()
        assert sorted(json.loads(line)["task_id"] for line in events) == batch_ids

        client.request("POST", f"/api/ml/{ml['id']}/train", {})  # the "Start Training" button
        fit = backend.wait_for_fit(120)  # the webhook started it in the background
        assert fit["status"] == "trained", fit
        checkpoint = f"active_iter_1_added_{BATCH}"
        assert fit["checkpoint"] == checkpoint
        assert (state / "checkpoints" / checkpoint / "config.cfg").exists()
        manifest = json.loads((state / "checkpoints" / f"{checkpoint}.json").read_text())
        assert manifest["dev"]["f1"] == fit["dev_f1"] and 0.0 <= fit["dev_f1"] <= 1.0
        assert backend.served.version == checkpoint

        tasks = {task["id"]: task for task in client.tasks(project)}
        new_ids = [i for i in sorted(tasks) if tasks[i]["data"]["nerloop_iteration"] == 2]
        assert [tasks[i]["data"]["sent_id"] for i in new_ids] == fit["next_batch"]
        assert all(tasks[i]["predictions"][0]["model_version"] == checkpoint for i in new_ids)
        assert min(new_ids) > max(batch_ids)

        export = [
            task for task in client.export(project) if task["data"].get("nerloop_iteration") == 1
        ]
        export_path = tmp_path / "export.json"
        export_path.write_text(json.dumps(export))
        out = tmp_path / "imported.spacy"
        command = [sys.executable, "-m", "scripts.al_import", str(export_path)]
        command += [str(state / "iter_1" / "selected.spacy"), str(out)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        imported = {
            meta.sent_id(doc): sorted((e.start_char, e.end_char, e.label_) for e in doc.ents)
            for doc in read_docbin(out, Vocab())
        }
        assert imported == submitted
        trained_on = read_docbin(state / "iter_1" / "answers.spacy", Vocab())
        assert {
            meta.sent_id(d): sorted((e.start_char, e.end_char, e.label_) for e in d.ents)
            for d in trained_on
        } == submitted
    finally:
        server.shutdown()
        server.server_close()
    token = label_studio["token"].encode()
    leaks = [p for p in state.rglob("*") if p.is_file() and token in p.read_bytes()]
    assert leaks == []
    assert label_studio["token"] not in caplog.text
