"""Registered functions of the token-level NER task (what configs call)."""

from __future__ import annotations

from spacy.tokens import Doc
from spacy_llm.registry import registry
from spacy_llm.tasks.ner.util import score as ner_score
from spacy_llm.tasks.util.sharding import make_shard_mapper
from spacy_llm.ty import Scorer, ShardMapper, ShardReducer, TaskResponseParser

from nerloop.errors import SettingsError
from nerloop.labels import as_scheme
from nerloop.llm.tasks.token_ner.parser import parse_responses_v1
from nerloop.llm.tasks.token_ner.task import (
    DEFAULT_TOKEN_NER_TEMPLATE_V1,
    TokenNERExample,
    TokenNERTask,
)
from nerloop.llm.tasks.token_ner.util import labels_of_tag_ids, tag_ids_for_labels


def reduce_shards_to_doc(task: TokenNERTask, shards) -> Doc:
    """Fuse Doc shards back into one Doc (entities are token attributes, so they survive)."""
    shards = list(shards)
    return shards[0] if len(shards) == 1 else Doc.from_docs(shards, ensure_whitespace=True)


@registry.llm_misc("nerloop.TokenNERParser.v1")
def make_token_ner_parser() -> TaskResponseParser[TokenNERTask]:
    return parse_responses_v1


@registry.llm_misc("nerloop.TokenNERShardReducer.v1")
def make_shard_reducer() -> ShardReducer:
    return reduce_shards_to_doc


@registry.llm_tasks("nerloop.TokenNER.v1")
def make_token_ner_task(
    template: str = DEFAULT_TOKEN_NER_TEMPLATE_V1,
    tag_ids: dict[str, int] | None = None,
    min_aligned_fraction: float = 0.5,
    parse_responses: TaskResponseParser[TokenNERTask] | None = None,
    shard_mapper: ShardMapper | None = None,
    shard_reducer: ShardReducer | None = None,
    scorer: Scorer | None = None,
    labels: list[str] | str | None = None,
    type_synonyms: dict[str, str] | None = None,
) -> TokenNERTask:
    """TokenNER.v1 task factory: the study's prompt (tokens listed one by one, a JSON reply
    with ``tokens`` and ``ner_tags`` as tag ids).

    template (str): prompt template; the default reproduces the study's prompt byte for byte.
    tag_ids (Optional[Dict[str, int]]): IOB2 tag -> id; default derived from ``labels``
        (``O`` = 0, then ``B-X``, ``I-X`` per label; the study's ids for the CoNLL-2003 labels,
        see ``util.tag_ids_for_labels``). Given together with ``labels``, both must name the
        same labels.
    min_aligned_fraction (float): a reply that matches fewer of the sentence's tokens is
        recorded as a failure instead of being guessed.
    parse_responses (Optional[TaskResponseParser]): reply parser (``nerloop.TokenNERParser.v1``).
    shard_mapper (Optional[ShardMapper]): maps Docs to shards if a prompt exceeds the context.
    shard_reducer (Optional[ShardReducer]): fuses shards back into one Doc.
    scorer (Optional[Scorer]): scorer (spaCy's entity P/R/F).
    labels (Optional[Union[List[str], str]]): the entity labels, or the path of a label scheme
        file (``nerloop.labels.load_scheme``); default the project's default scheme (CoNLL-2003).
        ``scripts.annotate --labels`` sets this from the project's scheme.
    type_synonyms (Optional[Dict[str, str]]): reply entity type -> label (``{"GPE": "LOC"}``),
        for types the built-in spelling matching does not resolve.
    RETURNS (TokenNERTask): the task.
    """
    if not 0.0 <= min_aligned_fraction <= 1.0:
        raise SettingsError(f"min_aligned_fraction must be in [0, 1], got {min_aligned_fraction}")
    if tag_ids is None:
        tag_ids = tag_ids_for_labels(as_scheme(labels).labels)
    elif labels is not None:
        scheme = as_scheme(labels)
        if set(labels_of_tag_ids(tag_ids)) != set(scheme.labels):
            raise SettingsError(
                f"tag_ids name the labels {labels_of_tag_ids(tag_ids)}, the label scheme "
                f"{list(scheme.labels)}: drop tag_ids (they are derived from the scheme) or make "
                "them agree"
            )
    if type_synonyms:
        known = labels_of_tag_ids(tag_ids)
        for alias, label in type_synonyms.items():
            if label not in known:
                raise SettingsError(
                    f"type_synonyms maps {alias!r} to {label!r}, which is not a label ({known})"
                )
    return TokenNERTask(
        parse_responses=parse_responses or parse_responses_v1,
        prompt_example_type=TokenNERExample,
        template=template,
        tag_ids=dict(tag_ids),
        min_aligned_fraction=min_aligned_fraction,
        shard_mapper=shard_mapper or make_shard_mapper(),
        shard_reducer=shard_reducer or make_shard_reducer(),
        scorer=scorer or ner_score,
        type_synonyms=dict(type_synonyms or {}),
    )
