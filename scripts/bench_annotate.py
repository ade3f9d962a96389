"""Benchmark: sentences per second of ``annotate`` at several concurrencies, against a loopback
OpenAI-compatible server that takes a fixed time per request.

    python -m scripts.bench_annotate --latency 0.2 --concurrency 1 --concurrency 4 \
        --concurrency 16 --rounds 16 --output metrics/bench_annotate.json

How it is measured: ``nerloop.bench.annotate``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from wasabi import msg

from nerloop.bench.annotate import bench
from nerloop.cli import run_app
from nerloop.io_utils import atomic_write_json


def main(
    latency: float = typer.Option(0.2, help="Seconds the server takes per request"),
    concurrency: list[int] = typer.Option([1, 4, 16], help="Concurrency levels (repeatable)"),
    rounds: int = typer.Option(16, min=1, help="Requests per worker at each level"),
    seed: int = typer.Option(0, help="Seed of the synthetic sentences"),
    target: float = typer.Option(0.8, help="Efficiency the highest level should reach"),
    output: Path = typer.Option(Path("metrics/bench_annotate.json"), help="JSON result"),
) -> None:
    """Measure annotate's throughput at several concurrency levels against a loopback server."""
    report = bench(latency, list(concurrency), rounds, seed=seed, target=target)
    atomic_write_json(output, report)
    for row in report["levels"]:
        msg.text(
            f"concurrency {row['concurrency']:>3}: {row['sentences']:>4} sentences in "
            f"{row['wall_seconds']:.2f} s = {row['sentences_per_second']:.1f}/s, "
            f"speedup {row['speedup']:.2f} of {row['ideal_speedup']:g} "
            f"(efficiency {row['efficiency']:.2f})"
        )
    if report["meets_target"]:
        msg.good(f"Target met (efficiency >= {target}); wrote {output}")
    else:
        msg.warn(f"Target missed (efficiency < {target}); wrote {output}")


app = typer.Typer(add_completion=False)
app.command()(main)

if __name__ == "__main__":
    run_app(app)
