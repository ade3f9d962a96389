"""Label a DocBin of sentences with an LLM (a spacy-llm config) or a recorded LLM set.

    python -m scripts.annotate corpus/train.spacy corpus/llm/token_ner_openai.spacy \
        --source configs/llm_token_ner_openai.cfg
    python -m scripts.annotate corpus/train.spacy corpus/llm/chatgpt.spacy --source recorded:chatgpt

Extra ``--section.key value`` arguments override the config, as in ``spacy train``. Writes the
annotated sentences, a JSONL of failures, a JSONL of parser repairs and a JSON summary
(``nerloop.llm.run.annotate_file``). Exits with 1 when nothing was annotated (e.g. every request
failed) or more than ``--max-failure-rate`` of the sentences failed; then no annotated DocBin is
written.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.cli import OVERRIDES_CONTEXT, config_overrides, run_app
from nerloop.llm.run import DEFAULT_MAX_FAILURE_RATE, annotate_file, run_details

app = typer.Typer(add_completion=False)


@app.command(context_settings=OVERRIDES_CONTEXT)
def main(
    ctx: typer.Context,
    input_path: Path = typer.Argument(..., help="DocBin of sentences to label", exists=True),
    output_path: Path = typer.Argument(..., help="DocBin of the annotated sentences"),
    source: str = typer.Option(
        ..., "--source", "-s", help="A spacy-llm config (configs/llm_*.cfg) or recorded:<set>"
    ),
    failures_path: Path | None = typer.Option(
        None, "--failures", help="JSONL of failed sentences (default: OUTPUT.failures.jsonl)"
    ),
    summary_path: Path | None = typer.Option(
        None, "--summary", help="JSON run summary (default: OUTPUT.summary.json)"
    ),
    repairs_path: Path | None = typer.Option(
        None, "--repairs", help="JSONL of parser repairs (default: OUTPUT.repairs.jsonl)"
    ),
    labels_path: Path | None = typer.Option(
        None,
        "--labels",
        help="Label scheme file: the task's labels and definitions (default: the config's)",
        exists=True,
        dir_okay=False,
    ),
    max_failure_rate: float = typer.Option(
        DEFAULT_MAX_FAILURE_RATE,
        min=0.0,
        max=1.0,
        help="Exit with 1 (no corpus written) when more sentences than this share fail",
    ),
    cache_dir: Path = typer.Option(Path("cache/llm"), help="Answer cache folder (live sources)"),
    recorded_dir: Path = typer.Option(Path("corpus/cheap"), help="Folder of recorded DocBins"),
    prices_path: Path = typer.Option(
        Path("configs/llm_prices.json"), "--prices", help="Price table and expert cost model"
    ),
    concurrency: int | None = typer.Option(
        None, min=1, help="Prompts in flight (default: the config's annotate.concurrency, else 4)"
    ),
    annotator: str | None = typer.Option(None, help="Annotator name (default: from the source)"),
    limit: int | None = typer.Option(None, min=1, help="Label only the first N sentences"),
    log_file: Path | None = typer.Option(None, help="Write a DEBUG log (requests, retries) here"),
    progress: bool = typer.Option(True, help="Show a progress bar"),
) -> None:
    """Label sentences with an LLM or a recorded LLM set; every sentence ends annotated or
    in the failures file."""
    summary = annotate_file(
        input_path,
        output_path,
        source,
        failures_path=failures_path,
        summary_path=summary_path,
        repairs_path=repairs_path,
        labels_path=labels_path,
        max_failure_rate=max_failure_rate,
        cache_dir=cache_dir,
        recorded_dir=recorded_dir,
        prices_path=prices_path,
        concurrency=concurrency,
        annotator=annotator,
        limit=limit,
        overrides=config_overrides(ctx),
        log_file=log_file,
        progress=progress,
    )
    msg.good(
        f"{summary['annotated']:,} of {summary['sentences']:,} sentences annotated by "
        f"{summary['annotator']} -> {output_path}"
    )
    if summary["failed"]:
        reasons = ", ".join(f"{k}: {v:,}" for k, v in summary["failure_reasons"].items())
        msg.warn(f"{summary['failed']:,} failed ({reasons}) -> {summary['failures_path']}")
    if summary["repairs"]:
        kinds = ", ".join(f"{k}: {v:,}" for k, v in summary["repairs"].items())
        msg.info(
            f"{summary['repaired_sentences']:,} annotated sentences were repaired ({kinds}) "
            f"-> {summary['repairs_path']}"
        )
    for line in run_details(summary):
        msg.text(line)


if __name__ == "__main__":
    run_app(app)
