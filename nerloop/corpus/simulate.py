"""A simulated LLM: gold labels corrupted at stated, seeded rates (for corpora without recorded
LLM labels, such as BC5CDR). Every figure made from it must say so.

Each gold entity is missed with probability ``miss_rate``; a kept one gets another label of the
scheme with probability ``wrong_label_rate``. The draw for a sentence depends on the seed and its
sentence id only, so a sentence is corrupted the same way whatever else is in the corpus.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from spacy.tokens import Doc, Span

from nerloop.corpus import meta
from nerloop.errors import SettingsError
from nerloop.labels import LabelScheme, as_scheme

SIMULATED_ANNOTATOR = "simulated_llm"


def corrupt_labels(
    gold_docs: Sequence[Doc],
    *,
    miss_rate: float,
    wrong_label_rate: float,
    seed: int = 0,
    scheme: LabelScheme | str | None = None,
) -> tuple[list[Doc], dict[str, Any]]:
    """Copies of ``gold_docs`` with corrupted entities, as a cheap (LLM-labelled) set.

    gold_docs (Sequence[Doc]): Gold sentence Docs with sentence ids.
    miss_rate (float): Probability that an entity is left out.
    wrong_label_rate (float): Probability that a kept entity gets another label.
    seed (int): Seeds the draws (with each sentence id).
    scheme (Optional[LabelScheme]): The labels a wrong label is drawn from (None: the default).
    RETURNS (Tuple[List[Doc], dict]): The cheap Docs (one per gold Doc, same order, metadata
        ``source`` cheap and ``annotator`` simulated_llm) and a report of what was changed.
    """
    for name, rate in (("miss_rate", miss_rate), ("wrong_label_rate", wrong_label_rate)):
        if not 0.0 <= rate <= 1.0:
            raise SettingsError(f"{name} must be between 0 and 1, not {rate}")
    scheme = as_scheme(scheme)
    if wrong_label_rate > 0 and len(scheme) < 2:
        raise SettingsError("wrong_label_rate needs a scheme with at least two labels")
    counts: Counter[str] = Counter()
    out = []
    for doc in gold_docs:
        sent_id = meta.sent_id(doc)
        rng = random.Random(f"{seed}:{sent_id}")
        copy = Doc(
            doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]
        )
        copy.user_data.update(doc.user_data)
        ents = []
        for ent in doc.ents:
            scheme.check(ent.label_, f"sent_id {sent_id}")
            counts["gold_entities"] += 1
            if rng.random() < miss_rate:
                counts["missed"] += 1
                continue
            label = ent.label_
            if rng.random() < wrong_label_rate:
                label = rng.choice([other for other in scheme.labels if other != label])
                counts["wrong_label"] += 1
            ents.append(Span(copy, ent.start, ent.end, label=label))
        copy.set_ents(ents, default="outside")
        counts["entities"] += len(ents)
        meta.set_meta(copy, source="cheap", annotator=SIMULATED_ANNOTATOR)
        out.append(copy)
    report = {
        "simulated": True,
        "miss_rate": miss_rate,
        "wrong_label_rate": wrong_label_rate,
        "seed": seed,
        "sentences": len(out),
        **dict(counts),
    }
    return out, report


def expert_answers(
    tasks: Sequence[dict[str, Any]], gold: dict[int, Doc], *, annotator_id: int = 1
) -> list[dict[str, Any]]:
    """Simulated experts: Label Studio's JSON export of ``tasks`` (as nerloop exported them,
    pre-annotations included) after an expert replaced every pre-annotation with the gold
    entities of the task's sentence. Every figure made with it must say the experts were
    simulated.

    tasks (Sequence[dict]): Label Studio tasks with ``data.sent_id`` (``labelstudio_tasks.json``).
    gold (Dict[int, Doc]): Gold Docs by sentence id.
    annotator_id (int): The ``completed_by`` user id written on every annotation.
    RETURNS (List[dict]): The export, one task per input task, in the same order.
    """
    # imported here: nerloop.formats imports nerloop.corpus
    from nerloop.formats.common import label_studio_result

    out = []
    for position, task in enumerate(tasks):
        sent_id = task.get("data", {}).get("sent_id")
        if sent_id not in gold:
            raise SettingsError(
                f"task {position} (sent_id {sent_id!r}) has no gold sentence to answer it from"
            )
        doc = gold[sent_id]
        if doc.text != task["data"].get("text"):
            raise SettingsError(
                f"task {position} (sent_id {sent_id}): its text is not the gold sentence's"
            )
        answered = dict(task)
        answered["id"] = task.get("id", position + 1)
        answered["annotations"] = [
            {
                "id": position + 1,
                "completed_by": annotator_id,
                "was_cancelled": False,
                "created_at": "1970-01-01T00:00:00.000000Z",
                "updated_at": "1970-01-01T00:00:00.000000Z",
                "result": [label_studio_result(ent, i) for i, ent in enumerate(doc.ents)],
            }
        ]
        out.append(answered)
    return out
