"""``nerloop.TokenNER.v1``: token-level NER with the study's prompt (see ``registry.py``)."""

from nerloop.llm.tasks.token_ner.parser import TokenNERReply, parse_reply
from nerloop.llm.tasks.token_ner.registry import make_token_ner_task
from nerloop.llm.tasks.token_ner.task import (
    ERROR_EXTENSION,
    REPAIRS_EXTENSION,
    STATS_EXTENSION,
    TokenNERTask,
)
from nerloop.llm.tasks.token_ner.util import (
    iob2_to_spans,
    repair_iob2,
    resolve_type,
    study_tag_ids,
    tag_ids_for_labels,
)

__all__ = [
    "ERROR_EXTENSION",
    "REPAIRS_EXTENSION",
    "STATS_EXTENSION",
    "TokenNERReply",
    "TokenNERTask",
    "iob2_to_spans",
    "make_token_ner_task",
    "parse_reply",
    "repair_iob2",
    "resolve_type",
    "study_tag_ids",
    "tag_ids_for_labels",
]
