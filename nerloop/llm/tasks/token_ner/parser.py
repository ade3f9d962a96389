"""Parse what real LLMs send back for the token-level prompt, and re-align it to the tokens.

A reply is accepted when its JSON can be found (code fences, prose around it, single quotes,
trailing commas and ``true``/``null`` spellings are all tolerated), its tags can be read (ids,
id strings, tag names such as ``"B-PER"``, ``"PERSON"`` or BIOES prefixes), and enough of the
original tokens can be matched to the tokens it lists. Tokens that the LLM dropped, merged, split
or changed are re-aligned with :mod:`difflib` (token level, then character level inside a
changed block); tokens it invented are ignored. What cannot be aligned is an error, which the
task reports instead of guessing.

Entity types are the task's labels (from the label scheme): a reply's type is matched to them
by :func:`nerloop.llm.tasks.token_ner.util.resolve_type` (case, ``-``/``_``, prefixes such as
``PERSON`` for ``PER``, and an optional synonym map).

Every repair is also recorded, per sentence, in ``TokenNERReply.repairs``: one dict per repaired
block with its ``kind`` (``dropped``, ``invented``, ``changed``, ``merged``, ``split``,
``length_mismatch``, ``unknown_tag``, ``iob_repaired``), the original token ``positions`` and
``tokens`` and the ``reply_tokens`` involved (``invented``: ``at``, the position they stand
before, and the ``reply_tokens``).
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spacy.tokens import Doc

from nerloop.errors import NerloopError
from nerloop.llm.tasks.token_ner.util import labels_of_tag_ids, repair_iob2, resolve_type

if TYPE_CHECKING:
    from nerloop.llm.tasks.token_ner.task import TokenNERTask

TAG_KEYS = ("ner_tags", "tags", "ner", "labels", "ner_labels", "iob_tags", "tag_ids")
TOKEN_KEYS = ("tokens", "words", "token_list")
ITEM_TOKEN_KEYS = ("token", "word", "text")
ITEM_TAG_KEYS = ("ner_tag", "tag", "label", "ner", "entity")
BIOES_PREFIXES = {"B": "B", "S": "B", "U": "B", "I": "I", "E": "I", "L": "I"}
OUTSIDE_SPELLINGS = {"", "O", "NONE", "OUTSIDE", "NULL", "-"}

_FENCE = re.compile(r"```[ \t]*[A-Za-z]*[ \t]*\r?\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_JSON_LITERALS = {"true": "True", "false": "False", "null": "None"}
_JSON_LITERAL_RE = re.compile(r"\b(true|false|null)\b")
_PREFIXED = re.compile(r"^([A-Za-z])[-_](.+)$")


class ReplyError(NerloopError, ValueError):
    """The reply cannot be turned into one tag per original token."""


@dataclass
class TokenNERReply:
    """The parse of one reply for one Doc shard.

    tags (list[str] | None): valid IOB2 tags, one per token of the shard; None on error.
    error (str | None): why the reply could not be used.
    stats (Counter): what had to be repaired (``dropped``, ``invented``, ``changed``,
        ``merged_or_split``, ``unknown_tags``, ``repaired_iob``, ``length_mismatch``, ...).
    repairs (list[dict]): one record per repair (see the module docstring).
    """

    tags: list[str] | None
    error: str | None = None
    stats: Counter = field(default_factory=Counter)
    repairs: list[dict[str, Any]] = field(default_factory=list)


def parse_responses_v1(
    task: TokenNERTask, shards: Iterable[Iterable[Doc]], responses: Iterable[Iterable[str]]
) -> Iterable[list[TokenNERReply]]:
    """Parse LLM responses for ``nerloop.TokenNER.v1`` (the ``TaskResponseParser`` contract).

    task (TokenNERTask): the task (gives the tag ids and the alignment threshold).
    shards (Iterable[Iterable[Doc]]): Doc shards per Doc.
    responses (Iterable[Iterable[str]]): one response per shard, per Doc.
    RETURNS (Iterable[list[TokenNERReply]]): one parse per shard, per Doc.
    """
    for shards_for_doc, responses_for_doc in zip(shards, responses):
        yield [
            parse_reply(
                str(response),
                [token.text for token in shard],
                task.tag_ids,
                min_aligned_fraction=task.min_aligned_fraction,
                type_synonyms=task.type_synonyms,
            )
            for shard, response in zip(shards_for_doc, responses_for_doc)
        ]


def parse_reply(
    reply: str,
    tokens: Sequence[str],
    tag_ids: Mapping[str, int],
    *,
    min_aligned_fraction: float = 0.5,
    type_synonyms: Mapping[str, str] | None = None,
) -> TokenNERReply:
    """One reply to one tag per token.

    reply (str): the raw LLM answer.
    tokens (Sequence[str]): the tokens the prompt listed.
    tag_ids (Mapping[str, int]): tag name -> id, as given in the prompt.
    min_aligned_fraction (float): below this share of tokens matched to the reply, it is an error.
    type_synonyms (Optional[Mapping[str, str]]): reply entity type -> label (``{"GPE": "LOC"}``).
    RETURNS (TokenNERReply): the repaired IOB2 tags, or the error, with what was repaired.
    """
    stats: Counter = Counter(tokens=len(tokens))
    repairs: list[dict[str, Any]] = []
    known_types = labels_of_tag_ids(tag_ids)
    try:
        value = extract_json(reply, known_types, type_synonyms)
        reply_tokens, raw_tags = coerce_reply(
            value, known_types=known_types, synonyms=type_synonyms
        )
        tags = []
        unknown = []
        for raw in raw_tags:
            tag = normalize_tag(raw, tag_ids, type_synonyms)
            if tag is None:
                stats["unknown_tags"] += 1
                unknown.append(raw if isinstance(raw, (int, float, str)) else str(raw))
                tag = "O"
            tags.append(tag)
        if unknown:
            repairs.append({"kind": "unknown_tag", "values": unknown})
        aligned = align_tags(tokens, reply_tokens, tags, stats, repairs)
    except ReplyError as err:
        return TokenNERReply(tags=None, error=str(err), stats=stats, repairs=repairs)
    n_aligned = sum(tag is not None for tag in aligned)
    stats["aligned"] = n_aligned
    if tokens and n_aligned < min_aligned_fraction * len(tokens):
        return TokenNERReply(
            tags=None,
            error=f"only {n_aligned} of {len(tokens)} tokens could be aligned to the reply",
            stats=stats,
            repairs=repairs,
        )
    before = [tag or "O" for tag in aligned]
    repaired, n_repaired = repair_iob2(before)
    stats["repaired_iob"] = n_repaired
    if n_repaired:
        positions = [i for i, (old, new) in enumerate(zip(before, repaired)) if old != new]
        repairs.append(
            {
                "kind": "iob_repaired",
                "positions": positions,
                "tokens": [tokens[i] for i in positions],
                "tags": [before[i] for i in positions],
            }
        )
    return TokenNERReply(tags=repaired, stats=stats, repairs=repairs)


# -- finding the JSON -------------------------------------------------------------------------


def extract_json(
    text: str,
    known_types: Sequence[str] = (),
    synonyms: Mapping[str, str] | None = None,
) -> Any:
    """The first JSON (or Python-literal) object or list in ``text`` that looks like a reply.

    text (str): the raw reply.
    known_types (Sequence[str]): the task's labels (a bare ``{"EU": "ORG"}`` map needs them).
    synonyms (Optional[Mapping[str, str]]): reply entity type -> label.
    RETURNS (Any): the parsed value.
    """
    chunks = [match.group(1) for match in _FENCE.finditer(text)] + [text]
    found_any = False
    for chunk in chunks:
        top_level_from = 0  # where the last complete top-level value ended
        for start, char in enumerate(chunk):
            if char not in "{[":
                continue
            end = _balanced_end(chunk, start)
            if end is None:
                if start >= top_level_from:
                    # An outermost bracket that never closes: the reply was cut off; a complete
                    # list inside it (the tags before the cut tokens) is not the whole reply.
                    raise ReplyError(
                        f"no complete JSON object in the reply: the {char!r} at character "
                        f"{start} is never closed (cut off?)"
                    )
                continue
            top_level_from = max(top_level_from, end)
            value = _loads_lenient(chunk[start:end])
            if value is None:
                continue
            found_any = True
            if _looks_like_reply(value, known_types, synonyms):
                return value
    if found_any:
        raise ReplyError("the reply's JSON has no list of tags")
    raise ReplyError("no complete JSON object in the reply")


def _balanced_end(text: str, start: int) -> int | None:
    """The index after the bracket closing the one at ``start`` (quotes respected), or None."""
    closing = {"{": "}", "[": "]"}
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for i in range(start, len(text)):
        char = text[i]
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "\"'":
            quote = char
        elif char in closing:
            stack.append(closing[char])
        elif char in "}]":
            if not stack or stack.pop() != char:
                return None
            if not stack:
                return i + 1
    return None


def _loads_lenient(text: str) -> Any:
    for candidate in (text, _TRAILING_COMMA.sub(r"\1", text)):
        try:
            return json.loads(candidate)
        except ValueError:
            pass
    try:
        python_text = _JSON_LITERAL_RE.sub(lambda m: _JSON_LITERALS[m.group(1)], text)
        return ast.literal_eval(python_text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _looks_like_reply(
    value: Any, known_types: Sequence[str], synonyms: Mapping[str, str] | None
) -> bool:
    try:
        coerce_reply(value, known_types=known_types, synonyms=synonyms)
    except ReplyError:
        return False
    return True


# -- reading tokens and tags ------------------------------------------------------------------


def coerce_reply(
    value: Any,
    _depth: int = 0,
    *,
    known_types: Sequence[str] = (),
    synonyms: Mapping[str, str] | None = None,
) -> tuple[list[str] | None, list[Any]]:
    """Tokens (None when the reply gives none) and raw tags from the reply's JSON value.

    Accepts ``{"tokens": [...], "ner_tags": [...]}`` (also ``tags``/``labels``/``words``, any
    case, possibly wrapped in one more object), ``[[token, tag], ...]``,
    ``[{"token": ..., "tag": ...}, ...]``, ``{token: tag, ...}`` and a bare list of tags.
    ``known_types`` (the task's labels) and ``synonyms`` decide whether a bare type name such
    as ``"ORG"`` can be a tag.
    """

    def tag_like(item: Any) -> bool:
        return _is_tag_like(item, known_types, synonyms)

    if isinstance(value, dict):
        lowered = {str(key).strip().lower(): item for key, item in value.items()}
        tags = next((lowered[k] for k in TAG_KEYS if k in lowered), None)
        if isinstance(tags, list):
            tokens = next((lowered[k] for k in TOKEN_KEYS if k in lowered), None)
            return ([str(t) for t in tokens] if isinstance(tokens, list) else None), tags
        if _depth < 2:
            for item in value.values():
                if isinstance(item, (dict, list)):
                    try:
                        return coerce_reply(
                            item, _depth + 1, known_types=known_types, synonyms=synonyms
                        )
                    except ReplyError:
                        continue
        if value and all(_is_scalar_tag(item) for item in value.values()):
            if any(tag_like(item) for item in value.values()):
                return [str(key) for key in value], list(value.values())
    elif isinstance(value, list) and value:
        if all(isinstance(item, (list, tuple)) and len(item) == 2 for item in value):
            return [str(item[0]) for item in value], [item[1] for item in value]
        if all(isinstance(item, dict) for item in value):
            tokens, tags = [], []
            for item in value:
                lowered = {str(key).strip().lower(): val for key, val in item.items()}
                token_key = next((k for k in ITEM_TOKEN_KEYS if k in lowered), None)
                tag_key = next((k for k in ITEM_TAG_KEYS if k in lowered), None)
                if token_key is None or tag_key is None:
                    break
                tokens.append(str(lowered[token_key]))
                tags.append(lowered[tag_key])
            else:
                return tokens, tags
        if all(_is_scalar_tag(item) and tag_like(item) for item in value):
            return None, list(value)
    raise ReplyError("the reply's JSON has no list of tags")


def _is_scalar_tag(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _is_tag_like(
    value: Any, known_types: Sequence[str] = (), synonyms: Mapping[str, str] | None = None
) -> bool:
    """Whether a value could be a tag at all (an id, a prefixed tag or one of the task's types),
    whatever the id map."""
    if isinstance(value, int) and not isinstance(value, bool):
        return 0 <= value < 100
    if isinstance(value, str):
        text = value.strip().upper().replace("_", "-")
        if text.isdigit() or text in OUTSIDE_SPELLINGS:
            return True
        prefix, sep, entity_type = text.partition("-")
        if sep and prefix in BIOES_PREFIXES:
            return True
        return resolve_type(text, known_types, synonyms) is not None
    return False


def normalize_tag(
    value: Any, tag_ids: Mapping[str, int], synonyms: Mapping[str, str] | None = None
) -> str | None:
    """An IOB2 tag from an id, an id string or a tag name; None when it is no known tag.

    value (Any): what the reply gave for one token.
    tag_ids (Mapping[str, int]): tag name -> id, as given in the prompt.
    synonyms (Optional[Mapping[str, str]]): reply entity type -> label (see ``resolve_type``).
    RETURNS (str | None): e.g. ``"B-PER"`` or ``"O"``. A bare type (``"PER"``) is read as IO
        scheme (``"I-PER"``), which IOB2 repair turns into ``B-`` where an entity starts.
    """
    id_to_tag = {tag_id: tag for tag, tag_id in tag_ids.items()}
    known_types = labels_of_tag_ids(tag_ids)
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return id_to_tag.get(value)
    if not isinstance(value, str):
        return None
    text = value.strip().strip("'\"`")
    if text.isdigit():
        return id_to_tag.get(int(text))
    if text.upper() in OUTSIDE_SPELLINGS:
        return "O"
    prefixed = _PREFIXED.match(text)
    if prefixed:
        iob = BIOES_PREFIXES.get(prefixed.group(1).upper())
        entity_type = resolve_type(prefixed.group(2), known_types, synonyms)
        if iob is None or entity_type is None:
            return None
        return f"{iob}-{entity_type}"
    entity_type = resolve_type(text, known_types, synonyms)
    return f"I-{entity_type}" if entity_type is not None else None


# -- aligning to the original tokens ---------------------------------------------------------


def _norm(token: str) -> str:
    return token.strip().strip("`").lower()


def align_tags(
    tokens: Sequence[str],
    reply_tokens: Sequence[str] | None,
    tags: Sequence[str],
    stats: Counter,
    repairs: list[dict[str, Any]] | None = None,
) -> list[str | None]:
    """One tag (or None where no reply token matches) per original token.

    tokens (Sequence[str]): the original tokens.
    reply_tokens (Sequence[str] | None): the tokens the reply lists, if any.
    tags (Sequence[str]): the reply's tags, normalised, one per reply token.
    stats (Counter): updated with ``dropped``, ``invented``, ``changed``, ``merged_or_split``
        and ``length_mismatch``.
    repairs (Optional[list[dict]]): if given, one record per repaired block is appended
        (``kind``, original ``positions`` and ``tokens``, ``reply_tokens``).
    RETURNS (list[str | None]): aligned tags, possibly invalid IOB2 (repaired afterwards).
    """
    records: list[dict[str, Any]] = repairs if repairs is not None else []

    def record(kind: str, i1: int, i2: int, reply: Sequence[str] = ()) -> None:
        row: dict[str, Any] = {
            "kind": kind,
            "positions": list(range(i1, i2)),
            "tokens": list(tokens[i1:i2]),
        }
        if kind != "dropped":
            row["reply_tokens"] = list(reply)
        records.append(row)

    if reply_tokens is None or len(reply_tokens) != len(tags):
        if len(tags) == len(tokens):
            # No usable tokens, but one tag per original token: take them by position.
            if reply_tokens is not None:
                stats["length_mismatch"] += 1
                records.append(
                    {
                        "kind": "length_mismatch",
                        "reply_tokens": len(reply_tokens),
                        "tags": len(tags),
                    }
                )
            return list(tags)
        if reply_tokens is None:
            raise ReplyError(f"the reply has {len(tags)} tags for {len(tokens)} tokens")
        stats["length_mismatch"] += 1
        records.append(
            {"kind": "length_mismatch", "reply_tokens": len(reply_tokens), "tags": len(tags)}
        )
        n = min(len(reply_tokens), len(tags))
        reply_tokens, tags = reply_tokens[:n], tags[:n]
    if [_norm(t) for t in reply_tokens] == [_norm(t) for t in tokens]:
        return list(tags)
    aligned: list[str | None] = [None] * len(tokens)
    matcher = difflib.SequenceMatcher(
        a=[_norm(t) for t in tokens], b=[_norm(t) for t in reply_tokens], autojunk=False
    )
    for opcode, i1, i2, j1, j2 in matcher.get_opcodes():
        if opcode == "equal":
            aligned[i1:i2] = tags[j1:j2]
        elif opcode == "delete":
            stats["dropped"] += i2 - i1
            record("dropped", i1, i2)
        elif opcode == "insert":
            stats["invented"] += j2 - j1
            # "at": the original position the invented tokens stand before
            records.append(
                {"kind": "invented", "at": i1, "reply_tokens": list(reply_tokens[j1:j2])}
            )
        elif i2 - i1 == j2 - j1:
            aligned[i1:i2] = tags[j1:j2]
            stats["changed"] += i2 - i1
            record("changed", i1, i2, reply_tokens[j1:j2])
        else:
            block = _align_by_characters(tokens[i1:i2], reply_tokens[j1:j2], tags[j1:j2])
            aligned[i1:i2] = block
            stats["merged_or_split"] += sum(tag is not None for tag in block)
            stats["dropped"] += sum(tag is None for tag in block)
            kind = "merged" if j2 - j1 < i2 - i1 else "split"
            record(kind, i1, i2, reply_tokens[j1:j2])
            for offset, tag in enumerate(block):
                if tag is None:
                    record("dropped", i1 + offset, i1 + offset + 1)
    return aligned


def _align_by_characters(
    tokens: Sequence[str], reply_tokens: Sequence[str], tags: Sequence[str]
) -> list[str | None]:
    """Align a block of tokens that the LLM merged, split or rewrote, character by character."""
    original = "".join(_norm(t) for t in tokens)
    replied = "".join(_norm(t) for t in reply_tokens)
    owner = [j for j, token in enumerate(reply_tokens) for _ in _norm(token)]
    to_reply: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(a=original, b=replied, autojunk=False)
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            to_reply[block.a + offset] = block.b + offset
    result: list[str | None] = []
    position = 0
    previous_owner: int | None = None
    for token in tokens:
        length = len(_norm(token))
        owners = [owner[to_reply[k]] for k in range(position, position + length) if k in to_reply]
        position += length
        if not owners:
            result.append(None)
            continue
        j = owners[0]
        tag = tags[j]
        if j == previous_owner and tag.startswith("B-"):
            # Several original tokens inside one merged reply token: one entity.
            tag = "I-" + tag[2:]
        result.append(tag)
        previous_owner = j
    return result
