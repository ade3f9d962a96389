"""Score pool sentences by model uncertainty: one JSONL row per sentence, most uncertain first.

python -m scripts.score MODEL POOL.spacy --strategy entropy --output scores.jsonl
"""

from __future__ import annotations

from pathlib import Path

from nerloop.al.scoring import ScoredPool, score_pool
from nerloop.al.strategies import make_strategy
from nerloop.eval.pipeline import load_pipeline
from nerloop.io_utils import atomic_write_json, atomic_write_jsonl, read_docbin


def score_file(
    model_path: Path,
    pool_path: Path,
    output_path: Path,
    *,
    strategy_name: str = "entropy",
    stats_path: Path | None = None,
    seed: int = 0,
    mc_samples: int = 10,
    mc_dropout: float = 0.1,
    batch_size: int = 64,
    top_tokens: int = 3,
    limit: int = 0,
    progress: bool = True,
) -> ScoredPool:
    """Score the Docs of ``pool_path`` with a pipeline and write the rows (and the throughput)."""
    strategy = make_strategy(strategy_name, seed=seed, mc_samples=mc_samples, mc_dropout=mc_dropout)
    nlp = load_pipeline(model_path)
    docs = read_docbin(pool_path, nlp.vocab)
    if limit:
        docs = docs[:limit]
    scored = score_pool(nlp, docs, strategy, batch_size=batch_size, seed=seed, progress=progress)
    atomic_write_jsonl(output_path, scored.rows(top_tokens))
    if stats_path is not None:
        atomic_write_json(
            stats_path,
            {"model": str(model_path), "pool": str(pool_path), "batch_size": batch_size}
            | scored.stats(),
        )
    return scored
