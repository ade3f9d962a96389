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

from pathlib import Path

import typer
from wasabi import msg

from nerloop.eval.pipeline import load_pipeline
from nerloop.hub import (
    DEFAULT_TOKEN_ENV,
    CheckpointNotFoundError,
    HubCheckpointStore,
    HubStoreError,
    download_checkpoint,
    is_local_store,
    materialize,
    push_checkpoint,
    read_token,
)

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def push(
    checkpoint: Path = typer.Argument(..., help="spaCy pipeline folder to push"),
    branch: str = typer.Argument(..., help="Branch name, e.g. active_iter_1_added_10"),
    repo: str = typer.Option(..., "--repo", help="Hub repo id, namespace/name"),
    token_env: str = typer.Option(DEFAULT_TOKEN_ENV, help="Environment variable with the token"),
    endpoint: str | None = typer.Option(None, help="Hub URL (default: HF_ENDPOINT or hf.co)"),
    public: bool = typer.Option(False, "--public", help="Create the repo public, not private"),
) -> None:
    """Push a checkpoint to its own branch of a Hub repo."""
    try:
        token = read_token(token_env, required=True)
        record = push_checkpoint(
            checkpoint, repo, branch, token, endpoint, private=not public, token_env=token_env
        )
    except (HubStoreError, ValueError) as err:
        msg.fail(str(err), exits=1)
    msg.good(f"Pushed {checkpoint} to {repo}@{branch} (commit {record['commit']})")


@app.command()
def pull(
    repo: str = typer.Argument(..., help="Hub repo id, or a local checkpoint store folder"),
    branch: str = typer.Argument(..., help="Branch (checkpoint) name"),
    output: Path = typer.Argument(..., help="Pipeline folder to write"),
    token_env: str = typer.Option(DEFAULT_TOKEN_ENV, help="Environment variable with the token"),
    endpoint: str | None = typer.Option(None, help="Hub URL (default: HF_ENDPOINT or hf.co)"),
    cache_dir: Path | None = typer.Option(None, help="Download cache (default: HF_HOME/hub)"),
) -> None:
    """Fetch a checkpoint from a Hub repo branch (or a local store) into a pipeline folder."""
    try:
        if is_local_store(repo):
            source = HubCheckpointStore(Path(repo)).path(branch)
            if not (source / "config.cfg").exists():
                raise CheckpointNotFoundError(HubCheckpointStore(Path(repo))._missing(branch))
        else:
            token = read_token(token_env, required=False)
            source = download_checkpoint(repo, branch, token, endpoint, cache_dir, token_env)
        materialize(source, output)
        load_pipeline(output)
    except (HubStoreError, ValueError) as err:
        msg.fail(str(err), exits=1)
    msg.good(f"Fetched {repo}@{branch} to {output}")


if __name__ == "__main__":
    app()
