"""A Label Studio ML backend that serves the active learning loop's current model.

Label Studio talks to an ML backend over a small JSON-over-HTTP contract
(https://labelstud.io/guide/ml_create, label-studio-ml's ``_wsgi.py``): ``GET /health``,
``POST /setup`` (answers the ``model_version``), ``POST /predict`` (``{"tasks": [...]}`` ->
``{"results": [one prediction per task]}``), ``POST /webhook`` (the project's events, and
``START_TRAINING`` from the UI's "Start Training" button) and ``POST /train``. It is implemented
here with the standard library (``wsgiref``) rather than the ``label-studio-ml`` package: its
release on PyPI pins Flask 1.1.2, Jinja2 3.0.3 and Werkzeug 2.0.2, which would downgrade the
Jinja2 and Werkzeug of our pinned environment (requirements.txt), for five routes of JSON.

The backend runs on a human-loop state folder (``nerloop.al.human``) and keeps its own records
in ``STATE/labelstudio/``::

    events.jsonl           every ANNOTATION_CREATED/UPDATED (and ANNOTATIONS_DELETED) event that
                           was accepted, one JSON line each, append-only
    backend.json           the annotation ids each fit consumed, the fits, and the Label Studio
                           task id of every sentence imported per iteration (written atomically)
    answers_iter_{i}.json  the Label Studio export a fit built from the events of iteration i
    fit.lock               held (flock) while a fit runs, by this or any other process

- ``/predict`` tags each task's text (its ``tokens`` when they spell the text) with the served
  pipeline: ``labels`` results whose ``from_name``/``to_name`` are the labeling config's
  (``nerloop.formats.common.label_studio_config``), each with a ``score``, the mean over the
  entity's tokens of the probability of the tag predicted there; the prediction's ``score`` is the
  least confident token's top-tag probability (what Label Studio's uncertainty sampling sorts
  by), its ``model_version`` the served checkpoint's name (``start`` for the start model).
- ``/webhook`` checks an annotation event against the pending batch before recording it: a
  malformed event is a 400, a task that is not one of the pending batch's sentences a 404 (409
  when its sentence was already trained on), an unknown label or a span off token boundaries a
  422; nothing is recorded then.
- ``fit`` (after ``fit_after`` new answers, on ``/train``, ``START_TRAINING`` or
  ``scripts/ls_backend.py fit``) builds the pending batch's export from the events, runs one
  ``nerloop.al.human.update_from_config`` (import, warm fine-tuning, dev F1, checkpoint
  ``active_iter_{i}_added_{n}``), records the consumed annotation ids, selects the next batch
  (``select_from_config``), switches the served model and, with a Label Studio project, imports
  the new batch in the strategy's order (task ids increase in it, so "Sequential sampling" shows
  the most informative sentence first; ``data.priority`` is its rank and ``data.uncertainty`` the
  strategy's score, both sortable columns of the Data Manager) with the new model's predictions.
  Tasks of the trained batch that got no answer go back to the pool and are deleted from the
  project (they may be selected again). A fit holds ``fit.lock``: a second fit waits and then
  finds no new answers, so no answer is trained on twice. A fit that fails or is killed leaves
  the served model, ``state.json`` and the finished checkpoints as they were (``update`` commits
  with ``state.json`` last; checkpoints are written atomically); it is simply run again.

The Label Studio API key comes from the environment only (``nerloop.labelstudio.client``); the
``access_token`` that ``/setup`` receives is never stored, and request bodies are never logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from xml.etree import ElementTree

import numpy
from spacy.tokens import Doc
from spacy.vocab import Vocab

from nerloop.al.checkpoints import NAME_PATTERN
from nerloop.al.human import (
    iteration_dir,
    model_path,
    read_state,
    select_from_config,
    update_from_config,
)
from nerloop.al.settings import DEFAULT_CONFIG
from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.eval.metrics import doc_to_iob2
from nerloop.eval.pipeline import load_pipeline, predict_with_probs, tagger_of
from nerloop.formats.common import FROM_NAME, LABEL_STUDIO, TO_NAME, label_studio_result
from nerloop.formats.importing import ExpertTask, ImportProblem, _label_studio_spans, check_spans
from nerloop.io_utils import atomic_write_json, read_docbin
from nerloop.labels import LabelScheme, as_scheme
from nerloop.labelstudio.client import API_KEY_ENV, LabelStudioClient

logger = logging.getLogger(__name__)

BACKEND_DIR = "labelstudio"
EVENTS_FILE = "events.jsonl"
RECORD_FILE = "backend.json"
LOCK_FILE = "fit.lock"
ANSWER_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
DELETE_ACTION = "ANNOTATIONS_DELETED"
TRAIN_ACTION = "START_TRAINING"
START_VERSION = "start"
MAX_BODY_BYTES = 64 * 1024 * 1024


class BackendError(NerloopError, ValueError):
    """A request the backend refuses; ``status`` is the HTTP status it answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


def model_version_of(path: Path, start_model: Path | None = None) -> str:
    """The name Label Studio shows for a model: the checkpoint name, ``start`` for the human
    loop's start model, else the folder's name."""
    path = Path(path)
    if NAME_PATTERN.match(path.name):
        return path.name
    if start_model is not None and path.resolve() == Path(start_model).resolve():
        return START_VERSION
    return path.name


def labeling_config_labels(config_xml: str, from_name: str, to_name: str) -> list[str]:
    """The ``<Label>`` values of the ``<Labels name=from_name toName=to_name>`` tag of a
    labeling config; a BackendError (400) when the config has no such tag."""
    try:
        root = ElementTree.fromstring(config_xml)
    except ElementTree.ParseError as err:
        raise BackendError(f"the labeling config is not valid XML: {err}") from None
    for tag in root.iter("Labels"):
        if tag.get("name") == from_name and tag.get("toName") == to_name:
            return [label.get("value", "") for label in tag.iter("Label")]
    raise BackendError(
        f"the labeling config has no <Labels name={from_name!r} toName={to_name!r}>: use the "
        "config nerloop writes (labelstudio_config.xml, nerloop.formats.common)"
    )


class ServedModel:
    """A loaded pipeline and the predictions Label Studio gets from it.

    path (Path): The pipeline folder.
    version (str): Its model_version.
    scheme (LabelScheme): The labels of the labeling config (the model's must be among them).
    """

    def __init__(
        self,
        path: Path,
        version: str,
        scheme: LabelScheme,
        from_name: str = FROM_NAME,
        to_name: str = TO_NAME,
    ) -> None:
        self.path = Path(path)
        self.version = version
        self.scheme = scheme
        self.from_name = from_name
        self.to_name = to_name
        self.nlp = load_pipeline(self.path)
        tagger = tagger_of(self.nlp)
        self.tag_index = {name: i for i, name in enumerate(tagger.tag_names)}
        labels = sorted({name[2:] for name in tagger.tag_names if name[:2] in ("B-", "I-")})
        unknown = [label for label in labels if label not in scheme]
        if unknown:
            raise BackendError(
                f"{self.path} predicts labels {unknown} that the label scheme does not offer "
                f"({', '.join(scheme.labels)}): serve it with the scheme it was trained with",
                500,
            )
        self._lock = threading.Lock()

    def task_doc(self, task: Any, position: int) -> Doc:
        """The Doc of a task: its ``data.tokens`` when they spell ``data.text``, else the
        pipeline's tokenizer on the text."""
        data = task.get("data") if isinstance(task, dict) else None
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str):
            where = task.get("id", f"#{position}") if isinstance(task, dict) else f"#{position}"
            raise BackendError(f"task {where} has no 'data.text' string to tag")
        tokens = data.get("tokens")
        if (
            isinstance(tokens, list)
            and tokens
            and all(isinstance(t, str) and t for t in tokens)
            and " ".join(tokens) == text
        ):
            return Doc(self.nlp.vocab, words=tokens, spaces=[True] * (len(tokens) - 1) + [False])
        return self.nlp.make_doc(text)

    def predict_docs(self, docs: Sequence[Doc]) -> list[dict[str, Any]]:
        """One Label Studio prediction per Doc (see the module docstring for the scores)."""
        with self._lock:
            predicted, probs = predict_with_probs(self.nlp, docs, progress=False)
        predictions = []
        for pred, doc_probs in zip(predicted, probs, strict=True):
            tags = [self.tag_index[tag] for tag in doc_to_iob2(pred)]
            picked = doc_probs[numpy.arange(len(tags)), tags] if tags else numpy.zeros(0)
            result = []
            for i, ent in enumerate(pred.ents):
                item = label_studio_result(ent, i, self.from_name, self.to_name)
                item["score"] = round(float(picked[ent.start : ent.end].mean()), 6)
                result.append(item)
            confidence = float(doc_probs.max(axis=1).min()) if len(pred) else 1.0
            predictions.append(
                {"model_version": self.version, "score": round(confidence, 6), "result": result}
            )
        return predictions

    def predict(self, tasks: Sequence[Any]) -> list[dict[str, Any]]:
        """One prediction per Label Studio task, in order."""
        return self.predict_docs([self.task_doc(task, i) for i, task in enumerate(tasks)])


@dataclass
class BackendSettings:
    """What the backend serves and how it fits.

    state_dir (Path): The human-loop state folder (``nerloop.al.human``).
    pool (Optional[Path]): DocBin the batches are chosen from (needed to fit).
    cheap (Optional[Path]): Cheap DocBin the expert sentences are mixed into (needed to fit).
    dev (Optional[Path]): Gold dev DocBin every checkpoint is scored on (needed to fit).
    model (Optional[Path]): The start model (first use of ``state_dir``); without pool, cheap
        and dev, the model served as it is (predictions only).
    config_path (Path): Active learning settings (``configs/al.cfg``).
    overrides (Dict[str, Any]): ``--section.key value`` overrides of those settings.
    labels (Optional[Path]): The label scheme file (None: the default scheme).
    fit_after (Optional[int]): Fit once this many tasks of the pending batch have new answers
        (None: when every task of the batch has; 0: only on request).
    project_id (Optional[int]): The Label Studio project the batches are imported into.
    label_studio_url (Optional[str]): Its server (default ``$LABEL_STUDIO_URL``).
    api_key_env (str): The environment variable holding the API key.
    """

    state_dir: Path
    pool: Path | None = None
    cheap: Path | None = None
    dev: Path | None = None
    model: Path | None = None
    config_path: Path = DEFAULT_CONFIG
    overrides: dict[str, Any] = field(default_factory=dict)
    labels: Path | None = None
    fit_after: int | None = None
    project_id: int | None = None
    label_studio_url: str | None = None
    api_key_env: str = API_KEY_ENV

    @property
    def can_fit(self) -> bool:
        return None not in (self.pool, self.cheap, self.dev)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class NerBackend:
    """The ML backend: the served model, the event log and the fits of one state folder.

    settings (BackendSettings): What to serve and how to fit.
    client (Optional[LabelStudioClient]): The Label Studio server of ``settings.project_id``
        (default: one from the environment when a project id is given).
    """

    def __init__(self, settings: BackendSettings, client: LabelStudioClient | None = None) -> None:
        self.settings = settings
        self.state_dir = Path(settings.state_dir)
        self.folder = self.state_dir / BACKEND_DIR
        self.scheme = as_scheme(settings.labels)
        if client is None and settings.project_id is not None:
            client = LabelStudioClient.from_env(settings.label_studio_url, settings.api_key_env)
        self.client = client
        self._events_lock = threading.Lock()
        self._fit_thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self.last_fit: dict[str, Any] | None = None
        self._selected: dict[int, dict[int, Doc]] = {}
        self.folder.mkdir(parents=True, exist_ok=True)
        self._start()
        self.served = self._load_current()

    # -- state --------------------------------------------------------------------------------

    def _start(self) -> None:
        """Start the human loop on first use, or choose the next batch a killed fit left."""
        if not self.settings.can_fit:
            if read_state(self.state_dir) is None and self.settings.model is None:
                raise BackendError(
                    f"{self.state_dir} has no state.json: give --model (and --pool, --cheap, "
                    "--dev to fit)",
                    500,
                )
            return
        state = read_state(self.state_dir)
        if state is None or state["pending"] is None:
            model = self.settings.model if state is None else None
            select_from_config(
                self.state_dir,
                self.settings.pool,
                self.settings.config_path,
                self.settings.overrides,
                model=model,
                labels=self.scheme,
                progress=False,
            )

    def _load_current(self) -> ServedModel:
        state = read_state(self.state_dir)
        if state is None:
            path, start = Path(self.settings.model), None
        else:
            path, start = model_path(self.state_dir, state), Path(state["start_model"])
        return ServedModel(path, model_version_of(path, start), self.scheme)

    def record(self) -> dict[str, Any]:
        """``backend.json``: consumed annotation ids, fits, imported batches."""
        path = self.folder / RECORD_FILE
        if not path.exists():
            return {"consumed_annotation_ids": [], "fits": [], "batches": {}}
        return json.loads(path.read_text(encoding="utf8"))

    def _write_record(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.folder / RECORD_FILE, record)

    def _pending(self) -> dict[str, Any] | None:
        state = read_state(self.state_dir)
        return None if state is None else state["pending"]

    def selected_docs(self, iteration: int) -> dict[int, Doc]:
        """sent_id -> Doc of an iteration's selected batch."""
        if iteration not in self._selected:
            path = iteration_dir(self.state_dir, iteration) / "selected.spacy"
            self._selected[iteration] = meta.by_sent_id(read_docbin(path, Vocab()))
        return self._selected[iteration]

    # -- events -------------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """The recorded events, oldest first (a line cut by a crash is skipped)."""
        path = self.folder / EVENTS_FILE
        if not path.exists():
            return []
        found = []
        for number, line in enumerate(path.read_text(encoding="utf8").splitlines(), 1):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s line %d is not JSON (cut by a crash?): skipped", path, number)
        return found

    def _append_event(self, event: dict[str, Any]) -> None:
        path = self.folder / EVENTS_FILE
        line = json.dumps(event, ensure_ascii=False) + "\n"
        with self._events_lock, path.open("a", encoding="utf8") as handle:
            handle.write(line)
            handle.flush()

    def _answers(self, iteration: int) -> dict[int, dict[str, Any]]:
        """Latest state of every unconsumed annotation of an iteration's tasks, by id."""
        consumed = set(self.record()["consumed_annotation_ids"])
        deleted: set[int] = set()
        latest: dict[int, dict[str, Any]] = {}
        for event in self.events():
            if event["action"] == DELETE_ACTION:
                deleted.update(event["annotation_ids"])
            elif event["iteration"] == iteration and event["annotation_id"] not in consumed:
                latest[event["annotation_id"]] = event
        return {key: value for key, value in latest.items() if key not in deleted}

    def new_answers(self, iteration: int | None = None) -> int:
        """How many tasks of the pending batch have a new (unconsumed, not skipped) answer."""
        if iteration is None:
            pending = self._pending()
            if pending is None:
                return 0
            iteration = pending["iteration"]
        answers = self._answers(iteration).values()
        return len({e["task_id"] for e in answers if not e["annotation"]["was_cancelled"]})

    def webhook(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """Check and record one Label Studio event (see the module docstring)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("action"), str):
            raise BackendError("a webhook event is a JSON object with an 'action' string")
        action = payload["action"]
        if action == TRAIN_ACTION:
            started = self.start_fit("START_TRAINING")
            return 200, {"status": "fit started" if started else "a fit is running"}
        if action == DELETE_ACTION:
            ids = [_as_int(a.get("id")) for a in payload.get("annotations") or [] if a]
            if not ids or None in ids:
                raise BackendError("ANNOTATIONS_DELETED needs 'annotations': [{'id': int}, ...]")
            self._append_event(
                {"received_at": time.time(), "action": action, "annotation_ids": ids}
            )
            return 200, {"status": "recorded", "annotation_ids": ids}
        if action not in ANSWER_ACTIONS:
            return 200, {"status": "ignored", "action": action}
        event = self._checked_answer(payload)
        self._append_event(event)
        new = self.new_answers(event["iteration"])
        answer = {"status": "recorded", "annotation_id": event["annotation_id"], "new": new}
        fit_after = self.settings.fit_after
        if fit_after is None:
            fit_after = len(self.selected_docs(event["iteration"]))
        if self.settings.can_fit and fit_after and new >= fit_after:
            answer["fit_started"] = self.start_fit(f"{new} new answers")
        return 200, answer

    def _checked_answer(self, payload: dict[str, Any]) -> dict[str, Any]:
        action = payload["action"]
        annotation, task = payload.get("annotation"), payload.get("task")
        if not isinstance(annotation, dict) or not isinstance(task, dict):
            raise BackendError(f"{action} needs 'annotation' and 'task' objects")
        annotation_id, task_id = _as_int(annotation.get("id")), _as_int(task.get("id"))
        data = task.get("data")
        if annotation_id is None or task_id is None or not isinstance(data, dict):
            raise BackendError(f"{action} needs an integer annotation.id, task.id and task.data")
        if not isinstance(annotation.get("result"), list):
            raise BackendError(f"annotation {annotation_id}: 'result' must be a list")
        sent_id = _as_int(data.get(meta.SENT_ID))
        if sent_id is None:
            raise BackendError(
                f"task {task_id} has no integer data.{meta.SENT_ID}: it is not a sentence that "
                "nerloop imported, and cannot be trained on",
                404,
            )
        state = read_state(self.state_dir)
        pending = state["pending"] if state else None
        if sent_id in (state or {}).get("labelled_ids", []):
            raise BackendError(
                f"task {task_id} (sent_id {sent_id}) was trained on in an earlier fit: its new "
                "answer cannot be used",
                409,
            )
        if pending is None or sent_id not in pending["selected_ids"]:
            where = f"iteration {pending['iteration']}" if pending else "no batch is pending"
            raise BackendError(
                f"task {task_id} (sent_id {sent_id}) is not a sentence of the pending batch "
                f"({where})",
                404,
            )
        iteration = pending["iteration"]
        doc = self.selected_docs(iteration)[sent_id]
        text = data.get("text")
        if text != doc.text:
            raise BackendError(
                f"task {task_id} (sent_id {sent_id}): its text {str(text)[:60]!r} differs from "
                f"the selected sentence {doc.text[:60]!r}",
                422,
            )
        cancelled = bool(annotation.get("was_cancelled", False))
        if not cancelled:
            problems: list[ImportProblem] = []
            expert = ExpertTask(str(task_id), sent_id, text)
            expert.spans = _label_studio_spans(
                annotation["result"],
                str(task_id),
                sent_id,
                self.served.from_name,
                self.served.to_name,
                problems,
            )
            check_spans(expert, doc, self.scheme, problems)
            if problems:
                lines = "; ".join(str(problem) for problem in problems)
                raise BackendError(f"annotation {annotation_id} was not recorded: {lines}", 422)
        user = annotation.get("completed_by")
        if isinstance(user, dict):
            user = user.get("id", user.get("email"))
        return {
            "received_at": time.time(),
            "action": action,
            "annotation_id": annotation_id,
            "task_id": task_id,
            meta.SENT_ID: sent_id,
            "iteration": iteration,
            "annotation": {
                "id": annotation_id,
                "result": annotation["result"],
                "was_cancelled": cancelled,
                "completed_by": user,
                "created_at": annotation.get("created_at"),
                "updated_at": annotation.get("updated_at"),
            },
        }

    # -- fit ----------------------------------------------------------------------------------

    def export_from_events(self, iteration: int) -> tuple[list[dict[str, Any]], list[int]]:
        """A Label Studio JSON export of the iteration's batch built from the recorded answers
        (every selected sentence is a task; those without an answer have no annotations), and
        the annotation ids it holds."""
        answers = self._answers(iteration)
        by_sent: dict[int, dict[int, list[dict[str, Any]]]] = {}
        for event in answers.values():
            by_sent.setdefault(event[meta.SENT_ID], {}).setdefault(event["task_id"], []).append(
                event["annotation"]
            )
        imported = self.record()["batches"].get(str(iteration), {})
        tasks = []
        for sent_id, doc in self.selected_docs(iteration).items():
            data = {"text": doc.text, meta.SENT_ID: sent_id, "tokens": [t.text for t in doc]}
            found = by_sent.get(sent_id) or {imported.get(str(sent_id), f"sent{sent_id}"): []}
            for task_id, task_answers in found.items():
                tasks.append({"id": task_id, "data": data, "annotations": task_answers})
        return tasks, sorted(answers)

    def fit(self, reason: str = "on request") -> dict[str, Any]:
        """One active learning update from the recorded answers, then the next batch.

        reason (str): Why (recorded with the fit).
        RETURNS (dict): ``status`` ("trained" or "nothing new"), and for a fit the checkpoint,
            its dev scores, the consumed annotation ids and the next batch's sent_ids.
        """
        if not self.settings.can_fit:
            raise BackendError(
                "this backend serves a model without fitting: start it with --pool, --cheap "
                "and --dev",
                409,
            )
        with _file_lock(self.folder / LOCK_FILE):
            pending = self._pending()
            if pending is None:
                self._start()
                pending = self._pending()
            iteration = pending["iteration"]
            if not self.new_answers(iteration):
                return {"status": "nothing new", "iteration": iteration}
            tasks, annotation_ids = self.export_from_events(iteration)
            answers_path = atomic_write_json(self.folder / f"answers_iter_{iteration}.json", tasks)
            logger.info("fit %d (%s): %d annotations", iteration, reason, len(annotation_ids))
            manifest = update_from_config(
                self.state_dir,
                answers_path,
                LABEL_STUDIO,
                self.settings.cheap,
                self.settings.dev,
                self.settings.config_path,
                self.settings.overrides,
                labels=self.scheme,  # imports are checked against the served scheme
                progress=False,
            )
            record = self.record()
            record["consumed_annotation_ids"] = sorted(
                set(record["consumed_annotation_ids"]) | set(annotation_ids)
            )
            fit = {
                "iteration": iteration,
                "reason": reason,
                "checkpoint": manifest["checkpoint"],
                "dev_f1": manifest["dev"]["f1"],
                "annotation_ids": annotation_ids,
                "added_ids": manifest["added_ids"],
                "skipped": manifest["skipped"],
            }
            record["fits"].append(fit)
            self._write_record(record)
            self._start()  # the next batch
            served = self._load_current()
            self.served = served  # the switch: only after the checkpoint and state are written
            result = {"status": "trained", **fit, "dev": manifest["dev"]}
            result["next_batch"] = self._pending()["selected_ids"]
            if self.client is not None:
                self._drop_unanswered(iteration, manifest["added_ids"])
                self.push_pending()
            return result

    def start_fit(self, reason: str) -> bool:
        """Run ``fit`` in a background thread (Label Studio waits on its webhook calls);
        RETURNS False when one is running already. Its result or error is ``last_fit``."""
        with self._thread_lock:
            if self._fit_thread is not None and self._fit_thread.is_alive():
                return False

            def run() -> None:
                try:
                    self.last_fit = self.fit(reason)
                except Exception as err:  # reported on /health; the served model is unchanged
                    logger.exception("fit failed")
                    self.last_fit = {"status": "failed", "error": f"{type(err).__name__}: {err}"}

            self.last_fit = {"status": "running", "reason": reason}
            self._fit_thread = threading.Thread(target=run, name="nerloop-fit", daemon=True)
            self._fit_thread.start()
            return True

    def wait_for_fit(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Wait for the background fit (if any); RETURNS ``last_fit``."""
        thread = self._fit_thread
        if thread is not None:
            thread.join(timeout)
        return self.last_fit

    # -- Label Studio project -----------------------------------------------------------------

    def pending_tasks(self) -> list[dict[str, Any]]:
        """The pending batch as Label Studio tasks, in the strategy's order, with the served
        model's predictions, ``data.priority`` (1 = first) and ``data.uncertainty``."""
        pending = self._pending()
        if pending is None:
            return []
        iteration = pending["iteration"]
        docs = self.selected_docs(iteration)
        order = [row[meta.SENT_ID] for row in pending["selected"]]
        scores = {row[meta.SENT_ID]: row["score"] for row in pending["selected"]}
        predictions = self.served.predict_docs([docs[i] for i in order]) if order else []
        return [
            {
                "data": {
                    "text": docs[sent_id].text,
                    meta.SENT_ID: sent_id,
                    "tokens": [t.text for t in docs[sent_id]],
                    "priority": rank,
                    "uncertainty": round(float(scores[sent_id]), 6),
                    "nerloop_iteration": iteration,
                },
                "predictions": [prediction],
            }
            for rank, (sent_id, prediction) in enumerate(zip(order, predictions), start=1)
        ]

    def push_pending(self) -> list[int]:
        """Import the pending batch into the project (the sentences it lacks), in order.

        RETURNS (List[int]): The batch's task ids, in the strategy's order.
        """
        if self.client is None or self.settings.project_id is None:
            raise BackendError("no Label Studio project: give --project-id", 409)
        pending = self._pending()
        if pending is None:
            return []
        iteration = pending["iteration"]
        project = self.settings.project_id
        existing = {
            _as_int(task["data"].get(meta.SENT_ID)): task["id"]
            for task in self.client.tasks(project)
            if _as_int(task["data"].get("nerloop_iteration")) == iteration
        }
        tasks = self.pending_tasks()
        missing = [t for t in tasks if t["data"][meta.SENT_ID] not in existing]
        if missing:
            new_ids = self.client.import_tasks(project, missing)
            existing.update(zip((t["data"][meta.SENT_ID] for t in missing), new_ids))
        record = self.record()
        record["batches"][str(iteration)] = {
            str(t["data"][meta.SENT_ID]): existing[t["data"][meta.SENT_ID]] for t in tasks
        }
        self._write_record(record)
        logger.info("imported %d tasks of iteration %d", len(missing), iteration)
        return [existing[t["data"][meta.SENT_ID]] for t in tasks]

    def _drop_unanswered(self, iteration: int, added_ids: Iterable[int]) -> None:
        added = set(added_ids)
        batch = self.record()["batches"].get(str(iteration), {})
        for sent_id, task_id in batch.items():
            if int(sent_id) not in added:
                self.client.delete_task(task_id)

    # -- the ML backend protocol --------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "status": "UP",
            "model_class": "nerloop",
            "model_version": self.served.version,
            "fit": self.last_fit,
        }

    def setup(self, payload: Any) -> dict[str, Any]:
        """Check the project's labeling config against the scheme; answer the model version."""
        if not isinstance(payload, dict):
            raise BackendError("/setup takes a JSON object")
        schema = payload.get("schema")
        if isinstance(schema, str) and schema.strip():
            labels = labeling_config_labels(schema, self.served.from_name, self.served.to_name)
            missing = [label for label in self.scheme.labels if label not in labels]
            extra = [label for label in labels if label not in self.scheme]
            if missing or extra:
                raise BackendError(
                    f"the project's labels {labels} differ from the label scheme's "
                    f"{list(self.scheme.labels)} (missing {missing}, unknown {extra}): create "
                    "the project with nerloop's labeling config"
                )
        return {"model_version": self.served.version}

    def predict(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or not isinstance(payload.get("tasks"), list):
            raise BackendError("/predict takes {'tasks': [...]}")
        served = self.served
        return {"results": served.predict(payload["tasks"]), "model_version": served.version}

    def train(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """``/train``: a fit in the background, or at once with ``{"wait": true}``."""
        if isinstance(payload, dict) and payload.get("wait") is True:
            return 200, self.fit("/train")
        started = self.start_fit("/train")
        return 202 if started else 409, {"status": "fit started" if started else "running"}

    def versions(self) -> dict[str, Any]:
        return {"versions": [fit["checkpoint"] for fit in self.record()["fits"]]}


# -- HTTP --------------------------------------------------------------------------------------

_STATUS = {
    200: "200 OK",
    202: "202 Accepted",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    409: "409 Conflict",
    413: "413 Payload Too Large",
    422: "422 Unprocessable Entity",
    500: "500 Internal Server Error",
}


def _read_json(environ: dict[str, Any]) -> Any:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BackendError("Content-Length is not a number") from None
    if length > MAX_BODY_BYTES:
        raise BackendError(f"the body is over {MAX_BODY_BYTES} bytes", 413)
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BackendError(f"the body is not JSON: {err}") from None


def make_app(backend: NerBackend) -> Callable[..., Iterable[bytes]]:
    """The WSGI app of the ML backend protocol around ``backend``."""
    routes: dict[tuple[str, str], Callable[[Any], tuple[int, Any]]] = {
        ("GET", "/"): lambda _: (200, backend.health()),
        ("GET", "/health"): lambda _: (200, backend.health()),
        ("GET", "/versions"): lambda _: (200, backend.versions()),
        ("POST", "/setup"): lambda body: (200, backend.setup(body)),
        ("POST", "/predict"): lambda body: (200, backend.predict(body)),
        ("POST", "/webhook"): backend.webhook,
        ("POST", "/train"): backend.train,
    }

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/").rstrip("/") or "/"
        try:
            handler = routes.get((method, path))
            if handler is None:
                known = sorted({p for _, p in routes})
                status = 405 if path in known else 404
                raise BackendError(f"{method} {path} is not a route (routes: {known})", status)
            status, answer = handler(_read_json(environ) if method == "POST" else None)
        except BackendError as err:
            status, answer = err.status, {"error": str(err)}
        except NerloopError as err:  # e.g. an answer file the human loop refuses
            status, answer = 409, {"error": str(err)}
        except Exception as err:  # a bug: logged with its traceback, answered without details
            logger.exception("%s %s failed", method, path)
            status, answer = 500, {"error": f"internal error ({type(err).__name__})"}
        body = json.dumps(answer).encode("utf8")
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response(_STATUS.get(status, f"{status} Error"), headers)
        return [body]

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        logger.info("%s %s", self.address_string(), format % args)  # method, path, status only


def make_backend_server(backend: NerBackend, host: str = "127.0.0.1", port: int = 9090):
    """A threaded HTTP server of the backend (``port`` 0: a free one; see ``server_port``)."""
    return make_server(
        host, port, make_app(backend), server_class=_ThreadingServer, handler_class=_QuietHandler
    )
