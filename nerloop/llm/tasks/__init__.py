"""spacy-llm tasks registered by the project (one folder per task, as in ``spacy_llm/tasks``)."""

from nerloop.llm.tasks import few_shot, token_ner  # noqa: F401  (registers the functions)
