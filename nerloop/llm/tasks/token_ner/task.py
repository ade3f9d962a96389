"""``nerloop.TokenNER.v1``: the study's token-level NER prompt as a spacy-llm task."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

# spacy-llm validates task signatures by inspecting ``typing`` generics (``_name ==
# "Iterable"``), so ``Iterable`` must come from ``typing``, not ``collections.abc``.
from typing import Any, Iterable  # noqa: UP035

from spacy.tokens import Doc
from spacy.training import Example
from spacy_llm.compat import Self
from spacy_llm.tasks.builtin_task import BuiltinTask
from spacy_llm.ty import FewshotExample, Scorer, ShardMapper, ShardReducer, TaskResponseParser

from nerloop.errors import SettingsError
from nerloop.llm.tasks.token_ner.util import iob2_to_spans

TEMPLATE_DIR = Path(__file__).parent / "templates"
DEFAULT_TOKEN_NER_TEMPLATE_V1 = (TEMPLATE_DIR / "token_ner.v1.jinja").read_text(encoding="utf8")

# Doc extensions through which the task reports, per Doc, what its parser had to do: the error
# (None when the reply was used), the repair counts, and one record per repair.
ERROR_EXTENSION = "nerloop_llm_error"
STATS_EXTENSION = "nerloop_llm_stats"
REPAIRS_EXTENSION = "nerloop_llm_repairs"
for _name in (ERROR_EXTENSION, STATS_EXTENSION, REPAIRS_EXTENSION):
    if not Doc.has_extension(_name):
        Doc.set_extension(_name, default=None)


class TokenNERExample(FewshotExample):
    """A labelled sentence in the task's terms (tokens and IOB2 tags)."""

    tokens: list[str]
    ner_tags: list[str]

    @classmethod
    def generate(cls, example: Example, task: TokenNERTask) -> Self | None:
        reference = example.reference
        tags = [
            "O" if token.ent_iob_ in ("", "O") else f"{token.ent_iob_}-{token.ent_type_}"
            for token in reference
        ]
        return cls(tokens=[token.text for token in reference], ner_tags=tags)


class TokenNERTask(BuiltinTask):
    def __init__(
        self,
        parse_responses: TaskResponseParser[Self],
        prompt_example_type: type[FewshotExample[Self]],
        template: str,
        tag_ids: dict[str, int],
        min_aligned_fraction: float,
        shard_mapper: ShardMapper,
        shard_reducer: ShardReducer[Self],
        scorer: Scorer,
        type_synonyms: dict[str, str] | None = None,
    ):
        """Token-level NER: the prompt lists the tokens, the LLM answers one tag id per token.

        parse_responses (TaskResponseParser[Self]): parses replies into one tag per token.
        prompt_example_type (Type[FewshotExample[Self]]): type of few-shot examples.
        template (str): the Jinja prompt template (receives ``tokens`` and ``tag_ids``).
        tag_ids (Dict[str, int]): IOB2 tag -> id, as listed in the prompt (from the label
            scheme, see ``registry.make_token_ner_task``).
        min_aligned_fraction (float): a reply matching fewer of the tokens is an error.
        shard_mapper (ShardMapper): maps Docs to shards if a prompt exceeds the context.
        shard_reducer (ShardReducer[Self]): fuses shards back into one Doc.
        scorer (Scorer): scorer for ``nlp.evaluate``.
        type_synonyms (Optional[Dict[str, str]]): reply entity type -> label, e.g.
            ``{"GPE": "LOC"}``; tried before the built-in matching of spellings.
        """
        super().__init__(
            parse_responses=parse_responses,
            prompt_example_type=prompt_example_type,
            template=template,
            prompt_examples=None,
            shard_mapper=shard_mapper,
            shard_reducer=shard_reducer,
        )
        if "O" not in tag_ids:
            raise SettingsError(f"tag_ids must contain 'O', got {sorted(tag_ids)}")
        for tag in tag_ids:
            if tag != "O" and not (tag.startswith(("B-", "I-")) and len(tag) > 2):
                raise SettingsError(f"tag {tag!r} is not an IOB2 tag")
        self._tag_ids = dict(tag_ids)
        self._type_synonyms = dict(type_synonyms or {})
        self._min_aligned_fraction = min_aligned_fraction
        self._scorer = scorer

    @property
    def tag_ids(self) -> dict[str, int]:
        return self._tag_ids

    @property
    def type_synonyms(self) -> dict[str, str]:
        return self._type_synonyms

    @property
    def min_aligned_fraction(self) -> float:
        return self._min_aligned_fraction

    @property
    def labels(self) -> tuple:
        return tuple(dict.fromkeys(tag[2:] for tag in self._tag_ids if tag != "O"))

    def _get_prompt_data(
        self, shard: Doc, i_shard: int, i_doc: int, n_shards: int
    ) -> dict[str, Any]:
        return {"tokens": [token.text for token in shard], "tag_ids": self._tag_ids}

    def parse_responses(
        self, shards: Iterable[Iterable[Doc]], responses: Iterable[Iterable[str]]
    ) -> Iterable[Doc]:
        """Set the parsed entities on each Doc; report errors and repairs in Doc extensions.

        A Doc whose reply (or one of whose shards' replies) cannot be used gets no entities
        and ``doc._.nerloop_llm_error`` set; ``doc._.nerloop_llm_stats`` counts the repairs and
        ``doc._.nerloop_llm_repairs`` lists them (token positions relative to the whole Doc).
        """
        shards_teed = self._tee_2d_iterable(shards, 2)
        for shards_for_doc, replies_for_doc in zip(
            shards_teed[0], self._parse_responses(self, shards_teed[1], responses)
        ):
            errors: list[str] = []
            stats: Counter = Counter()
            repairs: list[dict[str, Any]] = []
            offset = 0
            shards_for_doc = list(shards_for_doc)
            for shard, reply in zip(shards_for_doc, replies_for_doc):
                stats.update(reply.stats)
                for record in reply.repairs:
                    if offset and "positions" in record:
                        record = {**record, "positions": [p + offset for p in record["positions"]]}
                    if offset and "at" in record:
                        record = {**record, "at": record["at"] + offset}
                    repairs.append(record)
                offset += len(shard)
                if reply.tags is None:
                    errors.append(reply.error or "unusable reply")
                    shard.set_ents([], default="outside")
                else:
                    shard.set_ents(iob2_to_spans(shard, reply.tags), default="outside")
            doc = self._shard_reducer(self, shards_for_doc)  # type: ignore[arg-type]
            if errors:
                doc.set_ents([], default="outside")
            doc._.set(ERROR_EXTENSION, "; ".join(errors) if errors else None)
            doc._.set(STATS_EXTENSION, dict(stats))
            doc._.set(REPAIRS_EXTENSION, repairs)
            yield doc

    def scorer(self, examples: Iterable[Example]) -> dict[str, Any]:
        return self._scorer(examples)

    @property
    def _cfg_keys(self) -> list[str]:
        return ["_template", "_tag_ids", "_type_synonyms", "_min_aligned_fraction"]
