"""A fake Hugging Face Hub: a real HTTP server on 127.0.0.1, state in memory.

It answers exactly the endpoints that huggingface_hub 0.36's ``create_repo``, ``create_branch``,
``upload_folder`` (``create_commit``) and ``snapshot_download`` call:

- ``POST /api/repos/create`` (409 when the repo exists, as the Hub; ``exist_ok`` accepts it);
- ``POST /api/models/{repo}/branch/{branch}`` (409 when the branch exists);
- ``POST /api/models/{repo}/preupload/{revision}``: every file is ``regular``, so the commit
  carries it inline (base64) whatever its size and no LFS or Xet transfer is needed;
- ``POST /api/models/{repo}/commit/{revision}``: NDJSON (header, file, deletedFile,
  deletedFolder); an ``lfsFile`` is refused, since preupload never asks for one;
- ``GET /api/models/{repo}/revision/{revision}``: sha and siblings;
- ``HEAD``/``GET /{repo}/resolve/{revision}/{path}``: with ``ETag`` (git blob sha1),
  ``X-Repo-Commit`` and ``Content-Length``;
- ``POST /api/validate-yaml`` (called for a README.md).

Writes need a valid token; reads of a private repo too. A wrong token gets the Hub's 401 with
``X-Error-Message: Invalid credentials in Authorization header``; a missing repo, revision or
file gets 404 with ``X-Error-Code`` ``RepoNotFound``/``RevisionNotFound``/``EntryNotFound``.
Every request is recorded with its ``Authorization`` header, so a test can check that the token
was sent (and then that it was never written anywhere).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class RecordedRequest:
    method: str
    path: str
    authorization: str | None
    status: int = 0


@dataclass
class FakeRepo:
    repo_id: str
    private: bool
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # oid -> files
    branches: dict[str, str] = field(default_factory=dict)  # branch -> oid

    def commit(self, files: dict[str, bytes]) -> str:
        oid = hashlib.sha1(uuid.uuid4().bytes).hexdigest()
        self.commits[oid] = files
        return oid

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class FakeHub:
    """The server and its state. Use as a context manager; ``url`` is the endpoint.

    tokens (Iterable[str]): Tokens accepted (all with write access).
    """

    def __init__(self, tokens: tuple[str, ...] = ()) -> None:
        self.tokens = set(tokens)
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[RecordedRequest] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._server is not None, "start the FakeHub first (with FakeHub(...) as hub)"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- what tests look at -----------------------------------------------------------------

    def authorizations(self) -> set[str | None]:
        with self.lock:
            return {r.authorization for r in self.requests}

    def files(self, repo_id: str, branch: str) -> dict[str, bytes]:
        with self.lock:
            repo = self.repos[repo_id]
            return dict(repo.commits[repo.branches[branch]])

    # -- the Hub's logic --------------------------------------------------------------------

    def check_token(self, authorization: str | None, required: bool) -> None:
        if authorization is None:
            if required:
                raise _HubError(401, "Authorization header is required")
            return
        token = authorization.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise _HubError(401, INVALID_CREDENTIALS)

    def repo(self, repo_id: str, authorization: str | None, write: bool) -> FakeRepo:
        repo = self.repos.get(repo_id)
        if repo is None:
            raise _HubError(404, "Repository not found", "RepoNotFound")
        if repo.private and authorization is None:
            raise _HubError(401, "Repository not found", "RepoNotFound")
        return repo

    def create_repo(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        repo_id = (
            f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        )
        if repo_id in self.repos:
            return 409, {"error": "You already created this model repo", "url": self._url(repo_id)}
        repo = FakeRepo(repo_id, private=bool(body.get("private", False)))
        repo.branches["main"] = repo.commit({".gitattributes": b"*.bin filter=lfs\n"})
        self.repos[repo_id] = repo
        return 200, {"url": self._url(repo_id), "name": repo_id}

    def _url(self, repo_id: str) -> str:
        return f"{self.url}/{repo_id}"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass

    # -- plumbing ---------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        head: bool = False,
    ) -> None:
        body = (
            raw if raw is not None else json.dumps(payload if payload is not None else {}).encode()
        )
        self.send_response(status)
        if raw is None:
            self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self._record.status = status

    def _handle(self, method: str) -> None:
        authorization = self.headers.get("Authorization")
        path = urlsplit(self.path).path
        self._record = RecordedRequest(method, path, authorization)
        with self.fake.lock:
            self.fake.requests.append(self._record)
        body = self._body() if method == "POST" else b""
        try:
            with self.fake.lock:
                self._route(method, path, body, authorization)
        except _HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._send(err.status, {"error": err.message}, headers, head=method == "HEAD")

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    # -- routes -----------------------------------------------------------------------------

    def _route(self, method: str, path: str, body: bytes, authorization: str | None) -> None:
        fake = self.fake
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "POST" and parts == ["api", "repos", "create"]:
            fake.check_token(authorization, required=True)
            self._send(*fake.create_repo(json.loads(body or b"{}")))
        elif method == "POST" and parts == ["api", "validate-yaml"]:
            self._send(200, {})
        elif parts[:2] == ["api", "models"] and len(parts) >= 6:
            repo_id, action, revision = f"{parts[2]}/{parts[3]}", parts[4], "/".join(parts[5:])
            write = method == "POST"
            fake.check_token(authorization, required=write)
            repo = fake.repo(repo_id, authorization, write)
            if method == "POST" and action == "branch":
                self._create_branch(repo, revision, json.loads(body or b"{}"))
            elif method == "POST" and action == "preupload":
                self._preupload(repo, revision, json.loads(body or b"{}"))
            elif method == "POST" and action == "commit":
                self._commit(repo, revision, body)
            elif method == "GET" and action == "revision":
                self._revision_info(repo, revision)
            else:
                raise _HubError(404, f"no such endpoint {method} {path}")
        elif method in ("GET", "HEAD") and len(parts) >= 5 and parts[2] == "resolve":
            fake.check_token(authorization, required=False)
            repo = fake.repo(f"{parts[0]}/{parts[1]}", authorization, write=False)
            self._resolve(repo, parts[3], "/".join(parts[4:]), head=method == "HEAD")
        else:
            raise _HubError(404, f"no such endpoint {method} {path}")

    def _oid(self, repo: FakeRepo, revision: str) -> str:
        oid = repo.resolve(revision)
        if oid is None:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return oid

    def _create_branch(self, repo: FakeRepo, branch: str, body: dict[str, Any]) -> None:
        if branch in repo.branches:
            raise _HubError(409, f"Reference already exists: refs/heads/{branch}")
        repo.branches[branch] = self._oid(repo, body.get("startingPoint") or "main")
        self._send(200, {})

    def _preupload(self, repo: FakeRepo, revision: str, body: dict[str, Any]) -> None:
        self._oid(repo, revision)
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
            for f in body.get("files", [])
        ]
        self._send(200, {"files": files, "commitOid": repo.resolve(revision)})

    def _commit(self, repo: FakeRepo, revision: str, body: bytes) -> None:
        if revision not in repo.branches:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        files = dict(repo.commits[repo.branches[revision]])
        for line in body.decode("utf8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: c for p, c in files.items() if not p.startswith(prefix)}
            elif key != "header":
                raise _HubError(400, f"the fake Hub does not accept {key!r} operations")
        oid = repo.commit(files)
        repo.branches[revision] = oid
        self._send(
            200,
            {
                "commitUrl": f"{self.fake.url}/{repo.repo_id}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": None,
            },
        )

    def _revision_info(self, repo: FakeRepo, revision: str) -> None:
        oid = self._oid(repo, revision)
        self._send(
            200,
            {
                "_id": repo.repo_id,
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": oid,
                "private": repo.private,
                "siblings": [{"rfilename": path} for path in sorted(repo.commits[oid])],
            },
        )

    def _resolve(self, repo: FakeRepo, revision: str, path: str, head: bool) -> None:
        oid = self._oid(repo, revision)
        files = repo.commits[oid]
        if path not in files:
            self._send(
                404,
                {"error": "Entry not found"},
                {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": oid},
                head=head,
            )
            return
        content = files[path]
        headers = {"ETag": f'"{git_blob_sha1(content)}"', "X-Repo-Commit": oid}
        self._send(200, headers=headers, raw=content, head=head)
