"""nerloop: cheap NER from LLM labels, a small expert budget and active learning.

Each stage of the project can be run from Python; the names below are imported lazily, so
``import nerloop`` is cheap (torch and spaCy load on first use)::

    import nerloop

    train = nerloop.read_docbin("corpus/train.spacy")
    nlp = nerloop.load_pipeline("training/gold/model-best")
    scores = nerloop.evaluate_pipeline(nlp, nerloop.read_docbin("corpus/dev.spacy"))

The modules hold the rest: ``nerloop.corpus``, ``nerloop.llm``, ``nerloop.training``,
``nerloop.mixing``, ``nerloop.budget``, ``nerloop.al``, ``nerloop.formats``, ``nerloop.hub``,
``nerloop.eval``, ``nerloop.report``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_API = {
    "NerloopError": "nerloop.errors",
    "read_docbin": "nerloop.io_utils",
    "write_docbin": "nerloop.io_utils",
    "preprocess": "nerloop.corpus.preprocess",
    "annotate_docs": "nerloop.llm.annotator",
    "load_pipeline": "nerloop.eval.pipeline",
    "predict_with_probs": "nerloop.eval.pipeline",
    "evaluate_pipeline": "nerloop.eval.pipeline",
    "init_pipeline": "nerloop.training",
    "finetune": "nerloop.training",
    "mix_corpus": "nerloop.mixing",
    "load_settings": "nerloop.settings",
    "make_strategy": "nerloop.al.strategies",
    "score_pool": "nerloop.al.scoring",
    "select_batch": "nerloop.al.selection",
    "run_loop": "nerloop.al.loop",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'nerloop' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
