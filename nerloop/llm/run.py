"""Label a DocBin of sentences with an LLM (a spacy-llm config) or a recorded LLM set.

    python -m scripts.annotate corpus/train.spacy corpus/llm/token_ner_openai.spacy \
        --source configs/llm_token_ner_openai.cfg
    python -m scripts.annotate corpus/train.spacy corpus/llm/chatgpt.spacy --source recorded:chatgpt

Extra ``--section.key value`` arguments override the config, as in ``spacy train``.
Writes the annotated sentences (failures left out), a JSONL of failures with their reasons,
a JSONL of what the parser repaired in the annotated sentences, and a JSON summary with counts,
requests, tokens, time and cost; all atomically.

A run whose failures are too many is a failed run (:class:`AnnotationFailedError`, exit code 1
from the CLI): when no sentence was annotated (every request failed: a bad key, nothing
listening at the endpoint), or, for a live source, when more than ``max_failure_rate`` of the
sentences failed (a recorded set covers part of a corpus by design). It
still writes the failures and the summary (``status: "failed"`` and the error), but no
annotated DocBin, and it removes one left at the output path by an earlier run, so nothing
downstream takes a partial or stale corpus for this run's result.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from nerloop.errors import NerloopError, SettingsError
from nerloop.io_utils import atomic_write_json, atomic_write_jsonl, read_docbin, write_docbin
from nerloop.labels import load_scheme
from nerloop.llm.annotator import RECORDED_PREFIX, AnnotationRun, annotate_docs, is_recorded
from nerloop.llm.cost import load_prices
from nerloop.redact import RedactingFilter

DEFAULT_MAX_FAILURE_RATE = 0.5


class AnnotationFailedError(NerloopError, RuntimeError):
    """A run that annotated nothing, or failed on more sentences than allowed."""


def run_failure(run: AnnotationRun, max_failure_rate: float | None) -> str | None:
    """Why a run counts as failed (see the module docstring), or None when it does not.

    run (AnnotationRun): the finished run.
    max_failure_rate (Optional[float]): the largest share of failed sentences that is still a
        success; None: only a run that annotated nothing fails.
    RETURNS (Optional[str]): the message, with counts, the commonest reasons and the endpoint.
    """
    summary = run.summary
    n, failed = summary["sentences"], summary["failed"]
    if not n or not failed:
        return None
    endpoint = summary.get("endpoint")
    at = f" at {endpoint}" if endpoint else ""
    details = Counter(f"{row['reason']}: {row['detail']}" for row in run.failures)
    common = "; ".join(
        f"{detail} ({count} of {failed})" for detail, count in details.most_common(2)
    )
    if not run.docs:
        if all(row["reason"] == "request_failed" for row in run.failures):
            return f"all {n} sentences failed: every request to the LLM{at} failed: {common}"
        return f"all {n} sentences failed ({summary['source']}{at}): {common}"
    if max_failure_rate is not None and failed / n > max_failure_rate:
        return (
            f"{failed} of {n} sentences failed ({failed / n:.1%}, more than --max-failure-rate "
            f"{max_failure_rate:.1%}; {summary['source']}{at}): {common}"
        )
    return None


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
    repairs_path: Path | None = None,
    labels_path: Path | None = None,
    max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE,
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
    of the failures with their reasons, a JSONL of the repairs and a JSON summary (counts,
    repairs, requests, tokens, time, cost), each atomically.

    input_path (Path): DocBin of the sentences; output_path (Path): the annotated DocBin.
    source (str): a spacy-llm config (``configs/llm_*.cfg``) or ``recorded:<set>``.
    failures_path, summary_path, repairs_path (Path | None): default
        ``OUTPUT.failures.jsonl``, ``OUTPUT.summary.json`` and ``OUTPUT.repairs.jsonl``.
    labels_path (Path | None): the label scheme file; None keeps the config's labels.
    max_failure_rate (float): with a live source, more failed sentences than this share fail
        the run (after the failures and the summary are written); a run that annotates
        nothing always fails. Recorded sets label part of a corpus by design: not checked.
    prices_path (Path | None): price table and expert cost model (no cost when absent).
    limit (int | None): label only the first N sentences.
    overrides (dict | None): ``section.key`` overrides of the config (live sources only).
    log_file (Path | None): where to write a DEBUG log (requests, retries), secrets masked.
    RETURNS (dict): the summary, with ``failures_path``, ``summary_path`` and
        ``repairs_path`` added.
    """
    if not 0.0 <= max_failure_rate <= 1.0:
        raise SettingsError(f"--max-failure-rate must be in [0, 1], got {max_failure_rate}")
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
        scheme = load_scheme(labels_path) if labels_path is not None else None
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
            labels=scheme,
        )
        failures_path = failures_path or sibling(output_path, ".failures.jsonl")
        summary_path = summary_path or sibling(output_path, ".summary.json")
        repairs_path = repairs_path or sibling(output_path, ".repairs.jsonl")
        run.summary["input"] = str(input_path)
        run.summary["output"] = str(output_path)
        run.summary["labels_file"] = str(labels_path) if labels_path else None
        run.summary["max_failure_rate"] = max_failure_rate
        # A recorded set covers only part of a corpus by design: only an empty result fails.
        error = run_failure(run, None if is_recorded(source) else max_failure_rate)
        run.summary["status"] = "failed" if error else "complete"
        if error:
            run.summary["error"] = error
            if output_path.exists():
                output_path.unlink()
                error += f" (removed {output_path}, left by an earlier run)"
        else:
            write_docbin(output_path, run.docs)
        atomic_write_jsonl(failures_path, run.failures)
        atomic_write_jsonl(repairs_path, run.repairs)
        atomic_write_json(summary_path, run.summary)
    finally:
        if handler is not None:
            logging.getLogger("nerloop").removeHandler(handler)
            handler.close()
    if error:
        raise AnnotationFailedError(
            f"{error}. Failures: {failures_path}, summary: {summary_path}; no annotated corpus "
            "was written"
        )
    return {
        **run.summary,
        "failures_path": failures_path,
        "summary_path": summary_path,
        "repairs_path": repairs_path,
    }


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
