"""A small client for the Label Studio REST API (the calls the ML backend and its tests make).

The API key is read from the environment only (``LABEL_STUDIO_API_KEY`` by default) and lives in
this object's memory: it is never written to a file, put in an error message or logged. Two kinds
of key work (https://labelstud.io/guide/access_tokens):

- a personal access token (a JWT, Label Studio's default since 1.18): exchanged for a short-lived
  access token at ``/api/token/refresh`` and sent as ``Authorization: Bearer ...``;
- a legacy token (``label-studio start --enable-legacy-api-token``, or an organisation that
  enabled them): sent as ``Authorization: Token ...``.

The standard library's ``urllib`` is enough for these few JSON calls, so nothing is added to the
pinned environment.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from nerloop.errors import NerloopError

logger = logging.getLogger(__name__)

API_KEY_ENV = "LABEL_STUDIO_API_KEY"
URL_ENV = "LABEL_STUDIO_URL"
TIMEOUT_SECONDS = 60.0
PAGE_SIZE = 100


class LabelStudioError(NerloopError, RuntimeError):
    """A Label Studio API call that failed; the message names the call and the answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


def api_key_from_env(name: str = API_KEY_ENV) -> str:
    """The API key from the environment variable ``name``; a LabelStudioError when unset.

    name (str): The environment variable holding the key (never the key itself).
    RETURNS (str): The key.
    """
    key = os.environ.get(name, "").strip()
    if not key:
        raise LabelStudioError(
            f"${name} is not set: export the Label Studio API key (Account & Settings -> "
            "Personal Access Token) in the environment; it is never read from a file or option"
        )
    return key


def _is_jwt(key: str) -> bool:
    parts = key.split(".")
    return len(parts) == 3 and all(parts)


class LabelStudioClient:
    """Calls to one Label Studio server.

    url (str): The server, e.g. ``http://127.0.0.1:8080``.
    api_key (str): A personal access token or a legacy token (see the module docstring).
    timeout (float): Seconds per request.
    """

    def __init__(self, url: str, api_key: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        self._access: str | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"LabelStudioClient({self.url!r})"

    @classmethod
    def from_env(cls, url: str | None = None, key_env: str = API_KEY_ENV) -> LabelStudioClient:
        """A client for ``url`` (default ``$LABEL_STUDIO_URL``) with the key from ``key_env``."""
        url = url or os.environ.get(URL_ENV)
        if not url:
            raise LabelStudioError(f"give the Label Studio URL (--label-studio-url or ${URL_ENV})")
        return cls(url, api_key_from_env(key_env))

    # -- HTTP ----------------------------------------------------------------------------------

    def _authorization(self, refresh: bool = False) -> str:
        if not _is_jwt(self._api_key):
            return f"Token {self._api_key}"
        if self._access is None or refresh:
            answer = self._send("POST", "/api/token/refresh", {"refresh": self._api_key}, None)
            self._access = answer["access"]
        return f"Bearer {self._access}"

    def _send(self, method: str, path: str, body: Any, authorization: str | None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf8")
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if authorization is not None:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:500].decode("utf8", "replace")
            raise LabelStudioError(
                f"Label Studio answered {err.code} to {method} {path}: {detail}", err.code
            ) from None
        except (urllib.error.URLError, OSError) as err:
            raise LabelStudioError(f"cannot reach Label Studio at {self.url}: {err}") from None
        return json.loads(raw) if raw.strip() else None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One API call with the key; the JSON answer (None for an empty one)."""
        try:
            return self._send(method, path, body, self._authorization())
        except LabelStudioError as err:
            if err.status != 401 or not _is_jwt(self._api_key):
                raise
            return self._send(method, path, body, self._authorization(refresh=True))

    # -- the calls -----------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        """``/api/version`` (no key needed)."""
        return self._send("GET", "/api/version", None, None)

    def create_project(self, title: str, label_config: str, **fields: Any) -> dict[str, Any]:
        """A new project with this labeling config (``fields``: other project settings)."""
        return self.request(
            "POST", "/api/projects", {"title": title, "label_config": label_config, **fields}
        )

    def project(self, project_id: int) -> dict[str, Any]:
        return self.request("GET", f"/api/projects/{project_id}")

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        return self.request("PATCH", f"/api/projects/{project_id}", fields)

    def connect_ml_backend(
        self, project_id: int, url: str, title: str = "nerloop", **fields: Any
    ) -> dict[str, Any]:
        """Add an ML backend at ``url`` to the project (Label Studio calls /health, /setup and
        adds a webhook to ``url/webhook`` for every action)."""
        body = {"url": url, "project": project_id, "title": title, **fields}
        return self.request("POST", "/api/ml", body)

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        """Import tasks in this order (their ids increase in it); RETURNS the new task ids."""
        answer = self.request(
            "POST", f"/api/projects/{project_id}/import?return_task_ids=true", list(tasks)
        )
        return list(answer.get("task_ids") or [])

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations and predictions, by id."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            query = urllib.parse.urlencode(
                {"project": project_id, "fields": "all", "page": page, "page_size": PAGE_SIZE}
            )
            try:
                answer = self.request("GET", f"/api/tasks?{query}")
            except LabelStudioError as err:
                if err.status == 404 and page > 1:  # past the last page
                    break
                raise
            batch = answer.get("tasks", []) if isinstance(answer, dict) else answer
            found.extend(batch)
            if len(batch) < PAGE_SIZE:
                break
            page += 1
        return sorted(found, key=lambda task: task["id"])

    def task(self, task_id: int) -> dict[str, Any]:
        return self.request("GET", f"/api/tasks/{task_id}")

    def delete_task(self, task_id: int) -> None:
        self.request("DELETE", f"/api/tasks/{task_id}")

    def create_annotation(
        self, task_id: int, result: list[dict[str, Any]], **fields: Any
    ) -> dict[str, Any]:
        """Submit an annotation of a task, as the labeling UI does."""
        return self.request(
            "POST", f"/api/tasks/{task_id}/annotations", {"result": result, **fields}
        )

    def update_annotation(self, annotation_id: int, **fields: Any) -> dict[str, Any]:
        return self.request("PATCH", f"/api/annotations/{annotation_id}", fields)

    def retrieve_predictions(self, project_id: int) -> dict[str, Any]:
        """Ask the connected ML backend for predictions of every task lacking the backend's
        current model version (the Data Manager's "Retrieve Predictions" action)."""
        query = urllib.parse.urlencode({"id": "retrieve_tasks_predictions", "project": project_id})
        body = {"selectedItems": {"all": True, "excluded": []}}
        return self.request("POST", f"/api/dm/actions?{query}", body)

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """The project's JSON export (what ``Export -> JSON`` downloads)."""
        return self.request("GET", f"/api/projects/{project_id}/export?exportType=JSON")
