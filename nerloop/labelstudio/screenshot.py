"""A screenshot of Label Studio's labeling view showing nerloop's pre-annotations.

The picture in the docs (``docs/labelstudio_preannotations.png``) is taken from the real thing:
a Label Studio server started on loopback from its own virtual environment (``.ci/labelstudio.sh``)
with a throw-away data folder, a project with nerloop's labeling config for the label scheme
(``nerloop.formats.common.label_studio_config``), a few gold dev sentences imported as tasks with
the predictions a model makes for them (``nerloop.labelstudio.backend.ServedModel``, the ML
backend's own ``/predict`` code), and a headless Chromium driven by Playwright that logs in
through the login form, opens the first task's labeling view and waits until every predicted
region is drawn.

Playwright is not part of the pinned environment: it runs in a separate virtual environment
(``browser_python``, e.g. ``/tmp/shotvenv/bin/python`` after ``pip install playwright``) and
drives a Chromium binary (Debian's ``apt-get install chromium``, or ``playwright install
chromium``). The browser step is the small program ``BROWSER_PROGRAM`` run by that Python; it
reads its settings (the password included) as JSON on stdin, so nothing secret is on a command
line. The server, its data folder and the browser are gone when ``take_screenshot`` returns, and
the PNG is written atomically.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spacy.tokens import Doc
from spacy.vocab import Vocab

from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.formats.common import label_studio_config
from nerloop.io_utils import atomic_path, read_docbin
from nerloop.labels import LabelScheme, as_scheme
from nerloop.labelstudio.backend import ServedModel
from nerloop.labelstudio.client import LabelStudioClient

logger = logging.getLogger(__name__)

DEFAULT_VENV = Path.home() / ".cache" / "nerloop" / "labelstudio-venv"
VENV_ENV = "NERLOOP_LABEL_STUDIO_VENV"
START_SECONDS = 180.0
BROWSER_SECONDS = 240.0
USERNAME = "expert@example.com"

# Run by the browser venv's Python; only the standard library and playwright. The settings come
# as JSON on stdin: url, username, password, path (the page to open), regions (how many predicted
# regions to wait for), output, chromium (None: playwright's own), width, height, timeout_ms.
BROWSER_PROGRAM = r"""
import json, sys
from urllib.parse import urlsplit
from playwright.sync_api import sync_playwright

s = json.load(sys.stdin)
host = urlsplit(s["url"]).netloc
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=s["chromium"], args=["--no-sandbox"])
    try:
        page = browser.new_page(viewport={"width": s["width"], "height": s["height"]})
        page.set_default_timeout(s["timeout_ms"])
        # only the server itself: analytics, fonts or CDNs elsewhere would only stall the load
        page.route("**/*", lambda route: route.continue_()
                   if urlsplit(route.request.url).netloc in (host, "") else route.abort())
        page.goto(s["url"] + "/user/login/")
        page.fill("input[name=email]", s["username"])
        page.fill("input[name=password]", s["password"])
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/user/login" not in url)
        page.goto(s["url"] + s["path"])
        try:
            page.wait_for_function(
                "n => document.querySelectorAll('.htx-highlight').length >= n", arg=s["regions"]
            )
        except Exception:
            if s.get("failure"):  # what the page showed instead, to see why
                page.screenshot(path=s["failure"], type="png")
            raise
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1500)  # let the side panels and fonts settle
        page.screenshot(path=s["output"], type="png")
        drawn = page.eval_on_selector_all(".htx-highlight", "els => els.map(e => e.innerText)")
        print(json.dumps({"regions": drawn}))
    finally:
        browser.close()
"""


class ScreenshotError(NerloopError, RuntimeError):
    """A step of the screenshot that could not be done; the message says which and why."""


@dataclass
class LabelStudioServer:
    """A running Label Studio server: its URL and the login of its one user."""

    url: str
    username: str
    password: str
    token: str


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def label_studio_binary(venv: Path | None = None) -> Path:
    """``label-studio`` of ``venv`` (default ``$NERLOOP_LABEL_STUDIO_VENV`` or
    ``~/.cache/nerloop/labelstudio-venv``); a ScreenshotError when it is missing."""
    venv = Path(venv or os.environ.get(VENV_ENV) or DEFAULT_VENV)
    binary = venv / "bin" / "label-studio"
    if not binary.exists():
        raise ScreenshotError(f"no Label Studio at {binary}: run .ci/labelstudio.sh first")
    return binary


@contextmanager
def label_studio_server(
    binary: Path, data_dir: Path, start_seconds: float = START_SECONDS
) -> Iterator[LabelStudioServer]:
    """Start Label Studio on a free loopback port with its data in ``data_dir`` and one user
    with a fresh password and legacy API token; stop it (the whole process group) on exit.

    binary (Path): The ``label-studio`` executable.
    data_dir (Path): An empty folder for its database and files.
    start_seconds (float): How long to wait for ``/health``.
    YIELDS (LabelStudioServer): The URL and the login.
    """
    server = LabelStudioServer(
        url=f"http://127.0.0.1:{free_port()}",
        username=USERNAME,
        password=secrets.token_hex(8),
        token=secrets.token_hex(20),
    )
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": server.username,
        "LABEL_STUDIO_PASSWORD": server.password,
        "LABEL_STUDIO_USER_TOKEN": server.token,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
    }
    env.pop("LABEL_STUDIO_API_KEY", None)
    port = server.url.rsplit(":", 1)[1]
    log_path = data_dir / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(binary), "start", "--host", "127.0.0.1", "--port", port, "--no-browser"],
            cwd=data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + start_seconds
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text()[-2000:]
                    raise ScreenshotError(
                        f"Label Studio did not start on {server.url} in {start_seconds:.0f} s:"
                        f"\n{tail}"
                    )
                try:
                    with urllib.request.urlopen(server.url + "/health", timeout=5) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    time.sleep(1)
            logger.info("Label Studio is up on %s", server.url)
            yield server
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def example_docs(docs: Sequence[Doc], n_tasks: int, min_ents: int, max_tokens: int) -> list[Doc]:
    """The first ``n_tasks`` Docs with at least ``min_ents`` entities and at most
    ``max_tokens`` tokens, in corpus order; a ScreenshotError when there are fewer."""
    picked = [doc for doc in docs if len(doc.ents) >= min_ents and len(doc) <= max_tokens]
    if len(picked) < n_tasks:
        raise ScreenshotError(
            f"only {len(picked)} sentences have >= {min_ents} entities and <= {max_tokens} "
            f"tokens; {n_tasks} are needed"
        )
    return picked[:n_tasks]


def preannotated_tasks(docs: Sequence[Doc], model: ServedModel) -> list[dict[str, Any]]:
    """Label Studio tasks of ``docs`` with ``model``'s predictions, as the backend imports them
    (``data.text``, ``data.sent_id``; one prediction with its model_version and scores)."""
    predictions = model.predict_docs(docs)
    return [
        {
            "data": {"text": doc.text, meta.SENT_ID: doc.user_data.get(meta.SENT_ID)},
            "predictions": [prediction],
        }
        for doc, prediction in zip(docs, predictions, strict=True)
    ]


def run_browser(
    browser_python: Path,
    settings: dict[str, Any],
    timeout: float = BROWSER_SECONDS,
) -> dict[str, Any]:
    """Run ``BROWSER_PROGRAM`` with ``browser_python`` and ``settings`` on stdin; RETURNS what
    it printed (the drawn regions' texts)."""
    if not Path(browser_python).exists():
        raise ScreenshotError(
            f"no Python at {browser_python} for the browser: python -m venv /tmp/shotvenv && "
            "/tmp/shotvenv/bin/pip install playwright"
        )
    try:
        done = subprocess.run(
            [str(browser_python), "-c", BROWSER_PROGRAM],
            input=json.dumps(settings),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise ScreenshotError(f"the browser did not finish in {timeout:.0f} s") from None
    if done.returncode != 0:
        raise ScreenshotError(f"the browser step failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def take_screenshot(
    output: Path,
    dev: Path,
    model: Path,
    browser_python: Path,
    chromium: Path | None = None,
    labels: LabelScheme | Path | None = None,
    venv: Path | None = None,
    n_tasks: int = 3,
    min_ents: int = 3,
    max_tokens: int = 25,
    width: int = 1280,
    height: int = 800,
) -> dict[str, Any]:
    """Take the screenshot of the first task's labeling view and write it to ``output``.

    output (Path): The PNG to write (atomically).
    dev (Path): Gold DocBin the example sentences come from.
    model (Path): The pipeline whose predictions are the pre-annotations.
    browser_python (Path): Python of the venv that has playwright.
    chromium (Optional[Path]): The Chromium binary (None: playwright's own download).
    labels (Union[LabelScheme, Path, None]): The label scheme (None: the default).
    venv (Optional[Path]): Label Studio's venv (default: see ``label_studio_binary``).
    n_tasks (int): How many tasks to import.
    min_ents (int): Fewest gold entities of an example sentence.
    max_tokens (int): Most tokens of an example sentence.
    width (int): Viewport width in pixels.
    height (int): Viewport height in pixels.
    RETURNS (Dict[str, Any]): The project and task ids, the Label Studio release, the
        predicted regions imported and the regions the browser found drawn.
    """
    scheme = as_scheme(labels)
    binary = label_studio_binary(venv)
    if chromium is not None and not Path(chromium).exists():
        raise ScreenshotError(f"no Chromium at {chromium}: apt-get install -y chromium")
    served = ServedModel(Path(model), Path(model).name, scheme)
    docs = example_docs(read_docbin(dev, Vocab()), n_tasks, min_ents, max_tokens)
    tasks = preannotated_tasks(docs, served)
    with tempfile.TemporaryDirectory(prefix="nerloop-ls-shot-") as tmp:
        with label_studio_server(binary, Path(tmp)) as server:
            client = LabelStudioClient(server.url, server.token)
            release = client.version().get("release")
            project = client.create_project(
                "nerloop pre-annotations",
                label_studio_config(scheme),
                sampling="Sequential sampling",
                show_collab_predictions=True,
                model_version=served.version,
                reveal_preannotations_interactively=False,  # else: an empty annotation
            )["id"]
            task_ids = client.import_tasks(project, tasks)
            if len(task_ids) != len(tasks):
                raise ScreenshotError(f"imported {len(task_ids)} of {len(tasks)} tasks")
            first = tasks[0]["predictions"][0]["result"]
            failure = output.with_name(f"{output.stem}.failed.png")  # the page, when it fails
            with atomic_path(output) as tmp_png:
                found = run_browser(
                    browser_python,
                    {
                        "url": server.url,
                        "username": server.username,
                        "password": server.password,
                        "path": f"/projects/{project}/data?task={task_ids[0]}",
                        "regions": len(first),
                        "output": str(tmp_png),
                        "chromium": None if chromium is None else str(chromium),
                        "width": width,
                        "height": height,
                        "timeout_ms": 60_000,
                        "failure": str(failure),
                    },
                )
    predicted = [(r["value"]["text"], r["value"]["labels"][0]) for r in first]
    logger.info("wrote %s: %d predicted regions of task %d", output, len(predicted), task_ids[0])
    return {
        "release": release,
        "project": project,
        "task_ids": task_ids,
        "predicted": predicted,
        "drawn": found["regions"],
    }
