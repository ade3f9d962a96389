"""What annotation costs: LLM tokens priced by a price table, beside an expert's time.

The price table (``configs/llm_prices.json``) holds, per model name, USD per million input and
output tokens; a model is matched by exact name, then by the longest table name it starts with
(``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``). Its ``expert`` block is the expert cost model:
seconds per sentence and an hourly rate. Its ``recorded`` block names the model whose prices
stand for each recorded set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from spacy.tokens import Doc

from nerloop.errors import NerloopError
from nerloop.io_utils import MissingInputError
from nerloop.llm.usage import Usage, estimate_tokens

PER_THOUSAND = 1000


class PriceTableError(NerloopError, ValueError):
    """A price table entry that is not a non-negative number."""


def load_prices(path: Path | str) -> dict[str, Any]:
    """Read and check a price table."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"price table {path} does not exist")
    prices = json.loads(path.read_text(encoding="utf8"))
    for name, entry in prices.get("models", {}).items():
        for key in ("input_per_million", "output_per_million"):
            if not isinstance(entry.get(key), (int, float)) or entry[key] < 0:
                raise PriceTableError(f"{path}: models.{name}.{key} must be a non-negative number")
    expert = prices.get("expert", {})
    for key in ("seconds_per_sentence", "hourly_rate"):
        if not isinstance(expert.get(key), (int, float)) or expert[key] < 0:
            raise PriceTableError(f"{path}: expert.{key} must be a non-negative number")
    return prices


def find_price(prices: dict[str, Any], model: str) -> tuple[str, dict[str, Any]] | None:
    """The table entry for a model name: exact match, else the longest matching prefix."""
    table = prices.get("models", {})
    if model in table:
        return model, table[model]
    lowered = model.lower()
    matches = [name for name in table if lowered.startswith(name.lower())]
    if not matches:
        return None
    best = max(matches, key=len)
    return best, table[best]


def token_cost(entry: dict[str, Any], prompt_tokens: int, completion_tokens: int) -> float:
    """USD for the given tokens at one table entry's prices."""
    return (
        prompt_tokens * entry["input_per_million"] + completion_tokens * entry["output_per_million"]
    ) / 1_000_000


def expert_cost(prices: dict[str, Any], n_sentences: int) -> dict[str, float]:
    """Hours and USD an expert needs for ``n_sentences`` under the table's expert model."""
    expert = prices["expert"]
    hours = n_sentences * expert["seconds_per_sentence"] / 3600
    return {"hours": round(hours, 3), "usd": round(hours * expert["hourly_rate"], 2)}


def cost_summary(
    prices: dict[str, Any],
    model: str,
    usage: Usage | dict[str, Any],
    n_sentences: int,
    *,
    wall_seconds: float | None = None,
) -> dict[str, Any]:
    """LLM and expert cost of ``n_sentences`` annotated with ``usage``, totals and per 1,000.

    prices (dict): the price table.
    model (str): the model name to price.
    usage (Usage | dict): tokens of all answers behind these sentences.
    n_sentences (int): sentences annotated.
    wall_seconds (float | None): how long the LLM took, if measured.
    RETURNS (dict): ``llm_usd`` (None when the model has no price), ``expert_usd``, both per
        1,000 sentences, tokens per sentence, and the expert/LLM ratio.
    """
    if isinstance(usage, dict):
        usage = Usage(**{k: int(usage.get(k, 0)) for k in Usage.__dataclass_fields__})
    found = find_price(prices, model)
    llm_usd = token_cost(found[1], usage.prompt_tokens, usage.completion_tokens) if found else None
    expert = expert_cost(prices, n_sentences)
    per = PER_THOUSAND / n_sentences if n_sentences else 0.0
    result: dict[str, Any] = {
        "model": model,
        "price_entry": found[0] if found else None,
        "sentences": n_sentences,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "usage_estimated": usage.estimated > 0,
        "prompt_tokens_per_sentence": round(usage.prompt_tokens / n_sentences, 1)
        if n_sentences
        else None,
        "completion_tokens_per_sentence": round(usage.completion_tokens / n_sentences, 1)
        if n_sentences
        else None,
        "llm_usd": round(llm_usd, 4) if llm_usd is not None else None,
        "llm_usd_per_1000_sentences": round(llm_usd * per, 4) if llm_usd is not None else None,
        "expert_hours": expert["hours"],
        "expert_usd": expert["usd"],
        "expert_usd_per_1000_sentences": round(expert["usd"] * per, 2),
        "expert_to_llm_cost_ratio": round(expert["usd"] / llm_usd, 1) if llm_usd else None,
    }
    if wall_seconds is not None:
        result["wall_seconds"] = round(wall_seconds, 3)
        result["wall_seconds_per_1000_sentences"] = round(wall_seconds * per, 1)
    if not found:
        result["note"] = f"no price for model {model!r} in the price table"
    return result


def reply_json(tokens: Sequence[str], tags: Sequence[str], tag_ids: dict[str, int]) -> str:
    """The reply the token-level prompt asks for, as a model in JSON mode would write it."""
    ids = [tag_ids.get(tag, 0) for tag in tags]
    return json.dumps({"ner_tags": ids, "tokens": list(tokens)}, ensure_ascii=False)


def estimate_recorded_usage(docs: Iterable[Doc]) -> Usage:
    """Estimated tokens for labelling ``docs`` with the study's token-level prompt.

    The prompt is the ``nerloop.TokenNER.v1`` template applied to each sentence; the reply is
    the JSON with the sentence's tokens and its recorded tags (the size a correct answer has).
    """
    from nerloop.eval.metrics import doc_to_iob2
    from nerloop.llm.tasks.token_ner import make_token_ner_task

    task = make_token_ner_task()
    docs = list(docs)
    usage = Usage()
    prompts = task.generate_prompts(docs)
    for doc, (doc_prompts, _shards) in zip(docs, prompts):
        reply = reply_json([t.text for t in doc], doc_to_iob2(doc), task.tag_ids)
        prompt_tokens = sum(estimate_tokens(prompt) for prompt in doc_prompts)
        usage.add(prompt_tokens, estimate_tokens(reply), estimated=True)
    return usage


def _format_usd(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.2f}" if value >= 1 else f"${value:,.4f}"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of LLM vs expert cost per 1,000 sentences, one row per annotator."""
    lines = [
        "| annotator | model (price entry) | usage | sentences | prompt tok/sent | "
        "completion tok/sent | LLM $/1k sent | expert $/1k sent | expert/LLM |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = row.get("expert_to_llm_cost_ratio")
        lines.append(
            f"| {row['annotator']} | {row['model']} ({row.get('price_entry') or 'no price'}) | "
            f"{'estimated' if row.get('usage_estimated') else 'measured'} | "
            f"{row['sentences']:,} | {row.get('prompt_tokens_per_sentence') or 0:g} | "
            f"{row.get('completion_tokens_per_sentence') or 0:g} | "
            f"{_format_usd(row.get('llm_usd_per_1000_sentences'))} | "
            f"{_format_usd(row.get('expert_usd_per_1000_sentences'))} | "
            f"{f'{ratio:,.0f}x' if ratio else 'n/a'} |"
        )
    return "\n".join(lines) + "\n"
