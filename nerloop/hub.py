"""Active-learning checkpoints, kept locally and, when configured, on the Hugging Face Hub.

A *checkpoint* is a spaCy pipeline folder named by a branch name such as
``active_iter_1_added_10``. The local store is a folder of checkpoints, one sub-folder per branch.
With a Hub repo configured (:class:`HubSettings`) and a token in the environment (``HF_TOKEN`` by
default; the variable's name is configurable), every checkpoint saved is also pushed to its own
branch of that repo (``create_repo(exist_ok=True)``, ``create_branch(exist_ok=True)``,
``upload_folder(revision=branch)``), and recorded in the store's ``hub_manifest.json``.

:func:`load_checkpoint` takes a repo and a branch and returns the pipeline, whether the repo is
a local store folder or a Hub repo id (``snapshot_download(repo_id, revision=branch)``).

The endpoint is ``HF_ENDPOINT`` or an argument (tests point it at a fake Hub on loopback). The
token is read from the environment only, sent in the Authorization header and never written:
not in the manifest, the logs, the error messages (masked) or the download cache.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from spacy.language import Language
from wasabi import msg

from nerloop.errors import NerloopError
from nerloop.eval.pipeline import load_pipeline
from nerloop.io_utils import atomic_path, atomic_write_json
from nerloop.redact import redact

logger = logging.getLogger(__name__)

DEFAULT_TOKEN_ENV = "HF_TOKEN"
DEFAULT_ENDPOINT = "https://huggingface.co"
MANIFEST_NAME = "hub_manifest.json"
_BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_ENDPOINT_LOCK = threading.Lock()


class HubStoreError(NerloopError, RuntimeError):
    """A checkpoint could not be stored, pushed or loaded."""


class HubTokenMissingError(HubStoreError):
    """A Hub repo is configured but its token is not in the environment."""


class HubAuthError(HubStoreError):
    """The Hub refused the token (401) or its permissions (403)."""


class HubNameError(NerloopError, ValueError):
    """A Hub repo id or a checkpoint branch name that cannot be used."""


class CheckpointNotFoundError(HubStoreError):
    """No checkpoint under that branch (Hub 404, or no such folder in the local store)."""


@dataclass(frozen=True)
class HubSettings:
    """Where checkpoints are pushed.

    repo_id (str): ``namespace/name`` of a model repo (created when missing).
    token_env (str): Environment variable holding a write token.
    endpoint (Optional[str]): Hub URL (default: ``HF_ENDPOINT``, else huggingface.co).
    private (bool): Create the repo private (an existing repo keeps its visibility).
    """

    repo_id: str
    token_env: str = DEFAULT_TOKEN_ENV
    endpoint: str | None = None
    private: bool = True

    def __post_init__(self) -> None:
        if self.repo_id.count("/") != 1 or not all(self.repo_id.split("/")):
            raise HubNameError(f"a Hub repo id is 'namespace/name', not {self.repo_id!r}")


def resolve_endpoint(endpoint: str | None = None) -> str:
    """The Hub URL: the argument, else ``HF_ENDPOINT``, else huggingface.co."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def public_endpoint(endpoint: str) -> str:
    """The endpoint without any user:password part, fit for a manifest or a log."""
    parts = urlsplit(endpoint)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def read_token(token_env: str = DEFAULT_TOKEN_ENV, required: bool = True) -> str | None:
    """The token in ``$token_env``; a HubTokenMissingError when required and unset."""
    token = os.environ.get(token_env, "").strip() or None
    if token is None and required:
        raise HubTokenMissingError(
            f"a Hugging Face Hub repo is configured but the environment variable {token_env} "
            "holds no token: export a token with write access to the repo "
            f"(https://huggingface.co/settings/tokens) as {token_env}, or configure no repo"
        )
    return token


def check_branch(branch: str) -> str:
    """A branch name that is also a safe folder name, or a HubNameError (a ValueError)."""
    if not _BRANCH.match(branch) or ".." in branch or branch.endswith((".lock", ".")):
        raise HubNameError(
            f"invalid checkpoint branch name {branch!r}: use letters, digits, '.', '_' and '-' "
            "(e.g. active_iter_1_added_10)"
        )
    return branch


@contextlib.contextmanager
def _default_endpoint(url: str) -> Iterator[None]:
    """Make ``url`` huggingface_hub's default endpoint while a call runs.

    huggingface_hub 0.36 threads an ``endpoint`` argument through most calls, but parses the
    commit URL that ``create_commit`` returns against its import-time default (``HF_ENDPOINT``),
    so an endpoint given as an argument fails there; setting the default for the call fixes it.
    Only for uploads: ``hf_hub_url`` (downloads) swaps in its ``endpoint`` argument by prefix
    matching against that same default, which must then stay the import-time one.
    """
    from huggingface_hub import constants

    with _ENDPOINT_LOCK:
        previous = constants.ENDPOINT
        constants.ENDPOINT = url
        try:
            yield
        finally:
            constants.ENDPOINT = previous


def _hub_error(
    err: Exception,
    action: str,
    repo_id: str,
    branch: str,
    endpoint: str,
    token: str | None,
    token_env: str | None = None,
) -> HubStoreError:
    """A HubStoreError that says what went wrong in words, with the token masked."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{branch} on {public_endpoint(endpoint)}"
    holder = f"${token_env}" if token_env else "the environment"
    detail = redact(str(err).strip().splitlines()[0] if str(err).strip() else repr(err), token)
    status = getattr(getattr(err, "response", None), "status_code", None)
    if isinstance(err, RevisionNotFoundError):
        return CheckpointNotFoundError(
            f"cannot {action} {where}: the repo has no branch {branch!r} (404)"
        )
    if isinstance(err, RepositoryNotFoundError):
        access = (
            f"not visible with the token in {holder}"
            if token
            else f"private (no token was sent: a private repo needs one in {holder})"
        )
        return CheckpointNotFoundError(
            f"cannot {action} {where}: repository {repo_id!r} not found, or {access} ({status})"
        )
    if isinstance(err, HfHubHTTPError) and status == 401:
        return HubAuthError(
            f"cannot {action} {where}: the Hub rejected the token (401 Unauthorized): check that "
            f"the token in {holder} is valid and not expired"
        )
    if isinstance(err, HfHubHTTPError) and status == 403:
        return HubAuthError(
            f"cannot {action} {where}: the token in {holder} lacks permission (403 Forbidden): "
            "it needs write access to the repo"
        )
    if isinstance(err, LocalEntryNotFoundError):
        return HubStoreError(f"cannot {action} {where}: the Hub could not be reached ({detail})")
    return HubStoreError(f"cannot {action} {where}: {detail}")


def _hub_errors() -> tuple[type[Exception], ...]:
    import requests
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    return (HfHubHTTPError, LocalEntryNotFoundError, requests.RequestException)


def push_checkpoint(
    folder: Path,
    repo_id: str,
    branch: str,
    token: str,
    endpoint: str | None = None,
    private: bool = True,
    commit_message: str | None = None,
    token_env: str | None = None,
) -> dict[str, Any]:
    """Upload a pipeline folder to its own branch of a Hub repo (repo and branch made if missing).

    folder (Path): spaCy pipeline folder (with config.cfg).
    repo_id (str): ``namespace/name``.
    branch (str): The branch, e.g. ``active_iter_1_added_10``.
    token (str): A write token.
    endpoint (Optional[str]): Hub URL (default: ``HF_ENDPOINT``, else huggingface.co).
    private (bool): Visibility of a repo created here.
    commit_message (Optional[str]): Default: ``Checkpoint <branch>``.
    token_env (Optional[str]): Where the token came from, named in error messages.
    RETURNS (dict): The push record: repo_id, branch, commit, commit_url, endpoint, n_files,
        pushed_at (no token).
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    check_branch(branch)
    if not (folder / "config.cfg").exists():
        raise HubStoreError(f"{folder} is not a spaCy pipeline folder (no config.cfg)")
    if not token:
        raise HubTokenMissingError(f"pushing to {repo_id} needs a token")
    url = resolve_endpoint(endpoint)
    api = HfApi(endpoint=url, token=token)
    try:
        with _default_endpoint(url):
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            api.create_branch(repo_id, branch=branch, repo_type="model", exist_ok=True)
            info = api.upload_folder(
                folder_path=folder,
                repo_id=repo_id,
                repo_type="model",
                revision=branch,
                commit_message=commit_message or f"Checkpoint {branch}",
            )
    except _hub_errors() as err:
        raise _hub_error(err, "push to", repo_id, branch, url, token, token_env) from None
    record = {
        "repo_id": repo_id,
        "branch": branch,
        "commit": info.oid,
        "commit_url": redact(public_endpoint(info.commit_url), token),
        "endpoint": public_endpoint(url),
        "n_files": sum(1 for path in folder.rglob("*") if path.is_file()),
        "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    logger.info("pushed %s to %s@%s (commit %s)", folder, repo_id, branch, info.oid)
    return record


def push_to_hub(folder: Path, branch: str, hub: HubSettings) -> dict[str, Any]:
    """Push a pipeline folder to ``branch`` of the configured repo, token from the environment.

    The hook for a loop that keeps its own checkpoint folders (e.g. ``scripts/al/checkpoints.py``):
    call it after a checkpoint is written.
    """
    token = read_token(hub.token_env, required=True)
    return push_checkpoint(
        folder, hub.repo_id, branch, token, hub.endpoint, hub.private, token_env=hub.token_env
    )


class CheckpointPusher:
    """The active learning loop's ``on_checkpoint`` hook: each finished checkpoint is pushed to
    its own branch of the configured repo.

    What is on the Hub is recorded in ``record_path`` (JSON, no token), so a loop resumed after
    an interruption or a failed push first pushes the finished checkpoints still missing there
    (:meth:`catch_up`) and never pushes one twice. The token is checked when the pusher is made,
    before any training.
    """

    def __init__(self, hub: HubSettings, record_path: Path | str) -> None:
        read_token(hub.token_env, required=True)
        self.hub = hub
        self.record_path = Path(record_path)

    def _records(self) -> dict[str, dict[str, Any]]:
        if not self.record_path.exists():
            return {}
        return json.loads(self.record_path.read_text(encoding="utf8"))

    def pushed(self) -> dict[str, dict[str, Any]]:
        """Branch -> push record, for this repo."""
        records = self._records()
        return {name: r for name, r in records.items() if r.get("repo_id") == self.hub.repo_id}

    def __call__(self, folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
        branch = manifest["checkpoint"]
        record = push_to_hub(Path(folder), branch, self.hub)
        records = self._records()
        records[branch] = record
        atomic_write_json(self.record_path, records)
        msg.info(f"pushed {branch} to {self.hub.repo_id}@{branch}")
        return record

    def catch_up(self, folders: dict[str, Path]) -> list[str]:
        """Push the finished checkpoints (name -> pipeline folder) not yet on the Hub, in order;
        a checkpoint whose folder was pruned is skipped with a warning."""
        done = self.pushed()
        pushed = []
        for name, folder in folders.items():
            if name in done:
                continue
            if not (Path(folder) / "config.cfg").exists():
                msg.warn(f"{name} was never pushed and its folder {folder} is gone (pruned)")
                continue
            self(Path(folder), {"checkpoint": name})
            pushed.append(name)
        return pushed


def hub_cache_dir(cache_dir: Path | str | None = None) -> Path:
    """The download cache: the argument, else ``HF_HUB_CACHE``, else ``$HF_HOME/hub``.

    Read when called (huggingface_hub reads its own defaults once, at import).
    """
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "huggingface"
    )
    return Path(home) / "hub"


def download_checkpoint(
    repo_id: str,
    branch: str,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: Path | str | None = None,
    token_env: str | None = None,
) -> Path:
    """Download one branch of a Hub repo into the cache; the snapshot folder.

    token (Optional[str]): Sent when given (private repos); no other token is used.
    token_env (Optional[str]): Where the token came from, named in error messages.
    """
    import requests
    from huggingface_hub import HfApi, snapshot_download

    check_branch(branch)
    url = resolve_endpoint(endpoint)
    try:
        # snapshot_download falls back to a cached copy on *any* failure to reach the branch,
        # a rejected token included; only an unreachable Hub should fall back
        HfApi(endpoint=url, token=token or False).repo_info(
            repo_id, revision=branch, repo_type="model"
        )
    except (requests.ConnectionError, requests.Timeout):
        logger.warning("the Hub at %s cannot be reached: trying the cache", public_endpoint(url))
    except _hub_errors() as err:
        raise _hub_error(err, "download", repo_id, branch, url, token, token_env) from None
    try:
        path = snapshot_download(
            repo_id,
            revision=branch,
            repo_type="model",
            endpoint=url,
            token=token or False,
            cache_dir=hub_cache_dir(cache_dir),
        )
    except _hub_errors() as err:
        raise _hub_error(err, "download", repo_id, branch, url, token, token_env) from None
    return Path(path)


def is_local_store(repo: str | Path) -> bool:
    """Whether ``repo`` is a local checkpoint store (an existing folder), not a Hub repo id."""
    return Path(repo).is_dir()


def load_checkpoint(
    repo: str | Path,
    branch: str,
    token_env: str = DEFAULT_TOKEN_ENV,
    endpoint: str | None = None,
    cache_dir: Path | str | None = None,
) -> Language:
    """The pipeline saved under ``branch``, from a local store folder or a Hub repo alike.

    repo (Union[str, Path]): A local checkpoint store (existing folder) or a Hub repo id.
    branch (str): The checkpoint's branch name.
    token_env (str): Environment variable with the token for a private Hub repo (optional).
    endpoint (Optional[str]): Hub URL (default: ``HF_ENDPOINT``, else huggingface.co).
    cache_dir (Optional[Path]): Download cache (default: ``HF_HUB_CACHE`` or ``$HF_HOME/hub``).
    RETURNS (Language): The loaded pipeline.
    """
    if is_local_store(repo):
        return HubCheckpointStore(Path(repo)).load(branch)
    token = read_token(token_env, required=False)
    path = download_checkpoint(str(repo), branch, token, endpoint, cache_dir, token_env)
    return load_pipeline(path)


class HubCheckpointStore:
    """A folder of checkpoints named by branch, mirrored to a Hub repo when one is configured.

    The layout (``<root>/<branch>/``, a pipeline folder each) is the one of the active-learning
    loop's ``checkpoints/`` folder, so :func:`load_checkpoint` reads either.

    root (Path): The store folder (created when missing).
    hub (Optional[HubSettings]): Push every saved checkpoint there. The token is checked here,
        so a missing token stops a run before its first training, not after it.
    """

    def __init__(self, root: Path | str, hub: HubSettings | None = None) -> None:
        self.root = Path(root)
        self.hub = hub
        if hub is not None:
            read_token(hub.token_env, required=True)

    def __repr__(self) -> str:
        where = f", hub={self.hub.repo_id!r}" if self.hub else ""
        return f"HubCheckpointStore({str(self.root)!r}{where})"

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def path(self, branch: str) -> Path:
        return self.root / check_branch(branch)

    def branches(self) -> list[str]:
        """The branches with a checkpoint in the local store."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and (p / "config.cfg").exists()
        )

    def manifest(self) -> dict[str, Any]:
        """Push records by branch (empty when nothing was pushed)."""
        if not self.manifest_path.exists():
            return {}
        return json.loads(self.manifest_path.read_text(encoding="utf8"))

    def save(self, nlp: Language, branch: str) -> Path:
        """Write ``nlp`` as the checkpoint ``branch`` (atomically), then push it if configured."""
        target = self.path(branch)
        with atomic_path(target) as tmp:
            nlp.to_disk(tmp)
        logger.info("saved checkpoint %s", target)
        if self.hub is not None:
            self.push(branch)
        return target

    def add(self, folder: Path | str, branch: str) -> Path:
        """Copy an existing pipeline folder in as the checkpoint ``branch``, then push it."""
        folder = Path(folder)
        if not (folder / "config.cfg").exists():
            raise HubStoreError(f"{folder} is not a spaCy pipeline folder (no config.cfg)")
        target = self.path(branch)
        with atomic_path(target) as tmp:
            shutil.copytree(folder, tmp)
        if self.hub is not None:
            self.push(branch)
        return target

    def push(self, branch: str) -> dict[str, Any]:
        """Push the local checkpoint ``branch`` to the configured repo and record it."""
        if self.hub is None:
            raise HubStoreError(f"{self!r} has no Hub repo configured")
        folder = self.path(branch)
        if not (folder / "config.cfg").exists():
            raise CheckpointNotFoundError(self._missing(branch))
        record = push_to_hub(folder, branch, self.hub)
        manifest = self.manifest()
        manifest[branch] = record
        atomic_write_json(self.manifest_path, dict(sorted(manifest.items())))
        return record

    def load(self, branch: str) -> Language:
        """The checkpoint ``branch`` from the local store."""
        folder = self.path(branch)
        if not (folder / "config.cfg").exists():
            raise CheckpointNotFoundError(self._missing(branch))
        return load_pipeline(folder)

    def _missing(self, branch: str) -> str:
        known = ", ".join(self.branches()) or "none"
        return f"no checkpoint {branch!r} in {self.root} (checkpoints: {known})"


def materialize(source: Path, output: Path) -> Path:
    """Copy a pipeline folder (following the cache's symlinks) to ``output`` atomically."""
    with atomic_path(output) as tmp:
        shutil.copytree(source, tmp, symlinks=False)
    return output


def pull_checkpoint(
    repo: str,
    branch: str,
    output: Path,
    token_env: str = DEFAULT_TOKEN_ENV,
    endpoint: str | None = None,
    cache_dir: Path | str | None = None,
) -> Path:
    """Copy the checkpoint ``branch`` of a local store folder or a Hub repo to the pipeline
    folder ``output`` (no symlinks into the cache) and check that it loads.

    repo (str): a local checkpoint store (existing folder) or a Hub repo id.
    branch (str): the checkpoint's branch name.
    output (Path): the pipeline folder to write.
    token_env (str): environment variable with the token for a private Hub repo (optional).
    endpoint (Optional[str]): Hub URL (default: ``HF_ENDPOINT``, else huggingface.co).
    cache_dir (Optional[Path]): download cache (default: ``HF_HUB_CACHE`` or ``$HF_HOME/hub``).
    RETURNS (Path): ``output``.
    """
    if is_local_store(repo):
        store = HubCheckpointStore(Path(repo))
        source = store.path(branch)
        if not (source / "config.cfg").exists():
            raise CheckpointNotFoundError(store._missing(branch))
    else:
        token = read_token(token_env, required=False)
        source = download_checkpoint(repo, branch, token, endpoint, cache_dir, token_env)
    materialize(source, output)
    load_pipeline(output)
    return output
