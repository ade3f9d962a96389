"""LLM vs expert annotation cost per 1,000 sentences, for recorded sets and live runs.

    python -m scripts.annotation_cost --recorded-dir corpus/cheap \
        --run corpus/llm/token_ner_openai.summary.json \
        --output metrics/annotation_cost.json --table metrics/annotation_cost.md

Recorded sets (``corpus/cheap/*.spacy``) were paid for by others, so their tokens are
estimated: the study's token-level prompt applied to each sentence, and the JSON reply with
its recorded tags, priced as the model named for the set in the price table. Live runs
(``annotate``'s ``*.summary.json``) are priced from the tokens the API reported. The expert
column prices the same number of sentences with the table's expert cost model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nerloop.io_utils import read_docbin
from nerloop.llm.cost import (
    PER_THOUSAND,
    cost_summary,
    estimate_recorded_usage,
    expert_cost,
    load_prices,
    markdown_table,
)


def recorded_rows(recorded_dir: Path, prices: dict[str, Any]) -> list[dict[str, Any]]:
    """One estimated cost row per recorded DocBin in ``recorded_dir``."""
    rows = []
    for path in sorted(recorded_dir.glob("*.spacy")):
        docs = read_docbin(path)
        model = prices.get("recorded", {}).get(path.stem, path.stem)
        row = cost_summary(prices, model, estimate_recorded_usage(docs), len(docs))
        rows.append(
            {"annotator": path.stem, "kind": "recorded (estimated)", "file": str(path), **row}
        )
    return rows


def run_rows(summaries: list[Path], prices: dict[str, Any]) -> list[dict[str, Any]]:
    """One measured cost row per ``annotate`` run summary of a live source."""
    rows = []
    for path in summaries:
        summary = json.loads(path.read_text(encoding="utf8"))
        if "requests" not in summary:
            # A recorded-source run: nothing was requested; its set has its own row.
            continue
        model = str(summary.get("model", {}).get("name") or summary["annotator"])
        usage = summary["requests"]["usage_all_answers"]
        row = cost_summary(
            prices,
            model,
            usage,
            summary["annotated"],
            wall_seconds=summary["requests"]["wall_seconds"],
        )
        rows.append(
            {"annotator": summary["annotator"], "kind": "live run", "file": str(path), **row}
        )
    return rows


def annotation_cost(recorded_dir: Path, summaries: list[Path], prices_path: Path) -> dict[str, Any]:
    """The cost report: the expert model, then one row per recorded set and live run."""
    prices = load_prices(prices_path)
    expert = expert_cost(prices, PER_THOUSAND)
    return {
        "prices": str(prices_path),
        "currency": prices.get("currency", "USD"),
        "expert": {
            **{k: v for k, v in prices["expert"].items() if not k.startswith("_")},
            "hours_per_1000_sentences": expert["hours"],
            "usd_per_1000_sentences": expert["usd"],
        },
        "rows": recorded_rows(recorded_dir, prices) + run_rows(summaries, prices),
    }


def cost_markdown(report: dict[str, Any]) -> str:
    expert = report["expert"]
    header = (
        f"Expert: {expert['seconds_per_sentence']:g} s per sentence at "
        f"${expert['hourly_rate']:,.2f}/h = ${expert['usd_per_1000_sentences']:,.2f} per 1,000 "
        "sentences. Recorded sets: tokens estimated from the study's prompt and a JSON reply; "
        "live runs: tokens reported by the API.\n\n"
    )
    return header + markdown_table(report["rows"])
