"""Tell a complete ``spacy.NER.v3`` reply from one that was cut off or is not in the format.

spacy-llm's span parsers (``spacy_llm/tasks/span/parser.py``) read a reply line by line and
skip every line they cannot read. A reply cut off mid-line, or one that says something else
entirely, therefore gives a Doc with fewer (or no) entities and no sign that anything is
missing. :func:`span_reply_problem` says when such a reply must be a failure instead.

A reply *cannot be parsed* when one of these holds (checked in this order):

1. the model stopped because of its token limit (``finish_reason == "length"``; checked by the
   annotator for every task, see ``nerloop.llm.annotator``);
2. it is empty (only whitespace);
3. chain-of-thought format (``spacy.NER.v3``'s default parser, ``parse_responses_cot``):
   an *entry line* is a line that starts with a list number (``3.`` or ``3)``) or holds a
   ``|``. A *complete* entry is ``[N.] text | True/False | LABEL | reason`` with four
   ``|``-separated fields, none empty, the second ``True`` or ``False`` (any case). The reply
   cannot be parsed if no line is a complete entry, or if any entry line is not complete
   (the last line cut off by the model, or a malformed line that spacy-llm would skip).
   Lines that are neither (a closing remark) are ignored;
4. ``Label: span, span`` format (``spacy.NER.v1``/``v2``'s parser, ``parse_responses``): the
   reply cannot be parsed if no line starts with a known label followed by ``:``, or if its
   last line does not (it was cut off or trails into prose). A cut inside the last span list
   (``PER: Peter Bla``) cannot be told from a complete one in this format; only
   ``finish_reason`` reveals it.

A task with another parser is only checked for 1 and 2.

:func:`span_reply_repairs` lists, per sentence, what spacy-llm dropped from a reply it could
parse: entries marked ``True`` with a label the task does not have (``unknown_label``) and
entities whose text was not found in the sentence or does not align to its tokens
(``not_found``).
"""

from __future__ import annotations

import re
from typing import Any

from spacy.tokens import Doc

CHAIN_OF_THOUGHT = "chain_of_thought"
LABEL_LINES = "label_lines"

_NUMBERED = re.compile(r"^\s*\d+\s*[.)]\s*")
_COT_ENTRY = re.compile(
    r"^\s*(?:\d+\s*[.)]\s*)?(?P<text>[^|]*?)\s*\|\s*(?P<is_entity>[^|]*?)\s*\|"
    r"\s*(?P<label>[^|]*?)\s*\|\s*(?P<reason>[^|]*?)\s*$"
)


def reply_format(task: Any) -> str | None:
    """The line format a spacy-llm span task's parser reads (None: not one of spacy-llm's)."""
    from spacy_llm.tasks.span import parser as span_parser

    parse = getattr(task, "_parse_responses", None)
    if parse is span_parser.parse_responses_cot:
        return CHAIN_OF_THOUGHT
    if parse is span_parser.parse_responses:
        return LABEL_LINES
    return None


def is_span_task(task: Any) -> bool:
    from spacy_llm.tasks.span import SpanTask

    return isinstance(task, SpanTask)


def cot_entry(line: str) -> dict[str, Any] | None:
    """A complete chain-of-thought entry line as a dict, else None."""
    match = _COT_ENTRY.match(line)
    if match is None:
        return None
    fields = match.groupdict()
    if not all(fields.values()) or fields["is_entity"].lower() not in ("true", "false"):
        return None
    return {
        "text": fields["text"],
        "is_entity": fields["is_entity"].lower() == "true",
        "label": fields["label"],
        "reason": fields["reason"],
    }


def _is_cot_entry_line(line: str) -> bool:
    return "|" in line or bool(_NUMBERED.match(line))


def _label_of_line(task: Any, line: str) -> str | None:
    if ":" not in line:
        return None
    label = line.split(":", 1)[0]
    return task._label_dict.get(task._normalizer(label))


def span_reply_problem(task: Any, reply: str) -> str | None:
    """Why a span task's reply cannot be parsed (see the module docstring), or None.

    task (SpanTask): the spacy-llm task (``spacy.NER.v3``, ...).
    reply (str): the raw reply for one sentence (shard).
    RETURNS (Optional[str]): the problem, for the failures file; None when it can be parsed.
    """
    lines = [line.strip() for line in str(reply).strip().splitlines() if line.strip()]
    if not lines:
        return "the reply is empty"
    form = reply_format(task)
    if form == CHAIN_OF_THOUGHT:
        entry_lines = [(n, line) for n, line in enumerate(lines, 1) if _is_cot_entry_line(line)]
        if not any(cot_entry(line) for _, line in entry_lines):
            return (
                "no line of the form 'N. text | True/False | LABEL | reason' in the reply: "
                f"{_clip(lines[0])!r}"
            )
        for n, line in entry_lines:
            if cot_entry(line) is None:
                where = "the last line" if n == len(lines) else f"line {n}"
                return f"{where} is not a complete entry (cut off?): {_clip(line)!r}"
    elif form == LABEL_LINES:
        if not any(_label_of_line(task, line) for line in lines):
            known = ", ".join(task._label_dict.values())
            return f"no 'LABEL: span, span' line with a known label ({known}) in the reply"
        if _label_of_line(task, lines[-1]) is None:
            return f"the last line is not a 'LABEL: spans' line (cut off?): {_clip(lines[-1])!r}"
    return None


def span_reply_repairs(task: Any, reply: str, parsed: Doc) -> list[dict[str, Any]]:
    """What spacy-llm dropped from a chain-of-thought reply it could parse (see module doc).

    task (SpanTask): the spacy-llm task.
    reply (str): the raw reply.
    parsed (Doc): the Doc the task made from it.
    RETURNS (List[dict]): one record per dropped entry: ``kind``, ``text``, ``label``.
    """
    if reply_format(task) != CHAIN_OF_THOUGHT:
        return []
    found = {(ent.text.lower(), ent.label_) for ent in parsed.ents}
    repairs: list[dict[str, Any]] = []
    for line in str(reply).splitlines():
        entry = cot_entry(line)
        if entry is None or not entry["is_entity"]:
            continue
        label = task._label_dict.get(task._normalizer(entry["label"]))
        if label is None:
            repairs.append(
                {"kind": "unknown_label", "text": entry["text"], "label": entry["label"]}
            )
        elif (entry["text"].lower(), label) not in found:
            repairs.append({"kind": "not_found", "text": entry["text"], "label": label})
    return repairs


def _clip(text: str, length: int = 80) -> str:
    return text if len(text) <= length else text[: length - 3] + "..."
