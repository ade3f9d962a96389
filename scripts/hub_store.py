"""Push an active-learning checkpoint to its own branch of a Hugging Face Hub repo, or pull
one (from the Hub or a local checkpoint store) into a pipeline folder.

    python -m scripts.hub_store push training/al/active_iter_1_added_10 active_iter_1_added_10 \
        --repo me/nerloop-al
    python -m scripts.hub_store pull me/nerloop-al active_iter_1_added_10 model/

The token is read from the environment only (``HF_TOKEN`` by default) and never written; the
endpoint is ``--endpoint``, else ``HF_ENDPOINT`` (see ``nerloop.hub``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import run_app
from nerloop.hub import DEFAULT_TOKEN_ENV, pull_checkpoint, push_checkpoint, read_token

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
    token = read_token(token_env, required=True)
    record = push_checkpoint(
        checkpoint, repo, branch, token, endpoint, private=not public, token_env=token_env
    )
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
    pull_checkpoint(repo, branch, output, token_env, endpoint, cache_dir)
    msg.good(f"Fetched {repo}@{branch} to {output}")


if __name__ == "__main__":
    run_app(app)
