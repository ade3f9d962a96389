"""Cheap annotation with spacy-llm (issue 4).

Importing this package registers the project's spacy-llm functions:

- ``nerloop.TokenNER.v1`` (``@llm_tasks``): the study's token-level JSON prompt;
- ``nerloop.TokenNERParser.v1`` (``@llm_misc``): its lenient, re-aligning reply parser;
- ``nerloop.GoldFewShot.v1`` (``@llm_misc``): few-shot examples for ``spacy.NER.v3`` from gold Docs;
- ``nerloop.OpenAICompatible.v1`` (``@llm_models``): any OpenAI-compatible chat endpoint.

The engine that drives a configured ``llm`` component over a DocBin (cache, concurrency,
failures, cost) lives in :mod:`scripts.llm.annotator`.
"""

from nerloop.llm import models, tasks  # noqa: F401  (registers the nerloop.* functions)
