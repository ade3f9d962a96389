"""Tag ids, IOB2 repair and span conversion for the token-level NER task."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from spacy.tokens import Doc, Span
from spacy.training import biluo_tags_to_spans, biluo_to_iob, iob_to_biluo

from nerloop.labels import OUTSIDE

STUDY_TAG_IDS_PATH = Path(__file__).parent / "templates" / "token_ner.v1.tag_ids.json"


def study_tag_ids() -> dict[str, int]:
    """The tag ids the study's prompt lists (``templates/token_ner.v1.tag_ids.json``, the
    CoNLL-2003 dataset's own ids), read from the file beside the template."""
    return dict(json.loads(STUDY_TAG_IDS_PATH.read_text(encoding="utf8")))


def tag_ids_for_labels(labels: Sequence[str]) -> dict[str, int]:
    """IOB2 tag -> id for a label set: ``O`` is 0, then ``B-X``, ``I-X`` per label.

    The ids follow the labels' order, except that a label set equal to the study's (as a set)
    gets the study's ids (:func:`study_tag_ids`), so the default CoNLL-2003 scheme reproduces
    the study's prompt byte for byte, whatever order its file lists the labels in.

    labels (Sequence[str]): the entity labels (a ``LabelScheme`` works too).
    RETURNS (Dict[str, int]): the ids, in id order.
    """
    labels = list(labels)
    study = study_tag_ids()
    if {tag[2:] for tag in study if tag != OUTSIDE} == set(labels):
        return study
    tags = [OUTSIDE] + [f"{prefix}-{label}" for label in labels for prefix in "BI"]
    return {tag: i for i, tag in enumerate(tags)}


def labels_of_tag_ids(tag_ids: Mapping[str, int]) -> list[str]:
    """The entity labels of a tag-id map, in id order."""
    ordered = sorted(tag_ids, key=lambda tag: tag_ids[tag])
    return list(dict.fromkeys(tag[2:] for tag in ordered if tag != OUTSIDE))


def _type_key(name: str) -> str:
    return re.sub(r"[\s\-_]+", "_", name.strip().upper())


def resolve_type(
    name: str, known_types: Iterable[str], synonyms: Mapping[str, str] | None = None
) -> str | None:
    """The label a reply's entity type means, or None.

    A type matches a label when it is the label (ignoring case, ``-``/``_``/space), when a
    synonym maps it to the label (``{"GPE": "LOC"}``, optional), or when one is the start of
    the other and only one label fits (``PERSON`` -> ``PER``, ``ORGANIZATION`` -> ``ORG``;
    both at least three characters long).

    name (str): the type the reply gave (``"person"``, ``"B-Org"`` without its prefix, ...).
    known_types (Iterable[str]): the task's labels.
    synonyms (Optional[Mapping[str, str]]): reply type -> label, tried first.
    RETURNS (Optional[str]): the label as the task spells it.
    """
    by_key = {_type_key(label): label for label in known_types}
    key = _type_key(name)
    if not key:
        return None
    for alias, label in (synonyms or {}).items():
        if _type_key(alias) == key and _type_key(label) in by_key:
            return by_key[_type_key(label)]
    if key in by_key:
        return by_key[key]
    fits = [
        label
        for label_key, label in by_key.items()
        if min(len(label_key), len(key)) >= 3
        and (key.startswith(label_key) or label_key.startswith(key))
    ]
    return fits[0] if len(fits) == 1 else None


def repair_iob2(tags: Sequence[str]) -> tuple[list[str], int]:
    """Turn every ``I-X`` that does not continue an ``X`` entity into ``B-X``.

    spaCy's ``iob_to_biluo`` reads such an ``I-X`` as an entity start, so the round trip
    through BILUO is the repair; only the count of changed tags is added here.

    tags (Sequence[str]): IOB2 tags, possibly invalid (``I-`` after ``O`` or after another type).
    RETURNS (tuple[list[str], int]): the repaired tags and how many were changed.
    """
    repaired = biluo_to_iob(iob_to_biluo(tags))
    return repaired, sum(old != new for old, new in zip(tags, repaired, strict=True))


def iob2_to_spans(doc: Doc, tags: Sequence[str]) -> list[Span]:
    """Entity spans of ``doc`` from valid IOB2 tags (one per token).

    doc (Doc): the Doc the tags belong to.
    tags (Sequence[str]): IOB2 tags, one per token.
    RETURNS (List[Span]): the entities, in order.
    """
    if len(tags) != len(doc):
        # A caller's bug (the parser aligns every reply to the Doc's tokens), not a user error.
        raise ValueError(f"{len(tags)} tags for {len(doc)} tokens")
    return biluo_tags_to_spans(doc, iob_to_biluo(tags))
