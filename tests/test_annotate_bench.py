"""bench_annotate: throughput at several concurrencies against the loopback server."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from nerloop.bench.annotate import synthetic_sentences
from scripts.bench_annotate import main


def test_synthetic_sentences_are_distinct_and_seeded():
    first = synthetic_sentences(50, seed=1)
    assert len(first) == 50
    assert list(first) == list(synthetic_sentences(50, seed=1))
    assert all(len(tokens) == len(tags) for tokens, tags in first.items())


def test_bench_writes_speedups(tmp_path):
    cli = typer.Typer(add_completion=False)
    cli.command()(main)
    output = tmp_path / "metrics" / "bench_annotate.json"
    result = CliRunner().invoke(
        cli,
        [
            "--latency",
            "0.05",
            "--concurrency",
            "1",
            "--concurrency",
            "4",
            "--rounds",
            "4",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(output.read_text())
    rows = report["levels"]
    assert [(r["concurrency"], r["sentences"], r["requests"]) for r in rows] == [
        (1, 4, 4),
        (4, 16, 16),
    ]
    assert rows[0]["speedup"] == 1.0
    # Ideal is 4: four requests in flight, each waiting 50 ms on the server.
    assert rows[1]["speedup"] > 2.5
    assert report["meets_target"] == (rows[1]["efficiency"] >= 0.8)
