"""What the annotation tools expect: Label Studio and Prodigy task formats for sentence Docs.

Shared by ``scripts/al_export.py`` (Docs with pre-annotations -> tasks) and
``scripts/al_import.py`` (the experts' answers -> Docs). Offsets are character offsets into
``doc.text``; a sentence Doc keeps its original tokens, so every entity starts at a token's
``idx`` and ends where a token ends.

- Label Studio (https://labelstud.io/guide/predictions, https://labelstud.io/guide/task_format):
  a JSON list of tasks ``{"data": {...}, "predictions": [{"model_version", "score", "result"}]}``;
  each result item is ``{"from_name", "to_name", "type": "labels",
  "value": {"start", "end", "text", "labels": [label]}}``, with ``from_name``/``to_name`` the
  names of the ``<Labels>`` and ``<Text>`` tags of the labeling config.
- Prodigy (``ner.manual``): JSONL tasks ``{"text", "tokens": [{"text", "start", "end", "id",
  "ws"}], "spans": [{"start", "end", "token_start", "token_end", "label"}], "meta"}``, where
  ``token_end`` is the index of the span's last token (inclusive).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

from spacy.tokens import Doc, Span

from nerloop.corpus import meta
from nerloop.errors import NerloopError
from nerloop.labels import LabelScheme, as_scheme

LABEL_STUDIO = "labelstudio"
PRODIGY = "prodigy"
FORMATS = (LABEL_STUDIO, PRODIGY)

# Names of the Label Studio control (<Labels>) and object (<Text>) tags.
FROM_NAME = "label"
TO_NAME = "text"
RESULT_TYPE = "labels"

# File names inside the export folder.
LABEL_STUDIO_TASKS_FILE = "labelstudio_tasks.json"
LABEL_STUDIO_CONFIG_FILE = "labelstudio_config.xml"
PRODIGY_TASKS_FILE = "prodigy_tasks.jsonl"


def label_studio_config(
    labels: LabelScheme | Sequence[str] | None = None,
    from_name: str = FROM_NAME,
    to_name: str = TO_NAME,
) -> str:
    """The labeling config XML of a span-labelling project over ``data.text``.

    Each label of the scheme becomes a ``<Label>``, in scheme order; its description (when the
    scheme gives one) is the label's ``hint``, shown on hover (https://labelstud.io/tags/label).

    labels (Union[LabelScheme, Sequence[str], None]): The label scheme (None: the default).
    from_name (str): The name of the ``<Labels>`` control.
    to_name (str): The name of the ``<Text>`` object.
    RETURNS (str): The XML.
    """
    scheme = as_scheme(labels)
    label_lines = ""
    for label in scheme.labels:
        description = scheme.description(label)
        hint = f" hint={quoteattr(description)}" if description else ""
        label_lines += f"    <Label value={quoteattr(label)}{hint}/>\n"
    return (
        "<View>\n"
        f"  <Labels name={quoteattr(from_name)} toName={quoteattr(to_name)}>\n"
        f"{label_lines}"
        "  </Labels>\n"
        f'  <Text name={quoteattr(to_name)} value="$text"/>\n'
        "</View>\n"
    )


def label_studio_result(
    span: Span, index: int, from_name: str = FROM_NAME, to_name: str = TO_NAME
) -> dict[str, Any]:
    """One Label Studio ``labels`` result item for an entity span."""
    return {
        "id": f"ent{index}",
        "from_name": from_name,
        "to_name": to_name,
        "type": RESULT_TYPE,
        "value": {
            "start": span.start_char,
            "end": span.end_char,
            "text": span.text,
            "labels": [span.label_],
        },
    }


def prodigy_tokens(doc: Doc) -> list[dict[str, Any]]:
    """The Doc's tokens as Prodigy token dicts (``ws``: followed by whitespace)."""
    return [
        {
            "text": token.text,
            "start": token.idx,
            "end": token.idx + len(token.text),
            "id": token.i,
            "ws": bool(token.whitespace_),
        }
        for token in doc
    ]


def prodigy_span(span: Span) -> dict[str, Any]:
    """An entity as a Prodigy span (``token_end`` inclusive)."""
    return {
        "start": span.start_char,
        "end": span.end_char,
        "token_start": span.start,
        "token_end": span.end - 1,
        "label": span.label_,
    }


class SelectedBatchError(NerloopError, ValueError):
    """The selected batch cannot be matched with tasks (a Doc without ``sent_id``, duplicates)."""


def selected_sent_ids(docs: Sequence[Doc]) -> list[int]:
    """The selected Docs' sentence ids; a SelectedBatchError when one is missing or repeated."""
    ids: list[int] = []
    for position, doc in enumerate(docs):
        if meta.SENT_ID not in doc.user_data:
            raise SelectedBatchError(
                f"selected Doc #{position} ({doc.text[:40]!r}) has no '{meta.SENT_ID}' in "
                "doc.user_data: the experts' answers could not be matched back to it"
            )
        ids.append(meta.sent_id(doc))
    counts = Counter(ids)
    repeated = sorted(i for i, n in counts.items() if n > 1)
    if repeated:
        raise SelectedBatchError(
            f"sentence ids occur more than once in the selected batch: {repeated}"
        )
    return ids
