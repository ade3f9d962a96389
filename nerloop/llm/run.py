"""Label a DocBin of sentences with an LLM (a spacy-llm config) or a recorded LLM set.

    python -m scripts.annotate corpus/train.spacy corpus/llm/token_ner_openai.spacy \
        --source configs/llm_token_ner_openai.cfg
    python -m scripts.annotate corpus/train.spacy corpus/llm/chatgpt.spacy --source recorded:chatgpt

Extra ``--section.key value`` arguments override the config, as in ``spacy train``.
Writes the annotated sentences (failures left out), a JSONL of failures with their reasons,
and a JSON summary with counts, requests, tokens, time and cost; all atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nerloop.errors import SettingsError
from nerloop.io_utils import atomic_write_json, atomic_write_jsonl, read_docbin, write_docbin
from nerloop.llm.annotator import RECORDED_PREFIX, annotate_docs, is_recorded
from nerloop.llm.cost import load_prices
from nerloop.redact import RedactingFilter


def setup_log_file(path: Path | None) -> logging.Handler | None:
    """Send the ``nerloop`` loggers' DEBUG records to ``path``, with secrets masked."""
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf8")
    handler.setLevel(logging.DEBUG)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("nerloop")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return handler


def sibling(path: Path, suffix: str) -> Path:
    """``corpus/llm/x.spacy`` -> ``corpus/llm/x<suffix>``."""
    return path.with_name(path.stem + suffix)


def annotate_file(
    input_path: Path,
    output_path: Path,
    source: str,
    *,
    failures_path: Path | None = None,
    summary_path: Path | None = None,
    cache_dir: Path = Path("cache/llm"),
    recorded_dir: Path = Path("corpus/cheap"),
    prices_path: Path | None = Path("configs/llm_prices.json"),
    concurrency: int | None = None,
    annotator: str | None = None,
    limit: int | None = None,
    overrides: dict[str, Any] | None = None,
    log_file: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Label a DocBin of sentences and write the annotated DocBin (failures left out), a JSONL
    of the failures with their reasons and a JSON summary (counts, requests, tokens, time,
    cost), each atomically.

    input_path (Path): DocBin of the sentences; output_path (Path): the annotated DocBin.
    source (str): a spacy-llm config (``configs/llm_*.cfg``) or ``recorded:<set>``.
    failures_path, summary_path (Path | None): default ``OUTPUT.failures.jsonl`` and
        ``OUTPUT.summary.json``.
    prices_path (Path | None): price table and expert cost model (no cost when absent).
    limit (int | None): label only the first N sentences.
    overrides (dict | None): ``section.key`` overrides of the config (live sources only).
    log_file (Path | None): where to write a DEBUG log (requests, retries), secrets masked.
    RETURNS (dict): the summary, with ``failures_path`` and ``summary_path`` added.
    """
    if overrides and is_recorded(source):
        raise SettingsError(f"config overrides make no sense with {RECORDED_PREFIX}<set>")
    if not is_recorded(source) and not Path(source).exists():
        raise SettingsError(f"--source {source}: no such config (or write {RECORDED_PREFIX}<set>)")
    handler = setup_log_file(log_file)
    try:
        docs = read_docbin(input_path)
        if limit is not None:
            docs = docs[:limit]
        prices = load_prices(prices_path) if prices_path and prices_path.exists() else None
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
    return {**run.summary, "failures_path": failures_path, "summary_path": summary_path}


def run_details(summary: dict[str, Any]) -> list[str]:
    """Lines describing a run's requests and cost (none for what it did not do)."""
    lines = []
    requests = summary.get("requests")
    if requests:
        lines.append(
            f"{requests['answered_now']:,} answers requested, "
            f"{requests['answered_from_cache']:,} from the cache, "
            f"{requests['http'].get('requests', requests['model_calls']):,} HTTP requests, "
            f"{summary['wall_seconds']:.1f} s"
        )
    cost = summary.get("cost")
    if cost and cost.get("llm_usd_per_1000_sentences") is not None:
        lines.append(
            f"LLM ${cost['llm_usd_per_1000_sentences']:.4f} vs expert "
            f"${cost['expert_usd_per_1000_sentences']:.2f} per 1,000 sentences"
        )
    return lines
