"""Cost of annotation: price table, expert model, recorded-set estimates, the cost report."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nerloop.io_utils import write_docbin
from nerloop.labels import load_scheme
from nerloop.llm.cost import (
    cost_summary,
    estimate_recorded_usage,
    find_price,
    load_prices,
    markdown_table,
    reply_json,
)
from nerloop.llm.cost_report import annotation_cost
from nerloop.llm.tasks.token_ner import make_token_ner_task, tag_ids_for_labels
from nerloop.llm.usage import Usage, estimate_tokens
from scripts.annotation_cost import main
from tests.annotate_support import PROJECT_ROOT, make_docs

DEFAULT_TAG_IDS = tag_ids_for_labels(load_scheme().labels)

PRICES = {
    "models": {
        "gpt-4o": {"input_per_million": 2.5, "output_per_million": 10.0},
        "gpt-4o-mini": {"input_per_million": 0.15, "output_per_million": 0.6},
    },
    "recorded": {"mini": "gpt-4o-mini"},
    "expert": {"seconds_per_sentence": 36, "hourly_rate": 50.0},
}


def test_find_price_exact_then_longest_prefix():
    assert find_price(PRICES, "gpt-4o")[0] == "gpt-4o"
    assert find_price(PRICES, "gpt-4o-mini-2024-07-18")[0] == "gpt-4o-mini"
    assert find_price(PRICES, "llama3.1:8b") is None


def test_cost_summary_prices_tokens_and_the_expert():
    usage = Usage(prompt_tokens=2_000_000, completion_tokens=500_000, answers=500)
    cost = cost_summary(PRICES, "gpt-4o-mini", usage, 500, wall_seconds=50.0)
    assert cost["llm_usd"] == pytest.approx(0.3 + 0.3)
    assert cost["llm_usd_per_1000_sentences"] == pytest.approx(1.2)
    # 500 sentences x 36 s = 5 h at $50/h.
    assert (cost["expert_hours"], cost["expert_usd"]) == (5.0, 250.0)
    assert cost["expert_usd_per_1000_sentences"] == 500.0
    assert cost["expert_to_llm_cost_ratio"] == pytest.approx(416.7)
    assert cost["prompt_tokens_per_sentence"] == 4000.0
    assert cost["wall_seconds_per_1000_sentences"] == 100.0
    assert cost["usage_estimated"] is False
    unknown = cost_summary(PRICES, "mystery", usage, 500)
    assert unknown["llm_usd"] is None and "no price" in unknown["note"]


def test_shipped_price_table_is_valid_and_prices_the_recorded_sets():
    prices = load_prices(PROJECT_ROOT / "configs" / "llm_prices.json")
    for name in ("chatgpt", "uniner", "llama405b", "noisebench"):
        assert find_price(prices, prices["recorded"][name]) is not None
    assert find_price(prices, "gpt-4o-mini")[0] == "gpt-4o-mini"


def test_estimate_tokens_counts_words_and_punctuation():
    assert estimate_tokens("EU rejects German call .") == 5
    assert estimate_tokens("`EU`, `rejects`") == 7
    assert estimate_tokens("internationalisation") == 3  # 20 characters: 1 + 2 more


def test_recorded_usage_uses_the_study_prompt_and_a_json_reply():
    docs = make_docs()[:2]
    usage = estimate_recorded_usage(docs)
    reply = reply_json([t.text for t in docs[1]], ["B-PER", "I-PER"], DEFAULT_TAG_IDS)
    assert reply == '{"ner_tags": [1, 2], "tokens": ["Peter", "Blackburn"]}'
    assert usage.answers == usage.estimated == 2
    task = make_token_ner_task()
    prompts = [p for doc_prompts, _ in task.generate_prompts(docs) for p in doc_prompts]
    assert prompts[1].startswith("Identify each named entity")
    assert "Tokens: '`Peter`, `Blackburn`'" in prompts[1]
    assert usage.prompt_tokens == sum(estimate_tokens(p) for p in prompts)
    assert usage.completion_tokens == estimate_tokens(reply) + estimate_tokens(
        reply_json(
            [t.text for t in docs[0]],
            ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"],
            DEFAULT_TAG_IDS,
        )
    )


def test_annotation_cost_report_rows_and_table(tmp_path):
    write_docbin(tmp_path / "cheap" / "mini.spacy", make_docs())
    run_summary = {
        "annotator": "token_ner_openai",
        "annotated": 100,
        "model": {"name": "gpt-4o"},
        "requests": {
            "usage_all_answers": {
                "prompt_tokens": 40_000,
                "completion_tokens": 4_000,
                "answers": 100,
                "estimated": 0,
            },
            "wall_seconds": 12.5,
        },
    }
    (tmp_path / "run.summary.json").write_text(json.dumps(run_summary))
    (tmp_path / "prices.json").write_text(json.dumps(PRICES))

    report = annotation_cost(
        tmp_path / "cheap", [tmp_path / "run.summary.json"], tmp_path / "prices.json"
    )
    assert report["expert"]["usd_per_1000_sentences"] == 500.0
    recorded, live = report["rows"]
    assert (recorded["annotator"], recorded["kind"], recorded["sentences"]) == (
        "mini",
        "recorded (estimated)",
        8,
    )
    assert recorded["price_entry"] == "gpt-4o-mini"
    assert live["llm_usd"] == pytest.approx(0.1 + 0.04)
    assert live["llm_usd_per_1000_sentences"] == pytest.approx(1.4)
    assert live["wall_seconds_per_1000_sentences"] == 125.0

    table = markdown_table(report["rows"])
    assert (
        "| token_ner_openai | gpt-4o (gpt-4o) | measured | 100 | 400 | 40 | $1.40 | $500.00 | "
        "357x |" in table
    )


def test_annotation_cost_cli_writes_json_and_markdown(tmp_path):
    import typer

    write_docbin(tmp_path / "cheap" / "mini.spacy", make_docs())
    (tmp_path / "prices.json").write_text(json.dumps(PRICES))
    cli = typer.Typer(add_completion=False)
    cli.command()(main)
    result = CliRunner().invoke(
        cli,
        [
            "--recorded-dir",
            str(tmp_path / "cheap"),
            "--prices",
            str(tmp_path / "prices.json"),
            "--output",
            str(tmp_path / "metrics" / "annotation_cost.json"),
            "--table",
            str(tmp_path / "metrics" / "annotation_cost.md"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "metrics" / "annotation_cost.json").read_text())
    assert [row["annotator"] for row in report["rows"]] == ["mini"]
    table = (tmp_path / "metrics" / "annotation_cost.md").read_text()
    assert table.startswith("Expert: 36 s per sentence at $50.00/h = $500.00 per 1,000 sentences")
    assert "| mini | gpt-4o-mini (gpt-4o-mini) | estimated | 8 |" in table
