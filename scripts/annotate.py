"""Label a DocBin of sentences with an LLM (a spacy-llm config) or a recorded LLM set.

    python -m scripts.annotate corpus/train.spacy corpus/llm/token_ner_openai.spacy         --source configs/llm_token_ner_openai.cfg
    python -m scripts.annotate corpus/train.spacy corpus/llm/chatgpt.spacy --source recorded:chatgpt

Extra ``--section.key value`` arguments override the config, as in ``spacy train``.
Writes the annotated sentences (failures left out), a JSONL of failures with their reasons,
and a JSON summary with counts, requests, tokens, time and cost; all atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from spacy.cli._util import parse_config_overrides
from wasabi import msg

from nerloop.io_utils import atomic_write_json, atomic_write_jsonl, read_docbin, write_docbin
from nerloop.llm.annotator import RECORDED_PREFIX, annotate_docs, is_recorded
from nerloop.llm.cost import load_prices
from nerloop.llm.run import setup_log_file, sibling

app = typer.Typer(add_completion=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
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
    overrides = parse_config_overrides(ctx.args)
    if overrides and is_recorded(source):
        msg.fail(f"config overrides make no sense with {RECORDED_PREFIX}<set>", exits=1)
    if not is_recorded(source) and not Path(source).exists():
        msg.fail(f"--source {source}: no such config (or write {RECORDED_PREFIX}<set>)", exits=1)
    handler = setup_log_file(log_file)
    try:
        docs = read_docbin(input_path)
        if limit is not None:
            docs = docs[:limit]
        prices = load_prices(prices_path) if prices_path.exists() else None
        run = annotate_docs(
            docs,
            source,
            recorded_dir=recorded_dir,
            cache_dir=cache_dir,
            concurrency=concurrency,
            annotator=annotator,
            overrides=overrides,
            progress=progress,
            prices=prices,
        )
        failures_path = failures_path or sibling(output_path, ".failures.jsonl")
        summary_path = summary_path or sibling(output_path, ".summary.json")
        run.summary["input"] = str(input_path)
        run.summary["output"] = str(output_path)
        write_docbin(output_path, run.docs)
        atomic_write_jsonl(failures_path, run.failures)
        atomic_write_json(summary_path, run.summary)
    finally:
        if handler is not None:
            logging.getLogger("nerloop").removeHandler(handler)
            handler.close()
    summary = run.summary
    msg.good(
        f"{summary['annotated']:,} of {summary['sentences']:,} sentences annotated by "
        f"{summary['annotator']} -> {output_path}"
    )
    if summary["failed"]:
        reasons = ", ".join(f"{k}: {v:,}" for k, v in summary["failure_reasons"].items())
        msg.warn(f"{summary['failed']:,} failed ({reasons}) -> {failures_path}")
    requests = summary.get("requests")
    if requests:
        msg.text(
            f"{requests['answered_now']:,} answers requested, "
            f"{requests['answered_from_cache']:,} from the cache, "
            f"{requests['http'].get('requests', requests['model_calls']):,} HTTP requests, "
            f"{summary['wall_seconds']:.1f} s"
        )
    cost = summary.get("cost")
    if cost and cost.get("llm_usd_per_1000_sentences") is not None:
        msg.text(
            f"LLM ${cost['llm_usd_per_1000_sentences']:.4f} vs expert "
            f"${cost['expert_usd_per_1000_sentences']:.2f} per 1,000 sentences"
        )


if __name__ == "__main__":
    app()
