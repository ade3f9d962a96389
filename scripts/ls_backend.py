"""A Label Studio ML backend that serves the active learning loop's current model.

    python -m scripts.ls_backend serve STATE --pool POOL.spacy --cheap CHEAP.spacy
        --dev DEV.spacy --model START_MODEL --project-id 1 --label-studio-url URL
    python -m scripts.ls_backend fit STATE --pool ... --cheap ... --dev ...

Connect it in the project's Settings -> Model (URL http://HOST:PORT). The API key comes from
$LABEL_STUDIO_API_KEY only. Without --pool/--cheap/--dev it serves --model's predictions and
never fits. See ``nerloop.labelstudio.backend`` for the routes, the state and the fit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from wasabi import msg

from nerloop.al.settings import DEFAULT_CONFIG
from nerloop.cli import OVERRIDES_CONTEXT, config_overrides, fail_on_errors, run_app
from nerloop.labelstudio.backend import BackendSettings, NerBackend, make_backend_server
from nerloop.labelstudio.client import API_KEY_ENV

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])
StateArg = typer.Argument(..., file_okay=False, help="Human-loop state folder")
PoolOpt = typer.Option(None, "--pool", exists=True, dir_okay=False, help="DocBin to select from")
CheapOpt = typer.Option(None, "--cheap", exists=True, dir_okay=False, help="Cheap DocBin")
DevOpt = typer.Option(None, "--dev", exists=True, dir_okay=False, help="Gold dev DocBin")
ModelOpt = typer.Option(None, "--model", file_okay=False, help="Start model (first use)")
ConfigOpt = typer.Option(DEFAULT_CONFIG, "--config", exists=True, dir_okay=False)
LabelsOpt = typer.Option(None, "--labels", exists=True, dir_okay=False, help="Label scheme")
ProjectOpt = typer.Option(None, "--project-id", help="Label Studio project to import batches")
UrlOpt = typer.Option(None, "--label-studio-url", help="Label Studio server ($LABEL_STUDIO_URL)")
KeyEnvOpt = typer.Option(API_KEY_ENV, "--api-key-env", help="Variable holding the API key")


def _settings(ctx: typer.Context, **values) -> BackendSettings:
    overrides = fail_on_errors(config_overrides)(ctx)
    return BackendSettings(overrides=overrides, **values)


@app.command(context_settings=OVERRIDES_CONTEXT)
def serve(
    ctx: typer.Context,
    state_dir: Path = StateArg,
    pool: Path | None = PoolOpt,
    cheap: Path | None = CheapOpt,
    dev: Path | None = DevOpt,
    model: Path | None = ModelOpt,
    config_path: Path = ConfigOpt,
    labels: Path | None = LabelsOpt,
    fit_after: int | None = typer.Option(
        None, help="Fit after this many new answers (default: the batch; 0: on request only)"
    ),
    project_id: int | None = ProjectOpt,
    label_studio_url: str | None = UrlOpt,
    api_key_env: str = KeyEnvOpt,
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(9090, help="Port to listen on"),
    push: bool = typer.Option(True, help="Import the pending batch into the project at start"),
) -> None:
    """Serve /health, /setup, /predict, /webhook and /train until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = _settings(
        ctx,
        state_dir=state_dir,
        pool=pool,
        cheap=cheap,
        dev=dev,
        model=model,
        config_path=config_path,
        labels=labels,
        fit_after=fit_after,
        project_id=project_id,
        label_studio_url=label_studio_url,
        api_key_env=api_key_env,
    )
    backend = fail_on_errors(NerBackend)(settings)
    if push and backend.client is not None:
        ids = fail_on_errors(backend.push_pending)()
        msg.good(f"Pending batch in project {project_id}: tasks {ids}")
    server = make_backend_server(backend, host, port)
    msg.good(f"Serving {backend.served.version} on http://{host}:{server.server_port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        msg.info("stopped")
    finally:
        server.server_close()


@app.command(context_settings=OVERRIDES_CONTEXT)
def fit(
    ctx: typer.Context,
    state_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="State folder"),
    pool: Path = typer.Option(..., "--pool", exists=True, dir_okay=False),
    cheap: Path = typer.Option(..., "--cheap", exists=True, dir_okay=False),
    dev: Path = typer.Option(..., "--dev", exists=True, dir_okay=False),
    config_path: Path = ConfigOpt,
    labels: Path | None = LabelsOpt,
    project_id: int | None = ProjectOpt,
    label_studio_url: str | None = UrlOpt,
    api_key_env: str = KeyEnvOpt,
) -> None:
    """One fit from the recorded answers (waits for a fit the server is running)."""
    settings = _settings(
        ctx,
        state_dir=state_dir,
        pool=pool,
        cheap=cheap,
        dev=dev,
        config_path=config_path,
        labels=labels,
        project_id=project_id,
        label_studio_url=label_studio_url,
        api_key_env=api_key_env,
    )
    backend = fail_on_errors(NerBackend)(settings)
    result = fail_on_errors(backend.fit)("CLI")
    if result["status"] != "trained":
        msg.warn(f"Iteration {result['iteration']}: no new answers, nothing trained")
        return
    msg.good(
        f"Iteration {result['iteration']}: {len(result['added_ids'])} sentences, saved "
        f"{result['checkpoint']} (dev F1 {result['dev_f1']:.4f}); next batch "
        f"{result['next_batch']}"
    )


if __name__ == "__main__":
    run_app(app)
