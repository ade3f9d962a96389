"""Evaluate a trained tagger on dev and test and write ``metrics/<model>.json``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from wasabi import msg

from nerloop.eval.pipeline import evaluate_pipeline, load_pipeline
from nerloop.io_utils import MissingInputError, atomic_path, read_docbin

SELECTED = "model-selected"


def select_on_dev(training_dir: Path, dev_path: Path, batch_size: int = 64) -> tuple[Path, dict]:
    """Pick model-best or model-last of a ``spacy train`` output by dev F1 (never by test).

    spaCy's model-best is the best of the periodic evaluations; the last steps after the final
    evaluation (often the best, once the learning rate has decayed) are only in model-last.
    RETURNS (Tuple[Path, dict]): the chosen pipeline and the dev scores of each candidate.
    """
    candidates = [training_dir / name for name in ("model-best", "model-last")]
    candidates = [path for path in candidates if (path / "config.cfg").exists()]
    if not candidates:
        raise MissingInputError(f"{training_dir} holds neither model-best nor model-last")
    dev_scores = {}
    for path in candidates:
        nlp = load_pipeline(path)
        msg.text(f"Selecting on dev: {path}")
        dev_scores[path.name] = evaluate_pipeline(nlp, read_docbin(dev_path, nlp.vocab), batch_size)
    chosen = max(candidates, key=lambda path: dev_scores[path.name]["f1"])
    return chosen, dev_scores


def tok2vec_kind(nlp) -> str:
    """``transformer`` (a fine-tuned transformer component), ``frozen transformer`` (the
    tagger's tok2vec holds ``nerloop.FrozenTransformer.v1``) or ``CNN``."""
    if "transformer" in nlp.pipe_names:
        return "transformer"
    if "nerloop.FrozenTransformer" in nlp.config.to_str():
        return "frozen transformer"
    return "CNN"


def evaluate_model(
    model_path: Path, name: str, splits: dict[str, Path], batch_size: int = 64
) -> dict:
    """Evaluate a pipeline on each split. Given a ``spacy train`` output folder instead of a
    pipeline, first choose model-best or model-last by dev F1 (``splits["dev"]``)."""
    selection = None
    known: dict[str, dict] = {}
    if not (model_path / "config.cfg").exists() and "dev" in splits:
        training_dir = model_path
        model_path, dev_scores = select_on_dev(training_dir, splits["dev"], batch_size)
        # later steps (compare, package) use the chosen pipeline under a fixed name
        with atomic_path(training_dir / SELECTED) as tmp:
            shutil.copytree(model_path, tmp)
        selection = {
            "chosen": model_path.name,
            "copied_to": str(training_dir / SELECTED),
            "by": "dev F1",
            "dev_f1": {key: scores["f1"] for key, scores in dev_scores.items()},
        }
        known["dev"] = dev_scores[model_path.name]  # already measured: not predicted twice
    nlp = load_pipeline(model_path)
    result = {
        "model": name,
        "path": str(model_path),
        "pipeline": nlp.pipe_names,
        "tok2vec": tok2vec_kind(nlp),
    }
    if selection:
        result["selection"] = selection
    meta_path = model_path / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        result["training"] = {
            key: meta.get(key) for key in ("performance", "sources") if meta.get(key) is not None
        }
    for split, path in splits.items():
        if split in known:
            result[split] = known[split]
            continue
        msg.text(f"Evaluating {name} on {split} ({path})")
        result[split] = evaluate_pipeline(nlp, read_docbin(path, nlp.vocab), batch_size)
    return result
