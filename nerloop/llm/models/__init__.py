"""spacy-llm models registered by the project (one folder per backend, as in spacy-llm)."""

from nerloop.llm.models import openai_compatible  # noqa: F401  (registers the functions)
